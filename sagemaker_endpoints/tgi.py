"""What Hugging Face TGI (the SageMaker "huggingface-pytorch-tgi-inference" image) needs in a model directory.

TGI 3.3 runs transformers 4.x and the compressed-tensors of its day, while llm-compressor writes with
transformers 5. Two things that transformers 5 writes would load in TGI without an error and still be wrong or
fail late, so they are checked here rather than discovered on a GPU:

- a config.json with `rope_parameters` and no `rope_theta`: transformers 4 falls back to the architecture's
  default theta (10 000), silently wrong for Qwen2.5 and Mistral v0.3 (1 000 000);
- a tokenizer_config.json naming `TokenizersBackend`, a class transformers 4 does not have.

`quantize` avoids both by keeping the source model's own config.json (plus `quantization_config`) and its
tokenizer files byte for byte; `inspect_model_dir` refuses a directory that has either problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# TGI's --quantize values (HF_MODEL_QUANTIZE on SageMaker) for the checkpoint formats we produce or accept.
QUANTIZE_FOR_METHOD = {"compressed-tensors": "compressed-tensors", "awq": "awq", "gptq": "gptq"}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_TRANSFORMERS5_TOKENIZER_CLASSES = {"TokenizersBackend"}


class LayoutError(ValueError):
    """The directory is not one TGI can serve. The message lists every problem found."""


@dataclass(frozen=True)
class ModelLayout:
    """A checked model directory: TGI's quantize value for it, and its files with their sizes."""

    path: Path
    quantize: str | None
    architecture: str
    files: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def weight_bytes(self) -> int:
        return sum(size for name, size in self.files.items() if name.endswith(".safetensors"))


def _load_json(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path.name} is missing")
        return {}
    except ValueError as exc:
        problems.append(f"{path.name} is not valid JSON ({exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path.name} is not a JSON object")
        return {}
    return data


def _compressed_tensors_problems(qc: dict[str, Any]) -> list[str]:
    """TGI 3.3 serves pack-quantized INT4/INT8 weight-only groups (GPTQ-Marlin kernels), once compressed."""
    problems = []
    if qc.get("quantization_status") not in ("compressed", "frozen"):
        problems.append(f"quantization_status is {qc.get('quantization_status')!r}, not 'compressed'")
    groups = qc.get("config_groups") or {}
    if not groups:
        problems.append("quantization_config has no config_groups")
    for name, group in groups.items():
        weights = (group or {}).get("weights") or {}
        fmt = group.get("format") or qc.get("format")
        if fmt != "pack-quantized" or weights.get("type") != "int" or weights.get("num_bits") not in (4, 8):
            problems.append(
                f"group {name}: format {fmt!r}, {weights.get('type')!r} {weights.get('num_bits')}-bit is "
                "not a weight-only INT4/INT8 pack-quantized group"
            )
        if group.get("input_activations"):
            problems.append(f"group {name} quantizes activations; this pipeline serves W4A16 only")
    return problems


def _quantize_value(config: dict[str, Any], problems: list[str]) -> str | None:
    qc = config.get("quantization_config")
    if qc is None:
        return None
    method = qc.get("quant_method")
    if method not in QUANTIZE_FOR_METHOD:
        problems.append(f"quantization method {method!r} is not one TGI loads from a checkpoint")
        return None
    if method == "compressed-tensors":
        problems.extend(_compressed_tensors_problems(qc))
    return QUANTIZE_FOR_METHOD[method]


def _config_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    if not config.get("model_type") or not config.get("architectures"):
        problems.append("config.json lacks model_type or architectures")
    if "rope_parameters" in config and "rope_theta" not in config and "rope_scaling" not in config:
        problems.append(
            "config.json has transformers 5 `rope_parameters` but no `rope_theta`: TGI (transformers 4) "
            "would use the default rope theta; keep the source model's config.json"
        )
    return problems


def _tokenizer_problems(path: Path, names: set[str]) -> list[str]:
    problems = []
    if "tokenizer.json" not in names:
        problems.append("tokenizer.json is missing (TGI's router needs the fast tokenizer file)")
    if "tokenizer_config.json" in names:
        cls = _load_json(path / "tokenizer_config.json", problems).get("tokenizer_class")
        if cls in _TRANSFORMERS5_TOKENIZER_CLASSES:
            problems.append(
                f"tokenizer_config.json names {cls!r}, which transformers 4 (inside TGI) cannot load; "
                "copy the source model's tokenizer files"
            )
    else:
        problems.append("tokenizer_config.json is missing")
    return problems


def _weight_problems(path: Path, names: set[str]) -> list[str]:
    problems = []
    shards = sorted(n for n in names if n.endswith(".safetensors"))
    if not shards:
        problems.append("no *.safetensors weights")
    elif len(shards) > 1 and "model.safetensors.index.json" not in names:
        problems.append("several safetensors shards but no model.safetensors.index.json")
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles:
        problems.append(f"pickled weights are not served (and run code when loaded): {', '.join(pickles)}")
    if "model.safetensors.index.json" in names:
        index = _load_json(path / "model.safetensors.index.json", problems)
        missing = sorted(set((index.get("weight_map") or {}).values()) - names)
        if missing:
            problems.append(f"the shard index names files that are missing: {', '.join(missing)}")
    return problems


def inspect_model_dir(path: Path) -> ModelLayout:
    """Check that TGI can serve `path` as HF_MODEL_ID=/opt/ml/model; raise LayoutError naming each problem."""
    path = Path(path)
    if not path.is_dir():
        raise LayoutError(f"{path} is not a directory")
    problems: list[str] = []
    files: dict[str, int] = {}
    for p in sorted(path.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(path).as_posix()
        if p.is_symlink():
            problems.append(f"{rel} is a symbolic link (SageMaker copies files, not links)")
        elif "/" in rel and not rel.startswith("."):
            problems.append(f"{rel} is in a subfolder; TGI reads a flat model directory")
        files[rel] = p.stat().st_size
    names = set(files)
    config = _load_json(path / "config.json", problems)
    problems += _config_problems(config) if config else []
    quantize = _quantize_value(config, problems)
    problems += _weight_problems(path, names)
    problems += _tokenizer_problems(path, names)
    if problems:
        raise LayoutError(f"{path} is not a model directory TGI can serve:\n- " + "\n- ".join(problems))
    architecture = str((config.get("architectures") or ["?"])[0])
    return ModelLayout(path, quantize, architecture, files)
