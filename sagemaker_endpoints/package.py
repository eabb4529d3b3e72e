"""Check a quantized model directory against what TGI loads, and upload it to an uncompressed S3 prefix.

The result is what the CDK construct (cdk/constructs/fallback_model.py) needs: the S3 prefix for
`ModelDataSource.S3DataSource` and the `HF_MODEL_QUANTIZE` value for the checkpoint's format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_endpoints import s3, tgi
from sagemaker_endpoints.quantize import REPORT_NAME


@dataclass(frozen=True)
class PackageResult:
    model_s3_uri: str
    quantize: str | None
    architecture: str
    total_bytes: int
    files: dict[str, dict[str, Any]]
    deleted: list[str]

    def construct_settings(self) -> dict[str, Any]:
        """The FallbackModelConfig fields this upload determines."""
        return {"model_s3_uri": self.model_s3_uri, "quantize": self.quantize}


def package(
    model_dir: Path, s3_uri: str, *, client: Any | None = None, replace: bool = False
) -> PackageResult:
    layout = tgi.inspect_model_dir(Path(model_dir))
    extra: dict[str, Any] = {"architecture": layout.architecture, "tgi_quantize": layout.quantize}
    report = Path(model_dir) / REPORT_NAME
    if report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        extra["quantization"] = {k: data.get(k) for k in ("source", "perplexity", "sizes", "versions")}
    uploaded = s3.upload_dir(layout.path, s3_uri, client=client, replace=replace, extra=extra)
    return PackageResult(
        uploaded.uri,
        layout.quantize,
        layout.architecture,
        uploaded.total_bytes,
        uploaded.files,
        uploaded.deleted,
    )
