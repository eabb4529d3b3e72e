"""The `benchmark` load generator: its arithmetic against a scripted fake model, then the real command against
the local llama.cpp server (the packaged GGUF) at concurrency 1 and 2.

Against a SageMaker TGI endpoint it was not run (no AWS account here); the same sweep applies to any
ChatModel.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sagemaker_endpoints import benchmark as bench
from sagemaker_endpoints.cli import app
from typer.testing import CliRunner

from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage, Generation, Usage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ScriptedModel:
    """Waits `ttft` then yields `tokens` deltas `gap` apart; one server slot, like llama.cpp's server."""

    model_id = "scripted"
    slot = threading.Lock()
    calls = 0

    def __init__(self, ttft: float = 0.02, gap: float = 0.005, tokens: int = 5, fail_every: int = 0) -> None:
        self.ttft, self.gap, self.tokens, self.fail_every = ttft, gap, tokens, fail_every

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        raise NotImplementedError

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        with ScriptedModel.slot:
            ScriptedModel.calls += 1
            if self.fail_every and ScriptedModel.calls % self.fail_every == 0:
                raise ModelUnavailable("The language model server failed (HTTP 503); try again shortly.")
            time.sleep(self.ttft)
            n = min(self.tokens, max_tokens)
            for i in range(n):
                if i:
                    time.sleep(self.gap)
                yield f"t{i} "
        yield Generation("", self.model_id, Usage(len(messages[-1].content) // 4, n))


def test_sweep_measures_ttft_latency_throughput_and_cost() -> None:
    ScriptedModel.calls = 0
    report = bench.sweep(
        lambda: ScriptedModel(),
        target={"model": "scripted"},
        concurrencies=[1, 2],
        requests=4,
        max_tokens=5,
        warmup=1,
        price_per_hour=1.5,
        instance_type="ml.g5.xlarge",
    )
    assert ScriptedModel.calls == 1 + 4 + 4
    one, two = report["levels"]
    for level in (one, two):
        assert level["requests"] == 4 and level["errors"] == 0 and level["output_tokens"] == 20
        assert 0.015 < level["ttft_s"]["p50"] < level["latency_s"]["p50"]
        assert level["ttft_s"]["p50"] <= level["ttft_s"]["p95"] <= level["ttft_s"]["p99"]
        assert level["output_tokens_per_s"] == pytest.approx(20 / level["wall_s"])
        assert level["cost_per_1k_output_tokens"] == pytest.approx(1.5 / (level["output_tokens_per_s"] * 3.6))
        assert 100 < level["decode_tokens_per_s_per_request"]["p50"] < 250  # 4 gaps of 5 ms
    # one slot: with two clients, each request also waits for the other's turn
    assert two["ttft_s"]["p95"] > 1.5 * one["ttft_s"]["p95"]
    assert len(report["raw"][1]["requests"]) == 4 and report["pricing"]["price_per_hour"] == 1.5


def test_failures_are_counted_not_raised_and_loops_are_bounded() -> None:
    ScriptedModel.calls = 0
    results, _ = bench.run_level(
        lambda: ScriptedModel(fail_every=2), bench.default_prompts(2), concurrency=2, requests=6, max_tokens=3
    )
    level = bench.summarize(results, 1.0, 2, None)
    assert level["requests"] == 6 and level["errors"] == 3
    assert level["error_samples"] == ["The language model server failed (HTTP 503); try again shortly."]
    assert level["cost_per_1k_output_tokens"] is None
    start = time.perf_counter()
    results, _ = bench.run_level(
        lambda: ScriptedModel(ttft=0.05),
        bench.default_prompts(1),
        concurrency=1,
        requests=1000,
        max_tokens=1,
        max_duration_s=0.2,
    )
    assert time.perf_counter() - start < 1.0 and len(results) < 10


def test_default_prompts_are_lectern_prompts() -> None:
    prompts = bench.default_prompts(3, passages_per_prompt=2, prompt_version="answer-v2")
    assert len(prompts) == 3 and [m.role for m in prompts[0]] == ["system", "user"]
    assert "[1] (document.pdf, page 1)" in prompts[0][1].content and "[2] (" in prompts[0][1].content
    assert "Question: " in prompts[0][1].content


def test_plot_is_a_png(tmp_path: Path) -> None:
    report = bench.sweep(
        lambda: ScriptedModel(ttft=0.001, gap=0.001),
        target={"model": "m", "url": "u"},
        concurrencies=[1, 2],
        requests=2,
        max_tokens=3,
        warmup=0,
    )
    path = bench.plot(report, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 20_000


@pytest.mark.model
@pytest.mark.timeout(400)
def test_benchmark_command_against_the_local_llama_server(tmp_path: Path) -> None:
    from lectern.adapters.local.llama_server import llama_available

    if not llama_available():
        pytest.fail("llama-cpp-python (with its [server] extras) is not installed: run `make venv`.")
    out = tmp_path / "bench.json"
    args = [
        "benchmark",
        "--local-llama",
        "--concurrency",
        "1,2",
        "--requests",
        "2",
        "--max-tokens",
        "12",
        "--warmup",
        "1",
        "--prompts",
        "4",
        "--passages-per-prompt",
        "1",
        "--out",
        str(out),
        "--price-per-hour",
        "1.0",
        "--instance-type",
        "this-machine",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["target"]["server"] == "llama.cpp (local)"
    one, two = report["levels"]
    for level in (one, two):
        assert level["errors"] == 0, level["error_samples"]
        assert level["requests"] == 2 and level["output_tokens"] > 2
        assert 0 < level["ttft_s"]["p50"] < level["latency_s"]["p50"]
        assert level["output_tokens_per_s"] > 0 and level["input_tokens"] > 100
        assert level["cost_per_1k_output_tokens"] > 0
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    print(
        "\n"
        + json.dumps(
            [
                {k: lv[k] for k in ("concurrency", "output_tokens_per_s")}
                | {
                    "ttft_p50_s": lv["ttft_s"]["p50"],
                    "latency_p50_s": lv["latency_s"]["p50"],
                    "decode_p50": lv["decode_tokens_per_s_per_request"]["p50"],
                }
                for lv in report["levels"]
            ],
            indent=1,
        )
    )
