"""Eval runs tracked in an append-only local store, with an optional export to MLflow's file store.

`EvalStore` is one JSONL file (default `DATA_DIR/eval-runs.jsonl`): every record is one line, written with a
single append and never rewritten. Each record carries `prev`, the SHA-256 of the line before it, so an edited
or deleted line is found by `verify()` (the store is a log, not a database: a wrong record is corrected by a
new one).

`export_mlflow` writes the records of kind "eval-run" in the layout of MLflow's file-based tracking store
(`mlruns/<experiment id>/<run id>/{meta.yaml,params,metrics,tags}`), so `mlflow ui --backend-store-uri
file:...` shows them; it needs no MLflow installed (the layout is plain files; see docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


class StoreCorrupted(Exception):
    """A line of the store was edited, removed or is not JSON."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: list[Path]) -> str:
    """One digest for a set of files (name + content of each, in sorted order)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def code_version(root: Path | None = None) -> dict[str, Any]:
    """The git commit of the working tree and whether it has uncommitted changes (None outside git)."""
    cwd = str(root) if root else None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git": None, "dirty": None}
    return {"git": commit, "dirty": bool(status.strip())}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EvalStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> list[str]:
        if not self.path.is_file():
            return []
        return [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def append(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """Add one record (kind: eval-run, gate, promotion); returns it as stored (with id, prev, at)."""
        lines = self._lines()
        prev = hashlib.sha256(lines[-1].encode()).hexdigest() if lines else GENESIS
        stored = {"kind": kind, "at": now_iso(), "prev": prev, **record}
        stored["id"] = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()[:16]
        line = json.dumps(stored, sort_keys=True, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:  # one append; earlier lines are never touched
            f.write(line + "\n")
        return stored

    def records(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        for line in self._lines():
            rec = json.loads(line)
            if kind is None or rec.get("kind") == kind:
                yield rec

    def verify(self) -> int:
        """Check the chain of `prev` digests; returns the number of records or raises StoreCorrupted."""
        prev = GENESIS
        lines = self._lines()
        for i, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StoreCorrupted(f"{self.path}:{i} is not JSON") from exc
            if rec.get("prev") != prev:
                raise StoreCorrupted(f"{self.path}:{i}: the record before it was changed or removed")
            prev = hashlib.sha256(line.encode()).hexdigest()
        return len(lines)


# -- MLflow file store -----------------------------------------------------------------------------------


def _ms(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)


def _yaml(data: dict[str, Any]) -> str:
    out = []
    for k, v in data.items():
        if isinstance(v, str):
            out.append(f"{k}: {json.dumps(v)}")  # a JSON string is a valid YAML scalar
        elif isinstance(v, list):
            out.append(f"{k}: []")
        else:
            out.append(f"{k}: {v}")
    return "\n".join(out) + "\n"


def _key(name: str) -> str:
    """MLflow keys: alphanumerics, _ - . space and / (which makes folders: not used here)."""
    return "".join(c if c.isalnum() or c in "_-. " else "_" for c in name)[:250]


def export_mlflow(store: EvalStore, mlruns: Path, experiment: str = "lectern-eval") -> list[Path]:
    """Every eval-run record as an MLflow run (params: the config's settings, config digest, data digests;
    metrics: the suites' metrics; tags: git commit, config name). Re-exporting overwrites the same run ids."""
    exp_id = str(int(hashlib.sha256(experiment.encode()).hexdigest()[:8], 16))
    exp_dir = mlruns / exp_id
    exp_dir.mkdir(parents=True, exist_ok=True)
    runs = list(store.records("eval-run"))
    first = _ms(runs[0]["at"]) if runs else 0
    (exp_dir / "meta.yaml").write_text(
        _yaml(
            {
                "artifact_location": exp_dir.resolve().as_uri(),
                "creation_time": first,
                "experiment_id": exp_id,
                "last_update_time": first,
                "lifecycle_stage": "active",
                "name": experiment,
            }
        )
    )
    written = []
    for rec in runs:
        run_id = hashlib.sha256(rec["id"].encode()).hexdigest()[:32]
        run_dir = exp_dir / run_id
        for sub in ("params", "metrics", "tags", "artifacts"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        t = _ms(rec["at"])
        name = f"{rec.get('role', 'run')}:{rec.get('config', {}).get('name', '')}"
        (run_dir / "meta.yaml").write_text(
            _yaml(
                {
                    "artifact_uri": (run_dir / "artifacts").resolve().as_uri(),
                    "end_time": t,
                    "entry_point_name": "",
                    "experiment_id": exp_id,
                    "lifecycle_stage": "active",
                    "run_id": run_id,
                    "run_name": name,
                    "run_uuid": run_id,
                    "source_name": "",
                    "source_type": 4,
                    "source_version": "",
                    "start_time": t,
                    "status": 3,
                    "tags": [],
                    "user_id": "lectern",
                }
            )
        )
        config = rec.get("config", {})
        params = {f"settings.{k}": v for k, v in config.get("settings", {}).items()}
        params["config.digest"] = config.get("digest", "")
        params.update({f"data.{k}": v for k, v in rec.get("data", {}).items()})
        for k, v in params.items():
            (run_dir / "params" / _key(k)).write_text(str(v)[:6000])
        for k, v in rec.get("metrics", {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                (run_dir / "metrics" / _key(k)).write_text(f"{t} {float(v)} 0\n")
        tags = {
            "mlflow.runName": name,
            "mlflow.source.git.commit": str(rec.get("code", {}).get("git") or ""),
            "lectern.gate": str(rec.get("gate_id", "")),
            "lectern.record": rec["id"],
        }
        for k, v in tags.items():
            (run_dir / "tags" / k).write_text(v)
        written.append(run_dir)
    return written
