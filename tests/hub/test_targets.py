"""Download TARGET parsing: ids, v:ID, CivitAI links on either host or the configured one, AIR urns; clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldex.errors import UsageError
from modeldex.hub.targets import Target, parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123", Target(model_id=123)),
        ("  4201 \n", Target(model_id=4201)),
        ("v:456", Target(version_id=456)),
        ("V:456", Target(version_id=456)),
        ("version:456", Target(version_id=456)),
        ("m:12", Target(model_id=12)),
        ("https://civitai.com/models/123", Target(model_id=123)),
        ("https://civitai.com/models/123/realistic-vision", Target(model_id=123)),
        ("https://www.civitai.com/models/123/slug/", Target(model_id=123)),
        ("civitai.com/models/123", Target(model_id=123)),
        ("https://civitai.red/models/123?modelVersionId=456", Target(model_id=123, version_id=456)),
        ("http://civitai.red/models/123/x?modelVersionId=456#gallery", Target(model_id=123, version_id=456)),
        ("https://civitai.com/api/download/models/456", Target(version_id=456)),
        (
            "https://civitai.com/api/download/models/456?type=Model&format=SafeTensor&size=pruned&fp=fp16",
            Target(version_id=456, file_type="Model", format="SafeTensor", size="pruned", fp="fp16"),
        ),
        (
            "https://civitai.red/api/download/models/456?type=Pruned%20Model&token=abc",
            Target(version_id=456, file_type="Pruned Model"),
        ),
        ("https://civitai.com/api/v1/models/123", Target(model_id=123)),
        ("https://civitai.com/api/v1/model-versions/456", Target(version_id=456)),
        ("urn:air:sdxl:lora:civitai:123@456", Target(model_id=123, version_id=456)),
        ("URN:AIR:SD1:Checkpoint:CivitAI:4201@130072", Target(model_id=4201, version_id=130072)),
        ("urn:air:flux1:checkpoint:civitai:123", Target(model_id=123)),
        ("urn:air:sdxl:lora:civitai:123@456.safetensors", Target(model_id=123, version_id=456, format="SafeTensor")),
        (
            "urn:air:sd1:checkpoint:civitai:123@456:unet.ckpt",
            Target(model_id=123, version_id=456, format="PickleTensor"),
        ),
    ],
)
def test_parses(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


def test_configured_host_and_path_prefix_are_accepted() -> None:
    base = "http://192.168.1.20:8765/mirror"
    assert parse_target("http://192.168.1.20:8765/mirror/models/7", base_url=base) == Target(model_id=7)
    assert parse_target("http://192.168.1.20:8765/mirror/api/download/models/8?fp=fp32", base_url=base) == Target(
        version_id=8, fp="fp32"
    )
    assert parse_target("http://127.0.0.1:8765/models/5", base_url="http://127.0.0.1:8765") == Target(model_id=5)
    with pytest.raises(UsageError, match="not a CivitAI link"):
        parse_target("http://192.168.1.20:8765/models/7")  # the same link, but that host is not configured


def test_describe() -> None:
    assert parse_target("v:5").describe() == "version 5"
    assert parse_target("5").describe() == "model 5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no download target"),
        ("   ", "no download target"),
        ("v:", "not a CivitAI id"),
        ("v:abc", "not a CivitAI id"),
        ("v:0", "not a CivitAI id"),
        ("v:-3", "not a CivitAI id"),
        ("0", "not a CivitAI id"),
        ("١٢٣", "not a download target"),  # Arabic-Indic digits are not an id
        ("model.safetensors", "not a CivitAI link"),
        ("some words", "not a download target"),
        ("https://huggingface.co/models/123", "not a CivitAI link"),
        ("https://civitai.com.evil.example/models/123", "not a CivitAI link"),
        ("ftp://civitai.com/models/1", "not a download target"),
        ("file:///etc/passwd", "not a download target"),
        ("https://civitai.com/images/55", "not a CivitAI model or download link"),
        ("https://civitai.com/user/someone", "not a CivitAI model or download link"),
        ("https://civitai.com/models/abc", "not a CivitAI id"),
        ("https://civitai.com/models/1?modelVersionId=x", "not a CivitAI id"),
        ("https://civitai.com/api/download/models/", "not a CivitAI model or download link"),
        ("urn:air:sdxl:lora:huggingface:org/repo", "only civitai"),
        ("urn:air:sdxl:lora", "not an AIR urn"),
        ("urn:air:sdxl:lora:civitai:abc@1", "not a CivitAI id"),
    ],
)
def test_refuses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_target(text)
    assert caught.value.exit_code == 2 and "\n" not in caught.value.message


def test_a_token_in_a_refused_link_is_not_echoed() -> None:
    with pytest.raises(UsageError) as caught:
        parse_target("https://evil.example/api/download/models/1?token=s3cr3tvalue")
    assert "s3cr3tvalue" not in caught.value.message and "token=***" in caught.value.message


@given(st.text(max_size=80))
def test_any_text_parses_or_fails_as_usage(text: str) -> None:
    try:
        target = parse_target(text)
    except UsageError as exc:
        assert exc.message
        return
    assert target.model_id is not None or target.version_id is not None
    assert all(i is None or i > 0 for i in (target.model_id, target.version_id))


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=10**12))
def test_round_trips_ids_in_every_form(model_id: int, version_id: int) -> None:
    assert parse_target(str(model_id)) == Target(model_id=model_id)
    assert parse_target(f"v:{version_id}") == Target(version_id=version_id)
    assert parse_target(f"https://civitai.red/models/{model_id}?modelVersionId={version_id}") == Target(
        model_id=model_id, version_id=version_id
    )
    assert parse_target(f"urn:air:sdxl:lora:civitai:{model_id}@{version_id}") == Target(
        model_id=model_id, version_id=version_id
    )
