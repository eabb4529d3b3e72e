"""The page's pure modules (frontend/api.js, auth.js, sse.js, text.js) are unit-tested under node
(tests/frontend/*.test.mjs, `node --test`, no npm packages); this runs them inside `make test`.

Node is part of the machine (Debian's nodejs, which `make validators` also needs): a missing node is a failure
that says so, never a skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_TESTS = ROOT / "tests" / "frontend"
FRONTEND = ROOT / "frontend"


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is not installed: the page's unit tests (tests/frontend/*.test.mjs) need node 18+ on PATH"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))  # type: ignore[union-attr]
    assert major >= 18, f"node {version} has no `node --test`: the page's unit tests need node 18+"
    return node


def test_the_pages_modules_pass_their_node_unit_tests() -> None:
    files = sorted(NODE_TESTS.glob("*.test.mjs"))
    assert len(files) >= 4, files  # sse, api, auth, text
    result = subprocess.run(
        [_node(), "--test", *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed:\n{out[-6000:]}"
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", out, re.M))
    assert int(counts.get("fail", -1)) == 0 and int(counts.get("pass", 0)) >= 40, out[-2000:]


def test_the_frontend_folder_is_flat_and_every_import_is_a_served_file() -> None:
    """`lectern up` serves /static/<name> (no subfolders) and the CDK deploys the folder's files under static/:
    every module the page imports must be a sibling file named by a relative './name.js'."""
    assert not [p for p in FRONTEND.iterdir() if p.is_dir()]
    statement = re.compile(r"""^(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["'];""", re.M | re.S)
    imported = set()
    for js in FRONTEND.glob("*.js"):
        for spec in statement.findall(js.read_text()):
            assert re.fullmatch(r"\./[\w-]+\.js", spec), f"{js.name} imports {spec!r}"
            assert (FRONTEND / spec[2:]).is_file(), f"{js.name} imports {spec!r}, which is not in frontend/"
            imported.add(spec[2:])
    # the page's one script tag loads app.js; every other module is reached through its imports
    assert imported == {p.name for p in FRONTEND.glob("*.js")} - {"app.js"}, imported
    assert '<script type="module" src="/static/app.js"></script>' in (FRONTEND / "index.html").read_text()
