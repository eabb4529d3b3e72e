"""`package` and the S3 side of `quantize` against moto's S3 (no AWS account exists here).

moto checks the calls' shapes and keeps the objects in memory; multipart uploads of real multi-GB shards, S3
throughput and SageMaker's own copy of the prefix to /opt/ml/model were not run for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import moto
import pytest
from sagemaker_endpoints import s3
from sagemaker_endpoints.package import package
from sagemaker_endpoints.tgi import LayoutError

from tests.unit.test_quantize_layout import write_model_dir

BUCKET = "lectern-models"
PREFIX = "qwen2.5-7b-w4a16/v1/"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        c = boto3.client("s3", region_name="us-east-1")
        c.create_bucket(Bucket=BUCKET)
        yield c


def keys(client, prefix: str = "") -> dict[str, int]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listing}


def model_dir(tmp_path: Path) -> Path:
    path = write_model_dir(tmp_path / "model")
    (path / "quantization_report.json").write_text(
        json.dumps(
            {
                "source": {"model": "s3://src/qwen/"},
                "perplexity": {"source": 7.1, "quantized": 7.3},
                "sizes": {"quantized_weights_bytes": 64},
                "versions": {"llmcompressor": "0.14.0.1"},
                "timings_s": {},
            }
        )
    )
    return path


def test_package_uploads_every_file_uncompressed_with_a_manifest(tmp_path: Path, client) -> None:
    path = model_dir(tmp_path)
    result = package(path, f"s3://{BUCKET}/{PREFIX}", client=client)
    assert result.model_s3_uri == f"s3://{BUCKET}/{PREFIX}"
    assert result.construct_settings() == {
        "model_s3_uri": f"s3://{BUCKET}/{PREFIX}",
        "quantize": "compressed-tensors",
    }
    stored = keys(client, PREFIX)
    local = {p.name: p.stat().st_size for p in path.iterdir()}
    assert {k.removeprefix(PREFIX): v for k, v in stored.items() if not k.endswith(s3.MANIFEST_NAME)} == local
    head = client.head_object(Bucket=BUCKET, Key=PREFIX + "model.safetensors")
    assert head["Metadata"]["sha256"] == s3.sha256_file(path / "model.safetensors")
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key=PREFIX + s3.MANIFEST_NAME)["Body"].read())
    assert manifest["files"]["config.json"]["sha256"] == s3.sha256_file(path / "config.json")
    assert manifest["tgi_quantize"] == "compressed-tensors"
    assert manifest["quantization"]["perplexity"] == {"source": 7.1, "quantized": 7.3}


def test_a_prefix_holding_other_objects_is_refused_unless_replaced(tmp_path: Path, client) -> None:
    client.put_object(Bucket=BUCKET, Key=PREFIX + "model-00001-of-00002.safetensors", Body=b"old shard")
    client.put_object(Bucket=BUCKET, Key="elsewhere/keep.txt", Body=b"x")
    path = model_dir(tmp_path)
    with pytest.raises(s3.S3LocationError, match="already holds 1 other object"):
        package(path, f"s3://{BUCKET}/{PREFIX}", client=client)
    assert set(keys(client, PREFIX)) == {PREFIX + "model-00001-of-00002.safetensors"}  # nothing uploaded
    result = package(path, f"s3://{BUCKET}/{PREFIX}", client=client, replace=True)
    assert result.deleted == [PREFIX + "model-00001-of-00002.safetensors"]
    assert PREFIX + "model-00001-of-00002.safetensors" not in keys(client)
    assert "elsewhere/keep.txt" in keys(client)  # only the prefix is touched
    package(path, f"s3://{BUCKET}/{PREFIX}", client=client)  # uploading the same model again is fine


def test_a_directory_tgi_cannot_serve_is_not_uploaded(tmp_path: Path, client) -> None:
    path = model_dir(tmp_path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(LayoutError, match=r"tokenizer\.json is missing"):
        package(path, f"s3://{BUCKET}/{PREFIX}", client=client)
    assert keys(client) == {}
    with pytest.raises(s3.S3LocationError, match="not a bucket's root"):
        s3.upload_dir(model_dir(tmp_path / "again"), f"s3://{BUCKET}/", client=client)


def test_an_s3_source_is_downloaded_and_resumed(tmp_path: Path, client) -> None:
    src = model_dir(tmp_path)
    package(src, f"s3://{BUCKET}/{PREFIX}", client=client)
    dest = tmp_path / "download"
    s3.download_prefix(f"s3://{BUCKET}/{PREFIX}", dest, client=client)
    for p in src.iterdir():
        assert (dest / p.name).read_bytes() == p.read_bytes()
    (dest / "config.json").write_text("{}")  # a different size: fetched again
    s3.download_prefix(f"s3://{BUCKET}/{PREFIX}", dest, client=client)
    assert (dest / "config.json").read_bytes() == (src / "config.json").read_bytes()
    assert not list(dest.glob("*.part"))
    with pytest.raises(s3.S3LocationError, match="no objects"):
        s3.download_prefix(f"s3://{BUCKET}/nothing-here/", tmp_path / "empty", client=client)


def test_package_command_prints_the_construct_settings(tmp_path: Path, client) -> None:
    """The command makes its own boto3 client (inside moto's mock, as it would against AWS)."""
    from sagemaker_endpoints.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app, ["package", str(model_dir(tmp_path)), "--s3-uri", f"s3://{BUCKET}/{PREFIX}"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["construct"] == {
        "model_s3_uri": f"s3://{BUCKET}/{PREFIX}",
        "quantize": "compressed-tensors",
    }
    assert summary["files"] == 5
    bad = CliRunner().invoke(app, ["package", str(tmp_path / "nowhere"), "--s3-uri", f"s3://{BUCKET}/x/"])
    assert bad.exit_code == 2 and "is not a directory" in bad.stderr
