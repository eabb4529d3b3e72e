"""Load generator for a chat model: a concurrency sweep measuring throughput, time to first token and latency.

Any `ChatModel` (lectern.domain.ports) can be measured: `MessagesApiChatModel` for an OpenAI/TGI-compatible
server (the local llama.cpp server, TGI, vLLM), or a SageMaker client speaking the Messages API over
invoke_endpoint_with_response_stream. Every request streams, so time to first token (TTFT) is the time to the
first text delta, and latency the time to the final event. Output tokens are the server's usage count (the
number of text deltas when it reports none).

For each concurrency level, `concurrency` worker threads (each with its own client) take requests from a
shared count until `requests` have been sent or `max_duration_s` has passed, so every loop is bounded in count
and time. Prompts are Lectern-shaped: a system instruction, three numbered passages and a question, built from
the bundled calibration passages unless others are given.

Per level the report has requests/errors, aggregate output tokens/s over the level's wall time, per-request
decode tokens/s, TTFT and latency p50/p95/p99, and, with an instance price, the cost per 1k output tokens and
per 1k total tokens at that throughput (price per hour / tokens per hour).
"""

from __future__ import annotations

import itertools
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lectern.domain.errors import LecternError
from lectern.domain.models import ChatMessage, Generation
from lectern.domain.ports import ChatModel

ModelFactory = Callable[[], ChatModel]


@dataclass(frozen=True)
class RequestResult:
    ok: bool
    started_s: float  # since the level started
    latency_s: float
    ttft_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None


def default_prompts(
    n: int = 12, passages_per_prompt: int = 3, prompt_version: str = "answer-v2"
) -> list[list[ChatMessage]]:
    """Lectern prompts (system + numbered passages + question) over the bundled calibration passages."""
    from lectern.domain.answering import format_context
    from lectern.domain.models import Chunk, ScoredChunk
    from lectern.domain.prompts import load_template
    from sagemaker_endpoints.calibration import bundled_passages

    passages = bundled_passages()
    template = load_template(prompt_version)
    prompts = []
    for i in range(n):
        group = [passages[(i * passages_per_prompt + j) % len(passages)] for j in range(passages_per_prompt)]
        hits = [
            ScoredChunk(Chunk(f"c{j}", "t", "d", "document.pdf", 1, j, p.text), 1.0)
            for j, p in enumerate(group)
        ]
        marker = template.new_marker()  # a spotlighting prompt (answer-v4) marks its passages
        prompts.append(
            template.render(context=format_context(hits, marker), question=group[0].question, marker=marker)
        )
    return prompts


def one_request(
    model: ChatModel, messages: list[ChatMessage], max_tokens: int, temperature: float, level_start: float
) -> RequestResult:
    start = time.perf_counter()
    first: float | None = None
    deltas = 0
    final: Generation | None = None
    try:
        for item in model.stream(messages, max_tokens=max_tokens, temperature=temperature):
            if isinstance(item, str):
                deltas += 1
                if first is None:
                    first = time.perf_counter() - start
            else:
                final = item
    except LecternError as exc:
        return RequestResult(
            False, start - level_start, time.perf_counter() - start, first, error=exc.message
        )
    latency = time.perf_counter() - start
    if final is None:
        return RequestResult(
            False, start - level_start, latency, first, error="stream ended without a result"
        )
    return RequestResult(
        True,
        start - level_start,
        latency,
        first,
        final.usage.input_tokens,
        final.usage.output_tokens or deltas,
    )


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p95": None, "p99": None, "mean": None}
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(arr.mean())}


def summarize(
    results: Sequence[RequestResult], wall_s: float, concurrency: int, price_per_hour: float | None
) -> dict[str, Any]:
    ok = [r for r in results if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.input_tokens for r in ok)
    decode = [
        (r.output_tokens - 1) / (r.latency_s - r.ttft_s)
        for r in ok
        if r.ttft_s is not None and r.output_tokens > 1 and r.latency_s > r.ttft_s
    ]
    tps = out_tokens / wall_s if wall_s > 0 else 0.0
    level: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_samples": sorted({r.error for r in results if r.error})[:3],
        "wall_s": wall_s,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else 0.0,
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "output_tokens_per_s": tps,
        "total_tokens_per_s": (in_tokens + out_tokens) / wall_s if wall_s > 0 else 0.0,
        "decode_tokens_per_s_per_request": _percentiles(decode),
        "ttft_s": _percentiles([r.ttft_s for r in ok if r.ttft_s is not None]),
        "latency_s": _percentiles([r.latency_s for r in ok]),
        "cost_per_1k_output_tokens": None,
        "cost_per_1k_total_tokens": None,
    }
    if price_per_hour is not None and tps > 0:
        level["cost_per_1k_output_tokens"] = price_per_hour / (tps * 3600) * 1000
        level["cost_per_1k_total_tokens"] = price_per_hour / (level["total_tokens_per_s"] * 3600) * 1000
    return level


def run_level(
    factory: ModelFactory,
    prompts: Sequence[list[ChatMessage]],
    *,
    concurrency: int,
    requests: int,
    max_tokens: int,
    temperature: float = 0.0,
    max_duration_s: float = 300.0,
) -> tuple[list[RequestResult], float]:
    """`requests` streamed requests from `concurrency` threads; no new request starts after max_duration_s."""
    counter = itertools.count()
    lock = threading.Lock()
    results: list[RequestResult] = []
    start = time.perf_counter()
    deadline = start + max_duration_s

    def worker() -> None:
        model = factory()
        try:
            while True:
                with lock:
                    i = next(counter)
                if i >= requests or time.perf_counter() > deadline:
                    return
                result = one_request(model, prompts[i % len(prompts)], max_tokens, temperature, start)
                with lock:
                    results.append(result)
        finally:
            close = getattr(model, "close", None)
            if callable(close):
                close()

    threads = [threading.Thread(target=worker, name=f"bench-{n}", daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results, key=lambda r: r.started_s), time.perf_counter() - start


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def sweep(
    factory: ModelFactory,
    *,
    target: dict[str, Any],
    concurrencies: Sequence[int],
    requests: int,
    max_tokens: int,
    prompts: Sequence[list[ChatMessage]] | None = None,
    temperature: float = 0.0,
    warmup: int = 1,
    max_duration_s: float = 300.0,
    price_per_hour: float | None = None,
    instance_type: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    prompts = list(prompts or default_prompts())
    if warmup:
        run_level(
            factory,
            prompts,
            concurrency=1,
            requests=warmup,
            max_tokens=max_tokens,
            temperature=temperature,
            max_duration_s=max_duration_s,
        )
    levels = []
    raw = []
    for c in concurrencies:
        results, wall = run_level(
            factory,
            prompts,
            concurrency=c,
            requests=requests,
            max_tokens=max_tokens,
            temperature=temperature,
            max_duration_s=max_duration_s,
        )
        levels.append(summarize(results, wall, c, price_per_hour))
        raw.append({"concurrency": c, "requests": [asdict(r) for r in results]})
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": target,
        "settings": {
            "concurrencies": list(concurrencies),
            "requests_per_level": requests,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "warmup_requests": warmup,
            "prompts": len(prompts),
            "max_duration_s": max_duration_s,
        },
        "pricing": {"instance_type": instance_type, "price_per_hour": price_per_hour},
        "client_machine": machine(),
        "command": command,
        "levels": levels,
        "raw": raw,
    }


def plot(report: dict[str, Any], path: Path) -> Path:
    """Four panels against concurrency: throughput, TTFT, latency, cost per 1k tokens (or decode speed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = report["levels"]
    xs = [lv["concurrency"] for lv in levels]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    ax.plot(xs, [lv["output_tokens_per_s"] for lv in levels], marker="o")
    ax.set(title="Output throughput", ylabel="tokens/s (all requests)")
    for ax, key, title in (
        (axes[0][1], "ttft_s", "Time to first token"),
        (axes[1][0], "latency_s", "Latency"),
    ):
        for q in ("p50", "p95", "p99"):
            ax.plot(xs, [lv[key][q] for lv in levels], marker="o", label=q)
        ax.set(title=title, ylabel="seconds")
        ax.legend()
    ax = axes[1][1]
    if any(lv["cost_per_1k_output_tokens"] is not None for lv in levels):
        ax.plot(xs, [lv["cost_per_1k_output_tokens"] for lv in levels], marker="o")
        ax.set(
            title=f"Cost per 1k output tokens ({report['pricing']['instance_type'] or 'instance'})",
            ylabel="USD",
        )
    else:
        ax.plot(xs, [lv["decode_tokens_per_s_per_request"]["p50"] for lv in levels], marker="o")
        ax.set(title="Decode speed per request (p50)", ylabel="tokens/s")
    for row in axes:
        for ax in row:
            ax.set_xlabel("concurrent requests")
            ax.set_xticks(xs)
            ax.grid(alpha=0.3)
    target = report["target"]
    fig.suptitle(
        f"{target.get('model', '?')} @ {target.get('url') or target.get('endpoint') or '?'} — "
        f"{report['settings']['requests_per_level']} requests/level, "
        f"max_tokens {report['settings']['max_tokens']}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
