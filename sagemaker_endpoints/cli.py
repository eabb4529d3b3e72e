"""`python -m sagemaker_endpoints quantize | package | benchmark`."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

_COMMAND_LINE: list[str | None] = [None]  # the command line as typed, recorded in benchmark reports
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Lectern's fallback model on SageMaker: quantize, package, benchmark.",
)


def _default_prompt_version() -> str:
    from lectern.settings import LocalSettings

    return str(LocalSettings.model_fields["prompt_version"].default)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command()
def quantize(
    model: Annotated[
        str, typer.Option(help="Source model: a local Hugging Face directory or s3://bucket/prefix/.")
    ],
    output: Annotated[Path, typer.Option(help="Directory to write the quantized model to.")],
    algorithm: Annotated[str, typer.Option(help="gptq or awq (llm-compressor, W4A16).")] = "gptq",
    calibration: Annotated[
        str,
        typer.Option(
            help="'bundled', 'index:DATA_DIR' (a local Lectern index), or a .jsonl/.txt file or folder."
        ),
    ] = "bundled",
    num_samples: Annotated[int, typer.Option(help="Calibration samples (at most one per passage).")] = 256,
    max_seq_len: Annotated[int, typer.Option(help="Tokens per calibration / held-out sample.")] = 2048,
    heldout_fraction: Annotated[
        float, typer.Option(help="Share of passages kept for the perplexity check.")
    ] = 0.1,
    render: Annotated[str, typer.Option(help="auto, chat (Lectern prompts) or plain.")] = "auto",
    prompt_version: Annotated[
        str | None, typer.Option(help="Lectern prompt template for chat samples.")
    ] = None,
    seed: int = 0,
    dtype: Annotated[str, typer.Option(help="auto, bfloat16, float16 or float32.")] = "auto",
    device: Annotated[str, typer.Option(help="Where perplexity runs: auto, cpu or cuda.")] = "auto",
    download_dir: Annotated[Path | None, typer.Option(help="Where an S3 source is copied to.")] = None,
    max_ppl_increase: Annotated[
        float,
        typer.Option(help="Fail if quantized perplexity exceeds the source's by more than this fraction."),
    ] = 0.10,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0 = torch's default).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output directory.")] = False,
) -> None:
    """Quantize a model to 4-bit W4A16 (compressed-tensors) and write a directory TGI loads directly."""
    from sagemaker_endpoints.quantize import QuantizationError, QuantizeOptions
    from sagemaker_endpoints.quantize import quantize as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if algorithm not in ("gptq", "awq"):
        raise typer.BadParameter("algorithm must be gptq or awq")
    if threads:
        import torch

        torch.set_num_threads(threads)
    opts = QuantizeOptions(
        model=model,
        output_dir=output,
        algorithm=algorithm,  # type: ignore[arg-type]
        calibration=calibration,
        num_samples=num_samples,
        max_seq_len=max_seq_len,
        heldout_fraction=heldout_fraction,
        render=render,
        prompt_version=prompt_version or _default_prompt_version(),
        seed=seed,
        dtype=dtype,
        device=device,
        download_dir=download_dir,
        max_ppl_increase=max_ppl_increase,
        overwrite=overwrite,
    )
    # llm-compressor logs to whatever sys.stdout is when it sets up its logger: keep stdout for the summary.
    stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        report = run(opts, progress=lambda msg: typer.echo(msg, err=True))
    except QuantizationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    finally:
        sys.stdout = stdout
    _echo_json({k: report[k] for k in ("output", "perplexity", "sizes", "timings_s")})


@app.command()
def package(
    model_dir: Annotated[Path, typer.Argument(help="The quantized model directory.")],
    s3_uri: Annotated[
        str, typer.Option(help="Destination prefix, e.g. s3://bucket/models/qwen2.5-7b-w4a16/v1/.")
    ],
    replace: Annotated[bool, typer.Option(help="Delete other objects already under the prefix.")] = False,
) -> None:
    """Check the directory against what TGI loads and upload it, uncompressed, to an S3 prefix."""
    from sagemaker_endpoints.package import package as run
    from sagemaker_endpoints.s3 import S3LocationError
    from sagemaker_endpoints.tgi import LayoutError

    try:
        result = run(model_dir, s3_uri, replace=replace)
    except (LayoutError, S3LocationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _echo_json(
        {
            "uploaded_bytes": result.total_bytes,
            "files": len(result.files),
            "deleted": result.deleted,
            "construct": result.construct_settings(),
        }
    )


def _local_llama(stack: ExitStack, threads: int) -> tuple[str, str]:
    from lectern.adapters.local.llama_server import LlamaServer
    from lectern.adapters.local.model_files import GGUF_FILENAME, ensure_gguf

    cache = Path(os.environ.get("LECTERN_MODEL_CACHE", Path.home() / ".cache" / "lectern" / "models"))
    gguf = ensure_gguf(cache)
    server = stack.enter_context(
        LlamaServer(gguf, log_dir=cache / "bench-logs", n_threads=threads or os.cpu_count() or 1)
    )
    return server.base_url, GGUF_FILENAME.removesuffix(".gguf")


@app.command()
def benchmark(
    out: Annotated[Path, typer.Option(help="JSON report path.")],
    plot: Annotated[Path | None, typer.Option(help="PNG plot path (default: beside the JSON).")] = None,
    url: Annotated[str | None, typer.Option(help="OpenAI/TGI-compatible base URL.")] = None,
    local_llama: Annotated[
        bool, typer.Option(help="Start the packaged GGUF on llama.cpp's server and use it.")
    ] = False,
    model: Annotated[str, typer.Option(help="Model name sent in requests.")] = "tgi",
    concurrency: Annotated[str, typer.Option(help="Comma-separated concurrency levels.")] = "1,2,4,8",
    requests: Annotated[int, typer.Option(help="Requests per concurrency level.")] = 16,
    max_tokens: int = 128,
    temperature: float = 0.0,
    warmup: Annotated[int, typer.Option(help="Unmeasured requests before the sweep.")] = 1,
    max_duration_s: Annotated[float, typer.Option(help="No new request after this long, per level.")] = 300.0,
    timeout_s: Annotated[float, typer.Option(help="Per-request timeout.")] = 300.0,
    price_per_hour: Annotated[
        float | None, typer.Option(help="Instance price (USD/hour) for cost per 1k tokens.")
    ] = None,
    instance_type: Annotated[str | None, typer.Option(help="Label for the priced instance.")] = None,
    threads: Annotated[int, typer.Option(help="llama.cpp threads with --local-llama (0 = all cores).")] = 0,
    prompts: Annotated[int, typer.Option(help="Distinct Lectern prompts to cycle through.")] = 12,
    passages_per_prompt: Annotated[int, typer.Option(help="Numbered passages in each prompt.")] = 3,
) -> None:
    """Concurrency sweep against an OpenAI/TGI-compatible endpoint: JSON report and PNG plot."""
    from lectern.adapters.messages_api import MessagesApiChatModel
    from sagemaker_endpoints import benchmark as bench

    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    if not levels or min(levels) < 1:
        raise typer.BadParameter("concurrency must list positive integers")
    if bool(url) == local_llama:
        raise typer.BadParameter("give exactly one of --url and --local-llama")
    api_key = os.environ.get("LECTERN_BENCH_API_KEY")
    with ExitStack() as stack:
        if local_llama:
            url, model = _local_llama(stack, threads)
        assert url is not None
        base = url

        def factory() -> MessagesApiChatModel:
            return MessagesApiChatModel(base, model, timeout_s=timeout_s, api_key=api_key)

        report = bench.sweep(
            factory,
            target={"url": base, "model": model, "server": "llama.cpp (local)" if local_llama else None},
            concurrencies=levels,
            requests=requests,
            max_tokens=max_tokens,
            temperature=temperature,
            warmup=warmup,
            max_duration_s=max_duration_s,
            price_per_hour=price_per_hour,
            instance_type=instance_type,
            prompts=bench.default_prompts(prompts, passages_per_prompt, _default_prompt_version()),
            command=_COMMAND_LINE[0],
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    png = bench.plot(report, plot or out.with_suffix(".png"))
    summary = [
        {k: lv[k] for k in ("concurrency", "errors", "output_tokens_per_s")}
        | {"ttft_p50_s": lv["ttft_s"]["p50"], "latency_p95_s": lv["latency_s"]["p95"]}
        for lv in report["levels"]
    ]
    _echo_json({"report": str(out), "plot": str(png), "levels": summary})


def main() -> None:
    _COMMAND_LINE[0] = shlex.join(["python", "-m", "sagemaker_endpoints", *sys.argv[1:]])
    app()
