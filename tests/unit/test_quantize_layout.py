"""Fast checks of the quantization tooling: TGI layout rules, calibration sources, splitting and rendering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sagemaker_endpoints import calibration, tgi
from sagemaker_endpoints.s3 import S3Location, S3LocationError

QUANT_CONFIG = {
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "quantization_status": "compressed",
    "ignore": ["lm_head"],
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "format": "pack-quantized",
            "input_activations": None,
            "weights": {
                "num_bits": 4,
                "type": "int",
                "symmetric": True,
                "strategy": "group",
                "group_size": 128,
            },
        }
    },
}


def write_model_dir(path: Path, **overrides: object) -> Path:
    """A directory with the files TGI reads (weights are placeholders: only names and JSON are inspected)."""
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "rope_theta": 1000000.0,
        "torch_dtype": "bfloat16",
        "quantization_config": QUANT_CONFIG,
    }
    config.update(overrides.pop("config", {}))  # type: ignore[arg-type]
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    (path / "tokenizer.json").write_text("{}")
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    return path


def test_a_compressed_tensors_w4a16_directory_is_served_with_its_quantize_value(tmp_path: Path) -> None:
    layout = tgi.inspect_model_dir(write_model_dir(tmp_path / "m"))
    assert layout.quantize == "compressed-tensors"
    assert layout.architecture == "Qwen2ForCausalLM"
    assert layout.weight_bytes == 64 and layout.total_bytes > 64


def test_an_unquantized_or_awq_directory_gets_the_matching_value(tmp_path: Path) -> None:
    plain = write_model_dir(tmp_path / "plain")
    config = json.loads((plain / "config.json").read_text())
    del config["quantization_config"]
    (plain / "config.json").write_text(json.dumps(config))
    assert tgi.inspect_model_dir(plain).quantize is None
    awq = write_model_dir(
        tmp_path / "awq", config={"quantization_config": {"quant_method": "awq", "bits": 4}}
    )
    assert tgi.inspect_model_dir(awq).quantize == "awq"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda p: (p / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda p: (p / "pytorch_model.bin").write_bytes(b"x"), "pickled weights"),
        (
            lambda p: (p / "model-00002-of-00002.safetensors").write_bytes(b"x"),
            "no model.safetensors.index.json",
        ),
        (lambda p: (p / "model.safetensors").unlink(), "no *.safetensors weights"),
        (
            lambda p: (p / "tokenizer_config.json").write_text('{"tokenizer_class": "TokenizersBackend"}'),
            "transformers 4 (inside TGI) cannot load",
        ),
        (lambda p: (p / "sub").mkdir() or (p / "sub" / "extra.json").write_text("{}"), "in a subfolder"),
        (
            lambda p: (p / "config.json").write_text(
                json.dumps(
                    {
                        "architectures": ["LlamaForCausalLM"],
                        "model_type": "llama",
                        "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
                    }
                )
            ),
            "no `rope_theta`",
        ),
        (
            lambda p: (p / "config.json").write_text(
                json.dumps(
                    {
                        "architectures": ["LlamaForCausalLM"],
                        "model_type": "llama",
                        "rope_theta": 1.0,
                        "quantization_config": {**QUANT_CONFIG, "quantization_status": "initialized"},
                    }
                )
            ),
            "not 'compressed'",
        ),
        (
            lambda p: (p / "config.json").write_text(
                json.dumps(
                    {
                        "architectures": ["LlamaForCausalLM"],
                        "model_type": "llama",
                        "rope_theta": 1.0,
                        "quantization_config": {
                            **QUANT_CONFIG,
                            "config_groups": {
                                "g": {
                                    "targets": ["Linear"],
                                    "format": "float-quantized",
                                    "input_activations": {"num_bits": 8},
                                    "weights": {"num_bits": 8, "type": "float"},
                                }
                            },
                        },
                    }
                )
            ),
            "quantizes activations",
        ),
        (lambda p: (p / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    ],
)
def test_directories_tgi_would_reject_or_misread_are_refused(tmp_path: Path, mutate, problem: str) -> None:
    path = write_model_dir(tmp_path / "m")
    mutate(path)
    with pytest.raises(tgi.LayoutError) as err:
        tgi.inspect_model_dir(path)
    assert problem in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_model_dir(tmp_path / "m")
    (path / "tokenizer.json").unlink()
    (path / "weights.pt").write_bytes(b"x")
    with pytest.raises(tgi.LayoutError) as err:
        tgi.inspect_model_dir(path)
    assert "tokenizer.json is missing" in str(err.value) and "weights.pt" in str(err.value)


def test_bundled_calibration_set_is_small_varied_and_has_questions() -> None:
    passages = calibration.bundled_passages()
    assert len(passages) == 40
    assert all(len(p.text) > 150 and p.question.strip() for p in passages)
    assert len({p.text for p in passages}) == 40
    assert sum(len(p.text) for p in passages) < 20_000  # a fallback, not a corpus


def test_split_is_deterministic_disjoint_and_keeps_both_sides(tmp_path: Path) -> None:
    passages = calibration.bundled_passages()
    calib, heldout = calibration.split(passages, 0.1, seed=0)
    assert (calib, heldout) == calibration.split(passages, 0.1, seed=0)
    assert len(heldout) == 4 and len(calib) == 36
    assert not {p.text for p in calib} & {p.text for p in heldout}
    assert calibration.split(passages, 0.1, seed=1)[1] != heldout
    two = passages[:2]
    assert [len(x) for x in calibration.split(two, 0.9, 0)] == [1, 1]
    with pytest.raises(ValueError, match="at least two"):
        calibration.split(passages[:1], 0.5, 0)


def test_passages_from_text_and_jsonl_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(
        "First paragraph of a policy that is long enough to keep.\n\nshort\n\n"
        "Second paragraph, also long enough to be a passage of its own."
    )
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"text": "A passage from an export.", "question": "Q?"}) + "\n"
    )
    passages = calibration.load_passages(str(tmp_path))
    assert [p.text for p in passages] == [
        "First paragraph of a policy that is long enough to keep.",
        "Second paragraph, also long enough to be a passage of its own.",
        "A passage from an export.",
    ]
    assert passages[2].question == "Q?"
    (tmp_path / "bad.jsonl").write_text('{"question": "no text"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl line 1"):
        calibration.file_passages(tmp_path / "bad.jsonl")


def test_passages_from_a_real_local_lectern_index(tmp_path: Path) -> None:
    from lectern.adapters.local.sqlite_db import SqliteDatabase
    from lectern.adapters.local.sqlite_index import SqliteSearchIndex
    from lectern.domain.models import Chunk

    db = SqliteDatabase(tmp_path / "lectern.db")
    index = SqliteSearchIndex(db, 4, "test-embedder")
    for tenant, doc in (("acme", "d1"), ("acme", "d2"), ("other", "d3")):
        chunks = [
            Chunk(f"{doc}-{i}", tenant, doc, f"{doc}.pdf", i + 1, i, f"Text {i} of {doc}.", heading="Intro")
            for i in range(3)
        ]
        index.replace_document(tenant, doc, chunks, np.ones((3, 4), dtype=np.float32))
    db.close()
    everything = calibration.load_passages(f"index:{tmp_path}")
    assert len(everything) == 9
    assert everything[0].text == "Intro\nText 0 of d1." and everything[0].source == "d1.pdf, page 1"
    assert [p.text for p in everything[:3]] == [
        "Intro\nText 0 of d1.",
        "Intro\nText 0 of d2.",
        "Intro\nText 0 of d3.",
    ]  # first chunks of every document first
    only_acme = calibration.index_passages(tmp_path / "lectern.db", tenant_id="acme", limit=4)
    assert len(only_acme) == 4 and all("d3" not in p.text for p in only_acme)
    with pytest.raises(FileNotFoundError):
        calibration.index_passages(tmp_path / "missing")


class ChatTokenizer:
    chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"

    def apply_chat_template(self, messages, tokenize: bool, add_generation_prompt: bool) -> str:
        assert not tokenize and add_generation_prompt
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


def test_chat_rendering_builds_lectern_prompts_from_rotating_passages() -> None:
    passages = calibration.bundled_passages()[:5]
    texts, mode = calibration.render(passages, ChatTokenizer(), prompt_version="answer-v2", num_samples=3)
    assert mode == "chat" and len(texts) == 3
    first = texts[0]
    assert first.startswith("<|system|>You are a careful assistant.")
    assert "[1] (calibration_default.jsonl, page 1)\n" + passages[0].text in first
    assert "[3] (calibration_default.jsonl, page 1)\n" + passages[2].text in first
    assert f"Question: {passages[0].question}" in first and first.endswith("<|assistant|>")
    first_passage_of_second = texts[1].split("[1] (")[1].split("[2] (")[0]
    assert passages[1].text in first_passage_of_second  # the next prompt starts one passage further


def test_plain_rendering_and_its_limits() -> None:
    passages = calibration.bundled_passages()[:5]

    class Plain:
        chat_template = None

    texts, mode = calibration.render(passages, Plain(), num_samples=99)
    assert mode == "plain" and texts == [p.text for p in passages]  # one sample per passage at most
    with pytest.raises(ValueError, match="no chat template"):
        calibration.render(passages, Plain(), mode="chat")


def test_s3_locations() -> None:
    assert S3Location.parse("s3://bucket/a/b").uri == "s3://bucket/a/b/"
    assert S3Location.parse("s3://bucket/a/b/") == S3Location("bucket", "a/b/")
    assert S3Location.parse("s3://bucket").prefix == ""
    for bad in ("https://bucket/a", "s3:///a"):
        with pytest.raises(S3LocationError):
            S3Location.parse(bad)
