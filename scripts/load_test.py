"""Load test: locust (headless) against a loopback `lectern up` with the extractive model.

Starts a server on a free loopback port with a fresh data dir (unless --url is given), seeds documents,
runs scripts/locustfile.py (questions JSON and SSE, searches, listings, lookups, uploads), writes a summary:
requests and failures per endpoint, status codes, p50/p95/p99 latency (ms), requests/s, and the machine and
load average it ran on. Exits 1 when any response was a 5xx or a transport error.

    .venv/bin/python scripts/load_test.py --users 50 --spawn-rate 10 --duration 120s \\
        --out docs/results/load-local.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.live_server import free_port, start_server, stop  # noqa: E402


def doc_text(i: int) -> bytes:
    paras = [
        f"Report {i}, section {j}. The measured value for item {i}-{j} was {i * 31 + j} units, "
        f"recorded by station {j % 7} under protocol {i}. " * 3
        for j in range(40)
    ]
    return "\n\n".join(paras).encode()


GUIDE = b"""# Reactor handbook

## History
The Zorblax reactor was commissioned in 1987 in Tromso. It was designed by Ingrid Haldorsen.

## Safety
Coolant pressure must stay below 14 bar. Operators check the valves every Tuesday.
"""


def seed(base: str, docs: int) -> list[str]:
    ids = []
    files = [("handbook.md", GUIDE)] + [(f"report-{i}.txt", doc_text(i)) for i in range(docs - 1)]
    for name, data in files:
        slot = httpx.post(f"{base}/v1/documents", json={"filename": name, "size_bytes": len(data)}).json()
        up = httpx.post(slot["upload"]["url"], data=slot["upload"]["fields"], files={"file": (name, data)})
        up.raise_for_status()
        ids.append(slot["document_id"])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        docs_now = httpx.get(f"{base}/v1/documents").json()["documents"]
        if all(d["status"] in ("INDEXED", "FAILED") for d in docs_now if d["document_id"] in ids):
            return ids
        time.sleep(0.5)
    raise RuntimeError("seed documents were not indexed in time")


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def summarise(prefix: Path, status_file: Path) -> dict:
    endpoints = {}
    with open(f"{prefix}_stats.csv") as f:
        for row in csv.DictReader(f):
            endpoints[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": _num(row["Requests/s"]),
                "p50_ms": _num(row["50%"]),
                "p95_ms": _num(row["95%"]),
                "p99_ms": _num(row["99%"]),
                "max_ms": _num(row["Max Response Time"]),
            }
    failures = []
    with open(f"{prefix}_failures.csv") as f:
        failures = [
            {"endpoint": r["Name"], "error": r["Error"][:300], "count": int(r["Occurrences"])}
            for r in csv.DictReader(f)
        ]
    counted = json.loads(status_file.read_text()) if status_file.is_file() else {}
    statuses = counted.get("status", {})
    server_errors = sum(n for k, n in statuses.items() if k.rsplit(" ", 1)[-1].startswith("5"))
    transport = sum(n for k, n in statuses.items() if k.endswith("transport-error"))
    return {
        "total": endpoints.pop("Aggregated", {}),
        "endpoints": endpoints,
        "status_codes": statuses,
        "server_errors_5xx": server_errors,
        "transport_errors": transport,
        "failures": failures,
        "client_error_samples": counted.get("client_error_samples", []),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--spawn-rate", type=float, default=10)
    ap.add_argument("--duration", default="120s")
    ap.add_argument("--docs", type=int, default=4, help="documents seeded before the run")
    ap.add_argument("--url", help="an already running Lectern (default: start one on a free loopback port)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "load-local.json")
    ap.add_argument("--note", default="", help="free text stored in the result (e.g. what else was running)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="lectern-load-"))
    proc = None
    base = args.url
    if base is None:
        port = free_port()
        proc = start_server(work / "data", port, work / "server.log")
        base = f"http://127.0.0.1:{port}"
    try:
        seed(base, args.docs)
        status_file = work / "status.json"
        load_before = os.getloadavg()
        started = time.time()
        cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(REPO / "scripts" / "locustfile.py")]
        cmd += ["--headless", "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.duration]
        cmd += ["--host", base, "--csv", str(work / "locust"), "--only-summary", "--stop-timeout", "10"]
        env = dict(os.environ, LECTERN_LOAD_STATUS_OUT=str(status_file))
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        load_after = os.getloadavg()
        result = summarise(work / "locust", status_file)
        health = httpx.get(f"{base}/v1/health", timeout=10).status_code
    finally:
        if proc is not None:
            stop(proc)
    result = {
        "tool": "locust (headless), scripts/locustfile.py",
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "duration": args.duration,
        "server": "lectern up on 127.0.0.1, LECTERN_LLM=fake (extractive), auth off, rate limit and token "
        "budget off, ONNX MiniLM embedder, SQLite index",
        "seeded_documents": args.docs,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
        },
        "note": args.note,
        "locust_exit_code": run.returncode,
        "health_after": health,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    t = result["total"]
    print(
        f"{t.get('requests', 0)} requests, {result['server_errors_5xx']} 5xx, "
        f"{result['transport_errors']} transport errors; p50 {t.get('p50_ms')} ms, p95 {t.get('p95_ms')} ms, "
        f"p99 {t.get('p99_ms')} ms; {t.get('rps')} req/s -> {args.out}"
    )
    if run.returncode not in (0, 1) or not t.get("requests"):
        print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
        return 2
    return 1 if result["server_errors_5xx"] or result["transport_errors"] or health != 200 else 0


if __name__ == "__main__":
    sys.exit(main())
