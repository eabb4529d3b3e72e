"""4-bit weight-only quantization (W4A16) with llm-compressor, written in a layout TGI loads directly.

Steps: resolve the source (a local Hugging Face model directory, or an S3 prefix downloaded first), draw
calibration and held-out passages, measure the source's perplexity on the held-out passages, run
llm-compressor's `oneshot` with a GPTQ (default) or AWQ recipe on the calibration prompts, save compressed
(int4 packed into int32, group size 128, symmetric: compressed-tensors `pack-quantized`), put back the
source's own config.json (with the new `quantization_config`) and tokenizer files (see tgi.py for why), reload
the result from disk with transformers and measure its perplexity on the same passages, generate a few tokens,
and write quantization_report.json (recipe, toolkit versions, calibration, sizes, perplexities, timings) into
the output.

Why llm-compressor: it is the maintained toolkit (vLLM project) for GPTQ/AWQ into compressed-tensors, the
format TGI >= 2.4 and vLLM both load; AutoAWQ is archived and GPTQModel's kernels target GPUs. Its release
0.14.0.1 accepts torch 2.10-2.14, so it installs beside the CPU torch 2.13.0 used here.

On a machine without a GPU, llm-compressor 0.14.0.1's AWQ pins cached activations with `Tensor.pin_memory()`,
which needs an accelerator; pinning only speeds host-to-GPU copies, so for AWQ on CPU it is skipped for the
duration of the call (recorded in the report under `workarounds`). GPTQ needs nothing of the kind.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import platform
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from sagemaker_endpoints import calibration, s3, tgi

log = logging.getLogger(__name__)

REPORT_NAME = "quantization_report.json"
SOURCE_FILES_KEPT = ("config.json", "generation_config.json", *tgi.TOKENIZER_FILES)
Algorithm = Literal["gptq", "awq"]


class QuantizationError(RuntimeError):
    pass


@dataclass(frozen=True)
class QuantizeOptions:
    model: str  # local directory or s3://bucket/prefix/
    output_dir: Path
    algorithm: Algorithm = "gptq"
    calibration: str = calibration.BUNDLED  # see calibration.load_passages
    num_samples: int = 256
    max_seq_len: int = 2048
    heldout_fraction: float = 0.1
    render: str = "auto"  # auto | chat | plain
    prompt_version: str = "answer-v2"
    seed: int = 0
    dtype: str = "auto"  # as in from_pretrained: auto | bfloat16 | float16 | float32
    device: str = "auto"  # where perplexity and generation run: auto | cpu | cuda
    download_dir: Path | None = None
    max_ppl_increase: float | None = 0.10
    overwrite: bool = False
    ignore: tuple[str, ...] = ("lm_head",)


@dataclass
class _Timer:
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round(time.perf_counter() - start, 3)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("llmcompressor", "compressed-tensors", "transformers", "torch", "accelerate"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise QuantizationError("--device cuda was asked for but torch sees no CUDA device")
    return requested


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def build_recipe(algorithm: Algorithm, ignore: Sequence[str]) -> list[Any]:
    """The llm-compressor modifiers: W4A16 = int4 weights, symmetric, groups of 128, 16-bit activations."""
    if algorithm == "gptq":
        from llmcompressor.modifiers.quantization import GPTQModifier

        return [GPTQModifier(targets="Linear", scheme="W4A16", ignore=list(ignore))]
    if algorithm == "awq":  # AWQ's activation-aware scaling, then the same W4A16 rounding
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        return [AWQModifier(), QuantizationModifier(targets="Linear", scheme="W4A16", ignore=list(ignore))]
    raise ValueError(f"unknown algorithm {algorithm!r}")


@contextlib.contextmanager
def _awq_on_cpu(active: bool) -> Iterator[list[str]]:
    """Skip llm-compressor's pin_memory() (needs an accelerator) while AWQ runs without a GPU."""
    notes: list[str] = []
    if not active:
        yield notes
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None  # type: ignore[method-assign]
    notes.append(
        "AWQ on CPU: llmcompressor IntermediatesCache.pin_memory() skipped (it needs an accelerator; "
        "pinning only speeds host-to-GPU copies)"
    )
    try:
        yield notes
    finally:
        IntermediatesCache.pin_memory = original  # type: ignore[method-assign]


def perplexity(
    model: Any, tokenizer: Any, texts: Sequence[str], max_seq_len: int, device: str
) -> dict[str, Any]:
    """exp(mean next-token negative log-likelihood) over all tokens of `texts` (each cut to max_seq_len)."""
    import torch

    total_nll = 0.0
    total_tokens = 0
    model.eval()
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_seq_len).input_ids
            if ids.shape[1] < 2:
                continue
            ids = ids.to(device)
            loss = model(input_ids=ids, labels=ids).loss
            n = ids.shape[1] - 1
            total_nll += float(loss) * n
            total_tokens += n
    if total_tokens == 0:
        raise QuantizationError("the held-out passages produced no tokens to score")
    return {"perplexity": math.exp(total_nll / total_tokens), "tokens": total_tokens, "passages": len(texts)}


def _weights_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


def _resolve_source(opts: QuantizeOptions) -> Path:
    if s3.is_s3_uri(opts.model):
        location = s3.S3Location.parse(opts.model)
        dest = (
            opts.download_dir
            or Path.home() / ".cache" / "lectern" / "models" / location.bucket / location.prefix
        )
        log.info("downloading %s to %s", location.uri, dest)
        return s3.download_prefix(location.uri, dest)
    path = Path(opts.model)
    if not (path / "config.json").is_file():
        raise QuantizationError(f"{path} is not a model directory (no config.json)")
    return path


def _prepare_output(opts: QuantizeOptions, source: Path) -> Path:
    out = Path(opts.output_dir)
    if out.resolve() == source.resolve():
        raise QuantizationError("the output directory must differ from the source model directory")
    if out.exists() and any(out.iterdir()):
        if not opts.overwrite:
            raise QuantizationError(f"{out} is not empty; pass overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _restore_source_files(source: Path, out: Path) -> dict[str, Any]:
    """Keep the source's config.json (plus quantization_config) and tokenizer/generation files as they are."""
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = saved["quantization_config"]
    for name in SOURCE_FILES_KEPT:
        if name != "config.json" and (out / name).exists():
            (out / name).unlink()
        if name != "config.json" and (source / name).is_file():
            shutil.copy2(source / name, out / name)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return config


def _tokenize(tokenizer: Any, texts: Sequence[str], max_seq_len: int) -> Any:
    from datasets import Dataset

    enc = tokenizer(list(texts), truncation=True, max_length=max_seq_len, add_special_tokens=False)
    return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})


def _smoke_generation(model: Any, tokenizer: Any, prompt: str, device: str) -> dict[str, Any]:
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids[:, :32].to(device)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    new = out[0, ids.shape[1] :]
    return {
        "prompt": tokenizer.decode(ids[0], skip_special_tokens=True),
        "new_tokens": int(new.shape[0]),
        "text": tokenizer.decode(new, skip_special_tokens=True),
    }


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def quantize(opts: QuantizeOptions, progress: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Run the whole pipeline; return the report (also written to OUTPUT/quantization_report.json).

    Raises QuantizationError when the result is unusable or misses the perplexity gate (the output and the
    report are kept so the figures can be read)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    timer = _Timer()
    torch.manual_seed(opts.seed)
    with timer.stage("resolve_source"):
        source = _resolve_source(opts)
    out = _prepare_output(opts, source)
    device = _device(opts.device)
    progress(f"source {source}, output {out}, device {_device_name(device)}")

    tokenizer = AutoTokenizer.from_pretrained(source)
    passages = calibration.load_passages(opts.calibration)
    calib, heldout = calibration.split(passages, opts.heldout_fraction, opts.seed)
    calib_texts, mode = calibration.render(
        calib, tokenizer, mode=opts.render, prompt_version=opts.prompt_version, num_samples=opts.num_samples
    )
    heldout_texts = [p.text for p in heldout]
    dataset = _tokenize(tokenizer, calib_texts, opts.max_seq_len)
    calib_tokens = sum(len(ids) for ids in dataset["input_ids"])
    progress(
        f"{len(calib_texts)} calibration samples ({mode}, {calib_tokens} tokens), {len(heldout)} held out"
    )

    with timer.stage("load_source"):
        model = AutoModelForCausalLM.from_pretrained(source, dtype=opts.dtype)
    dtype = str(model.dtype).removeprefix("torch.")
    parameters = sum(p.numel() for p in model.parameters())
    with timer.stage("perplexity_source"):
        ppl_source = perplexity(model.to(device), tokenizer, heldout_texts, opts.max_seq_len, device)
    model.to("cpu")
    _free(device)
    progress(f"source perplexity {ppl_source['perplexity']:.3f} on {ppl_source['tokens']} held-out tokens")

    from llmcompressor import oneshot

    recipe = build_recipe(opts.algorithm, opts.ignore)
    with (
        timer.stage("calibrate_and_quantize"),
        _awq_on_cpu(opts.algorithm == "awq" and not torch.cuda.is_available()) as workarounds,
    ):
        oneshot(
            model=model,
            dataset=dataset,
            recipe=recipe,
            max_seq_length=opts.max_seq_len,
            num_calibration_samples=len(calib_texts),
            shuffle_calibration_samples=False,
        )
    with timer.stage("save"):
        model.save_pretrained(out, save_compressed=True)
        config = _restore_source_files(source, out)
    del model
    _free(device)

    with timer.stage("load_quantized"):
        quantized = AutoModelForCausalLM.from_pretrained(out)
    with timer.stage("perplexity_quantized"):
        quantized.to(device)
        ppl_quant = perplexity(quantized, tokenizer, heldout_texts, opts.max_seq_len, device)
    smoke = _smoke_generation(quantized, tokenizer, heldout_texts[0], device)
    del quantized
    _free(device)
    progress(f"quantized perplexity {ppl_quant['perplexity']:.3f}")

    layout = tgi.inspect_model_dir(out)
    increase = ppl_quant["perplexity"] / ppl_source["perplexity"] - 1
    gate_passed = opts.max_ppl_increase is None or increase <= opts.max_ppl_increase
    recipe_yaml = (out / "recipe.yaml").read_text(encoding="utf-8") if (out / "recipe.yaml").is_file() else ""
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {
            "model": opts.model,
            "path": str(source),
            "architecture": layout.architecture,
            "parameters": parameters,
            "dtype": dtype,
        },
        "output": {
            "path": str(out),
            "tgi_quantize": layout.quantize,
            "format": config["quantization_config"].get("format"),
        },
        "recipe": {
            "toolkit": "llm-compressor",
            "algorithm": opts.algorithm,
            "scheme": "W4A16",
            "targets": ["Linear"],
            "ignore": list(opts.ignore),
            "quantization_config": config["quantization_config"],
            "recipe_yaml": recipe_yaml,
        },
        "calibration": {
            "source": opts.calibration,
            "render": mode,
            "prompt_version": opts.prompt_version,
            "samples": len(calib_texts),
            "tokens": calib_tokens,
            "max_seq_len": opts.max_seq_len,
            "heldout_passages": len(heldout),
            "seed": opts.seed,
        },
        "sizes": {
            "source_weights_bytes": _weights_bytes(source),
            "quantized_weights_bytes": layout.weight_bytes,
            "quantized_total_bytes": layout.total_bytes,
        },
        "perplexity": {
            "source": ppl_source["perplexity"],
            "quantized": ppl_quant["perplexity"],
            "relative_increase": increase,
            "tokens": ppl_quant["tokens"],
            "passages": ppl_quant["passages"],
            "max_relative_increase": opts.max_ppl_increase,
            "gate_passed": gate_passed,
        },
        "generation_check": smoke,
        "timings_s": timer.stages,
        "machine": {"device": _device_name(device), "platform": platform.platform()},
        "versions": _versions(),
        "workarounds": workarounds,
    }
    sizes = report["sizes"]
    sizes["compression_ratio"] = sizes["source_weights_bytes"] / max(1, sizes["quantized_weights_bytes"])
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if smoke["new_tokens"] < 1:
        raise QuantizationError("the quantized model loaded but generated nothing")
    if not gate_passed:
        raise QuantizationError(
            f"perplexity rose {increase:.1%} (source {ppl_source['perplexity']:.3f}, quantized "
            f"{ppl_quant['perplexity']:.3f}), above the allowed {opts.max_ppl_increase:.1%}; "
            f"see {out / REPORT_NAME}"
        )
    return report
