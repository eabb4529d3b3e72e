"""Cold import of the API handler as `lectern bench` measures it (this checkout's bench_cold_start), for a base
checkout and this one, alternated, so both see the same load.

    git archive <base> | tar -x -C /tmp/base
    PYTHONPATH=lambdas:. python scripts/bench_cold_start_pair.py /tmp/base <label> out.json
"""

import json
import os
import sys
from pathlib import Path

from lectern.evaluation.bench import bench_cold_start


def main(base: str, label: str, out: str, rounds: int = 2) -> None:
    here = str(Path(__file__).resolve().parents[1])
    res: dict[str, list[dict[str, object]]] = {}
    for _ in range(rounds):
        for name, root in ((label, base), ("branch", here)):
            os.environ["PYTHONPATH"] = f"{root}/lambdas{os.pathsep}{root}"
            load = float(Path("/proc/loadavg").read_text().split()[0])
            row = bench_cold_start(["lectern.api.app", "lectern.aws.handlers.api"], repeats=5)
            row["loadavg_at_start"] = load
            row["loadavg_at_end"] = float(Path("/proc/loadavg").read_text().split()[0])
            res.setdefault(name, []).append(row)
            print(name, load, [(m["module"], m["lambda_env"], m["import_ms_median"]) for m in row["modules"]])
    Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
