"""The quantization pipeline end to end on CPU, on a tiny Llama-architecture model built here.

The model is randomly initialised (2 layers, hidden size 128, a 512-token byte-level BPE trained on the
bundled calibration passages, a small chat template) and then trained for 30 steps so its perplexity is well
below uniform: a broken quantization then shows as a jump in perplexity. Its saved config.json and
tokenizer_config.json are rewritten in the transformers 4 form a hub checkpoint has (`rope_theta`,
`torch_dtype`, a real tokenizer class), which the pipeline must carry into its output for TGI.

What this proves: llm-compressor's GPTQ and AWQ run on CPU here, the output has the layout TGI loads (checked
file by file and by unpacking the int4 weights independently of the toolkit), the report has the recipe, sizes
and perplexities, and transformers loads and generates from the result. What it does not: a 7B model (hours on
CPU, and ~15 GB of weights that cannot be fetched here), TGI itself, or a GPU. Runtime ~20 s on 2 cores
(building and training the model plus GPTQ ~13 s, AWQ ~4 s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch  # the quantize extra; torch itself first: pip install torch==2.13.0 (CPU wheel)
from sagemaker_endpoints import calibration, tgi
from sagemaker_endpoints.quantize import (
    REPORT_NAME,
    QuantizationError,
    QuantizeOptions,
    quantize,
)

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
VOCAB = 512


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Two cores shared with other work: one torch thread avoids OpenMP contention (7x slower measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_tiny_model(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    passages = calibration.bundled_passages()
    texts = [p.text for p in passages] + [p.question for p in passages]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=VOCAB,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"],
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    batch = tokenizer(texts[:40], return_tensors="pt", padding=True, truncation=True, max_length=64)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    # What a hub checkpoint saved by transformers 4 looks like, and what TGI's transformers 4 needs.
    cfg = json.loads((path / "config.json").read_text())
    cfg["rope_theta"] = cfg.pop("rope_parameters")["rope_theta"] * 50  # distinct from the default 10 000
    cfg["torch_dtype"] = cfg.pop("dtype")
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    tok_cfg = json.loads((path / "tokenizer_config.json").read_text())
    tok_cfg.pop("backend", None)
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    (path / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def gptq(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("quantized") / "gptq"
    report = quantize(
        QuantizeOptions(
            model=str(source),
            output_dir=out,
            algorithm="gptq",
            max_seq_len=256,
            max_ppl_increase=0.10,
            prompt_version="answer-v2",
        ),
        progress=print,
    )
    return out, report


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """compressed-tensors pack-quantized int4, read without the toolkit: 8 nibbles per int32, offset by 8."""
    p = packed.to(torch.int64) & 0xFFFFFFFF
    nibbles = torch.stack([(p >> (4 * k)) & 0xF for k in range(8)], dim=-1)
    return nibbles.reshape(packed.shape[0], -1) - 8


def test_output_has_the_layout_tgi_loads(source: Path, gptq: tuple[Path, dict]) -> None:
    out, _ = gptq
    layout = tgi.inspect_model_dir(out)
    assert layout.quantize == "compressed-tensors"
    assert set(layout.files) == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "recipe.yaml",
        REPORT_NAME,
    }
    config = json.loads((out / "config.json").read_text())
    src_config = json.loads((source / "config.json").read_text())
    assert {k: v for k, v in config.items() if k != "quantization_config"} == src_config  # rope_theta kept
    qc = config["quantization_config"]
    assert (qc["quant_method"], qc["format"], qc["quantization_status"]) == (
        "compressed-tensors",
        "pack-quantized",
        "compressed",
    )
    assert qc["ignore"] == ["lm_head"]
    (group,) = qc["config_groups"].values()
    assert (
        group["weights"].items()
        >= {"num_bits": 4, "type": "int", "symmetric": True, "group_size": 128}.items()
    )
    assert group["input_activations"] is None
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (out / name).read_bytes() == (source / name).read_bytes(), name


def test_every_linear_layer_is_stored_as_int4_groups_close_to_the_source(
    source: Path, gptq: tuple[Path, dict]
) -> None:
    from safetensors.torch import load_file

    quantized = load_file(out_file := gptq[0] / "model.safetensors")
    original = load_file(source / "model.safetensors")
    linears = [k.removesuffix(".weight") for k, v in original.items() if v.ndim == 2 and "layers." in k]
    assert len(linears) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    for name in linears:
        packed, scale = quantized[f"{name}.weight_packed"], quantized[f"{name}.weight_scale"]
        assert f"{name}.weight" not in quantized, f"{name} kept in full precision in {out_file}"
        weight = original[f"{name}.weight"]
        assert packed.dtype == torch.int32 and packed.shape == (weight.shape[0], weight.shape[1] // 8)
        assert scale.shape == (weight.shape[0], weight.shape[1] // 128)
        ints = unpack_int4(packed)
        assert ints.min() >= -8 and ints.max() <= 7
        dequantized = ints.float() * scale.float().repeat_interleave(128, dim=1)
        error = float((dequantized - weight).norm() / weight.norm())
        assert 0.005 < error < 0.2, (name, error)  # really quantized, and still the same weights
    assert quantized["lm_head.weight"].dtype == torch.float32  # ignored, as the recipe says


def test_report_has_recipe_sizes_perplexities_and_timings(gptq: tuple[Path, dict]) -> None:
    out, report = gptq
    assert json.loads((out / REPORT_NAME).read_text()) == json.loads(json.dumps(report))
    assert report["recipe"]["algorithm"] == "gptq" and "GPTQModifier" in report["recipe"]["recipe_yaml"]
    assert report["recipe"]["scheme"] == "W4A16" and report["output"]["tgi_quantize"] == "compressed-tensors"
    expected = {"source": "bundled", "render": "chat", "samples": 36, "heldout_passages": 4}
    assert report["calibration"].items() >= expected.items()
    sizes = report["sizes"]
    assert sizes["quantized_weights_bytes"] == (out / "model.safetensors").stat().st_size
    assert sizes["source_weights_bytes"] > 2 * sizes["quantized_weights_bytes"]
    ppl = report["perplexity"]
    assert math.isfinite(ppl["source"]) and ppl["source"] < 0.75 * VOCAB  # the model learned something
    assert abs(ppl["relative_increase"]) < 0.10 and ppl["gate_passed"] is True
    assert ppl["tokens"] > 200
    assert report["generation_check"]["new_tokens"] == 16
    assert report["versions"]["llmcompressor"] != "not installed"
    assert set(report["timings_s"]) >= {"calibrate_and_quantize", "perplexity_source", "perplexity_quantized"}
    assert report["workarounds"] == []
    print(
        f"\nGPTQ on CPU: {json.dumps(report['timings_s'])}; perplexity {ppl['source']:.2f} -> "
        f"{ppl['quantized']:.2f}; weights {sizes['source_weights_bytes']} -> "
        f"{sizes['quantized_weights_bytes']} B"
    )


def test_quantized_model_loads_and_generates_with_transformers(gptq: tuple[Path, dict]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = gptq
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.quantization_config is not None
    ids = tokenizer("Employees accrue paid annual leave", return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert generated.shape[1] == ids.shape[1] + 8
    assert isinstance(tokenizer.decode(generated[0, ids.shape[1] :]), str)


def test_awq_runs_on_cpu_and_a_missed_perplexity_gate_fails_with_the_report_kept(
    source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "awq"
    with pytest.raises(QuantizationError, match="perplexity rose"):
        quantize(
            QuantizeOptions(
                model=str(source),
                output_dir=out,
                algorithm="awq",
                max_seq_len=128,
                num_samples=16,
                max_ppl_increase=-0.5,
                prompt_version="answer-v2",  # an impossible gate: quantized must halve it
            )
        )
    report = json.loads((out / REPORT_NAME).read_text())
    recipe = report["recipe"]["recipe_yaml"]
    assert (
        report["recipe"]["algorithm"] == "awq"
        and "AWQModifier" in recipe
        and "QuantizationModifier" in recipe
    )
    assert report["perplexity"]["gate_passed"] is False
    assert abs(report["perplexity"]["relative_increase"]) < 0.10
    assert report["workarounds"] and "pin_memory" in report["workarounds"][0]
    assert tgi.inspect_model_dir(out).quantize == "compressed-tensors"


def test_output_directory_is_never_clobbered_by_accident(source: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(QuantizationError, match="not empty"):
        quantize(QuantizeOptions(model=str(source), output_dir=busy))
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(QuantizationError, match="must differ"):
        quantize(QuantizeOptions(model=str(source), output_dir=source))
    with pytest.raises(QuantizationError, match=r"no config\.json"):
        quantize(QuantizeOptions(model=str(tmp_path), output_dir=tmp_path / "x"))


def test_quantize_command_prints_a_json_summary_on_stdout(source: Path, tmp_path: Path) -> None:
    from sagemaker_endpoints.cli import app
    from typer.testing import CliRunner

    out = tmp_path / "cli"
    args = [
        "quantize",
        "--model",
        str(source),
        "--output",
        str(out),
        "--num-samples",
        "8",
        "--max-seq-len",
        "64",
        "--prompt-version",
        "answer-v2",
        "--max-ppl-increase",
        "0.2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # llm-compressor's log lines went to stderr
    assert summary["output"]["tgi_quantize"] == "compressed-tensors"
    assert json.loads((out / REPORT_NAME).read_text())["calibration"]["samples"] == 8
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 3 and "not empty" in again.stderr
