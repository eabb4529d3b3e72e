"""`lectern cost ...`: cost per query from the traces; routing savings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lectern.cli import common
from lectern.cli.common import DataDir, cost_app


def _day_bounds(since: str | None, until: str | None) -> tuple[str, str]:
    """ISO dates or times; `until` defaults to tomorrow (UTC), `since` to 30 days before it."""
    from datetime import UTC, datetime, timedelta

    end = until or (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    start = since or (datetime.fromisoformat(end[:10]) - timedelta(days=30)).strftime("%Y-%m-%d")
    return start, end


@cost_app.command("report")
def cost_report(
    since: Annotated[
        str | None, typer.Option(help="first day (YYYY-MM-DD, UTC), default 30 days back")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="day after the last (exclusive), default tomorrow")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="project a month at this many queries/s")
    ] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="only these tenants (repeatable)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the report as JSON")] = None,
    data_dir: DataDir = None,
) -> None:
    """Cost per day, model, tenant, prompt version and route from the local query traces; a monthly
    projection."""
    import json

    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_queries import SqliteQueryLog
    from lectern.domain.costing import default_prices
    from lectern.evaluation.costs import cost_report as build_report

    settings = common._settings(data_dir)
    start, end = _day_bounds(since, until)
    db = SqliteDatabase(settings.data_dir / "lectern.db")
    try:
        log = SqliteQueryLog(db)
        traces = [t for name in (tenant or log.tenants()) for t in log.traces(name, start, end)]
    finally:
        db.close()
    report = build_report(traces, since=start, until=end, rate_qps=rate, prices=default_prices())
    for title, key in (
        ("per day", "per_day"),
        ("per model", "per_model"),
        ("per tenant", "per_tenant"),
        ("per prompt version", "per_prompt_version"),
        ("per route tier", "per_route_tier"),
    ):
        table = Table(
            title,
            "queries",
            "tokens in",
            "tokens out",
            "cost USD",
            "cache hits",
            "strong",
            "p50 ms",
            "👍",
            "👎",
            title=f"{title} ({start} .. {end})",
        )
        for name, g in report[key].items():
            table.add_row(
                name,
                str(g["queries"]),
                str(g["input_tokens"]),
                str(g["output_tokens"]),
                f"{g['cost_usd']:.6f}",
                str(g["cache_hits"]),
                str(g["routed_strong"]),
                str(g["latency_ms_p50"] or ""),
                str(g["feedback_up"]),
                str(g["feedback_down"]),
            )
        common.console.print(table)
    if "projection" in report:
        p = report["projection"]
        table = Table(
            "policy",
            "USD per query",
            "USD per month",
            title=f"projection at {rate} queries/s ({p['queries_per_month']:,.0f} queries/month)",
        )
        for k, v in p.get("monthly_usd", {}).items():
            table.add_row(k, f"{p['per_query_usd'][k]:.8f}", f"{v:,.2f}")
        common.console.print(table)
    common.console.print("[bold]assumptions[/bold]")
    for line in report["assumptions"]:
        common.console.print(f"  - {line}", highlight=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        common.console.print(f"[dim]wrote {out}[/dim]")


@cost_app.command("routing-eval")
def cost_routing_eval(
    dataset: Annotated[list[Path], typer.Option(help="question sets (repeatable)")] = [  # noqa: B006
        Path("tests/fixtures/answers/docs-dev.json"),
        Path("tests/fixtures/answers/routing-extra.json"),
    ],
    docs: Annotated[Path, typer.Option(help="folder holding their documents")] = Path("../shared/data/docs"),
    out: Annotated[Path, typer.Option(help="JSON report")] = Path("docs/results/routing-eval.json"),
    max_context_tokens: Annotated[int, typer.Option(help="context budget (AWS default 1500)")] = 1500,
    data_dir: DataDir = None,
) -> None:
    """Route every question (no generation) and price the set: routed, always strong, always cheap."""
    import json
    import tempfile
    from dataclasses import asdict

    from lectern.domain.costing import default_prices
    from lectern.evaluation.answers import ingest_documents
    from lectern.evaluation.costs import CHEAP_MODEL, STRONG_MODEL, documents_of, load_questions, routing_eval
    from lectern.evaluation.machine import command_line, now_iso

    with tempfile.TemporaryDirectory(prefix="lectern-routing-") as tmp:
        settings = common._settings(
            data_dir or Path(tmp), llm="fake", strong_llm="fake", max_context_tokens=max_context_tokens
        )
        lectern = common._build(settings)
        try:
            ingestion = ingest_documents(lectern, docs, documents_of(dataset))
            count = getattr(lectern.embedder, "count_tokens", None) or (lambda s: len(s.split()))
            rows, summary = routing_eval(lectern, load_questions(dataset), default_prices(), count)
        finally:
            lectern.close()
    prices = default_prices()
    report = {
        "what": "question-set cost: routing vs always-strong vs always-cheap at the price table prices",
        "datasets": [str(p) for p in dataset],
        "cheap_model": CHEAP_MODEL,
        "strong_model": STRONG_MODEL,
        "prices_as_of": prices.as_of,
        "routing": {
            "enabled": settings.routing,
            "long_context_tokens": settings.route_long_context_tokens,
            "min_similarity": settings.route_min_similarity,
            "max_context_tokens": settings.max_context_tokens,
        },
        "token_counts": (
            "estimated: input = the rendered prompt (system + passages + question) counted with the MiniLM "
            "WordPiece tokenizer (Nova's tokenizer is not published); output = 60 tokens per question part "
            "(two for a comparison), the same for every model. Routing decisions are the service's own "
            "(Answerer.plan with the real retrieval over the real documents); no model was called."
        ),
        "summary": summary,
        "questions": [asdict(r) for r in rows],
        "ingestion": ingestion,
        "command": command_line(),
        "created_at": now_iso(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = Table(
        "policy", "cost USD", "per 1k queries USD", title=f"routing over {summary['questions']} questions"
    )
    for k, v in summary["cost_usd"].items():
        table.add_row(k, f"{v:.6f}", f"{summary['per_1k_queries_usd'][k]:.4f}")
    common.console.print(table)
    common.console.print(f"routes: {summary['routes']}")
    common.console.print(f"saved vs always strong: {summary['saved_vs_always_strong']:.1%}")
    common.console.print(f"[dim]wrote {out}[/dim]")
