"""The README results section is generated from the JSON reports: figures copied, ratios computed."""

from __future__ import annotations

import json
from pathlib import Path

from lectern.evaluation.report import write_results

MACHINE = {"cpus": 2, "cpu": "Test CPU", "memory_gib": 8, "python": "3.11", "loadavg_at_start": [0.1]}


def _row(system: str, mode: str, ndcg: float, p50: float) -> dict:
    return {
        "system": system,
        "mode": mode,
        "ndcg_at_10": ndcg,
        "recall_at_100": 0.9,
        "mrr_at_10": 0.6,
        "queries": 300,
        "latency_ms_p50": p50,
        "latency_ms_p95": p50 * 2,
        "latency_ms_p99": p50 * 3,
        "latency_queries": 200,
        "note": "peer note" if system != "lectern" else "",
        "product_agreement": 1.0 if system == "lectern" else None,
    }


def test_results_markdown_quotes_the_json(tmp_path: Path):
    report = {
        "dataset": "scifact",
        "split": "test",
        "documents": 5183,
        "chunks": 13819,
        "results": [_row("lectern", "hybrid", 0.7274, 62.0), _row("langchain", "ensemble", 0.6117, 100.0)],
        "settings": {
            "chunk_size": 200,
            "chunk_overlap": 32,
            "fusion": "min_max",
            "bm25_weight": 0.5,
            "candidates": 100,
            "embedder": "e",
        },
        "machine": MACHINE,
        "command": "lectern eval retrieval --dataset x",
        "created_at": "2026-11-22T00:00:00+00:00",
    }
    (tmp_path / "scifact-retrieval.json").write_text(json.dumps(report))
    written = write_results(tmp_path)
    md = (tmp_path / "README-results.md").read_text()
    assert "| lectern | hybrid | 0.7274 |" in md
    assert "| langchain ensemble | 1.189 |" in md  # 0.7274 / 0.6117
    assert "0.62 |" in md  # latency ratio 62 / 100
    assert "`lectern eval retrieval --dataset x`" in md and "Test CPU" in md
    assert (tmp_path / "retrieval-quality.png").stat().st_size > 1000
    assert len(written) == 2


def test_readme_section_between_markers_is_replaced_and_links_re_rooted(tmp_path):
    from lectern.evaluation.report import BEGIN, END, update_readme

    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    md = results / "README-results.md"
    md.write_text("## Results\n\nNDCG 0.73\n\n![plot](plot.png) [web](https://x.org/a.png)\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n## Results\n\n{BEGIN}\nold figures\n{END}\n\n## After\n")
    assert update_readme(readme, md)
    text = readme.read_text()
    assert "old figures" not in text and "NDCG 0.73" in text
    assert "](docs/results/plot.png)" in text and "](https://x.org/a.png)" in text
    assert text.endswith("## After\n") and text.count("## Results") == 1


def test_readme_without_markers_is_left_alone(tmp_path):
    from lectern.evaluation.report import update_readme

    md = tmp_path / "r.md"
    md.write_text("## Results\nx\n")
    readme = tmp_path / "README.md"
    readme.write_text("# T\n")
    assert not update_readme(readme, md)
    assert readme.read_text() == "# T\n"


def test_retrieval_speed_runs_are_listed_side_by_side(tmp_path: Path):
    speed = tmp_path / "retrieval-speed"
    speed.mkdir()
    for label, p95 in (("before", 171.0), ("after", 21.5)):
        run = {
            "retrieval": [
                {
                    "chunks": 100000,
                    "mode": "hybrid",
                    "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 + 1},
                    "loadavg": [1.25, 1.0, 0.9],
                    "first_query_after_write_ms": 900.0,
                    "rss_mib": 1500.0,
                }
            ],
            "created_at": "2026-12-03T09:00:00+00:00",
            "command": f"lectern bench --out docs/results/retrieval-speed/{label}.json",
            "machine": {"cpus": 2, "loadavg_at_start": [1.1], "loadavg_at_end": [1.3]},
            "notes": ["distinct texts"],
        }
        (speed / f"{label}.json").write_text(json.dumps(run))
    md = write_results(tmp_path)[0].read_text()
    assert "| after | 100,000 | hybrid | 10.75 | 21.5 | 22.5 | 1.25 | 900.0 | n/a | 1500.0 |" in md
    assert "| before | 100,000 | hybrid | 85.5 | 171.0 |" in md
    assert "`lectern bench --out docs/results/retrieval-speed/before.json`" in md
