"""One settings core for both modes: the shared fields and their validators are declared once
(lectern.settings.CoreSettings), read from `LECTERN_*` variables, and fail with every bad variable named."""

from __future__ import annotations

import pytest

from lectern.aws.settings import AwsSettings
from lectern.settings import CoreSettings, LocalSettings, SettingsError

AWS_REQUIRED = {
    "LECTERN_DOCUMENTS_BUCKET": "docs-bucket",
    "LECTERN_TABLE_NAME": "lectern",
    "LECTERN_OPENSEARCH_ENDPOINT": "https://search-lectern.us-east-1.es.amazonaws.com",
}


def _both(environ: dict[str, str]) -> list[CoreSettings]:
    return [LocalSettings.from_env(environ), AwsSettings.from_env({**AWS_REQUIRED, **environ})]


def test_every_shared_field_is_declared_once_on_the_core() -> None:
    shared = set(LocalSettings.model_fields) & set(AwsSettings.model_fields)
    assert shared == set(CoreSettings.model_fields)
    for name in CoreSettings.model_fields:
        # a mode may change a default, never the constraint: the metadata (ge/le/...) is the core's
        core = CoreSettings.model_fields[name].metadata
        assert LocalSettings.model_fields[name].metadata == core, name
        assert AwsSettings.model_fields[name].metadata == core, name


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"LECTERN_CHUNK_SIZE": "100", "LECTERN_CHUNK_OVERLAP": "50"}, "LECTERN_CHUNK_OVERLAP"),  # < half, both
        ({"LECTERN_TOP_K": "0"}, "LECTERN_TOP_K"),
        ({"LECTERN_CACHE_TTL_S": "5"}, "LECTERN_CACHE_TTL_S"),
        ({"LECTERN_CACHE_MAX_ENTRIES": "9000"}, "LECTERN_CACHE_MAX_ENTRIES"),
        ({"LECTERN_PROMPT_B_SHARE": "1.5"}, "LECTERN_PROMPT_B_SHARE"),
    ],
)
def test_one_rule_refuses_the_same_value_in_both_modes(environ: dict[str, str], variable: str) -> None:
    for cls, env in ((LocalSettings, environ), (AwsSettings, {**AWS_REQUIRED, **environ})):
        with pytest.raises(SettingsError, match=variable):
            cls.from_env(env)


def test_values_parse_the_same_in_both_modes() -> None:
    env = {"LECTERN_CHUNK_SIZE": "300", "LECTERN_CHUNK_OVERLAP": "40", "LECTERN_ROUTING": "false", "LECTERN_TOP_K": "7"}
    for s in _both(env):
        assert (s.chunk_size, s.chunk_overlap, s.routing, s.top_k) == (300, 40, False, 7)


def test_mode_defaults_differ_only_where_declared() -> None:
    local, aws = _both({})
    assert (local.max_context_tokens, aws.max_context_tokens) == (600, 1500)
    assert (local.rate_limit_per_minute, aws.rate_limit_per_minute) == (120, 600)
    assert (local.cache_max_entries, aws.cache_max_entries) == (1000, 500)
    differs = {n for n in CoreSettings.model_fields if getattr(local, n) != getattr(aws, n)}
    assert differs == {
        "max_context_tokens",
        "rate_limit_per_minute",
        "daily_token_budget",
        "cache_max_entries",
        "ocr",  # each mode's own engine: tesseract locally, textract on AWS
    }
    assert (local.ocr, aws.ocr) == ("tesseract", "textract")
    with pytest.raises(SettingsError, match="AWS engine"):
        LocalSettings.from_env({"LECTERN_OCR": "textract"}).extraction_limits()
    with pytest.raises(SettingsError, match="not available on AWS"):
        AwsSettings.from_env({**AWS_REQUIRED, "LECTERN_OCR": "tesseract"}).extraction_limits()


def test_the_given_environment_is_read_not_the_process_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LECTERN_TOP_K", "9")
    assert LocalSettings.from_env({}).top_k == 5
    assert LocalSettings.from_env().top_k == 9
    assert LocalSettings.from_env({"LECTERN_TOP_K": "3"}).top_k == 3
    # keyword overrides win over the environment; None means "not given"; an empty variable is unset
    assert LocalSettings.from_env({"LECTERN_TOP_K": "3"}, top_k=4).top_k == 4
    assert LocalSettings.from_env({"LECTERN_TOP_K": "3"}, top_k=None).top_k == 3
    assert LocalSettings.from_env({"LECTERN_TOP_K": ""}).top_k == 5


def test_errors_name_every_bad_variable_and_unknown_overrides() -> None:
    with pytest.raises(SettingsError) as info:
        LocalSettings.from_env({"LECTERN_PORT": "x", "LECTERN_TOP_K": "99"})
    msg = str(info.value)
    assert msg.startswith("Invalid Lectern settings:")
    assert "LECTERN_PORT:" in msg and "LECTERN_TOP_K:" in msg
    with pytest.raises(SettingsError, match="unknown setting"):
        LocalSettings.from_env({}, chunk_sise=100)
    with pytest.raises(SettingsError, match="Invalid Lambda configuration") as info:
        AwsSettings.from_env({"LECTERN_EMBEDDING_DIMENSION": "768"})
    assert "LECTERN_DOCUMENTS_BUCKET" in str(info.value) and "LECTERN_EMBEDDING_DIMENSION" in str(info.value)
