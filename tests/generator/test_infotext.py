"""parse_a1111 follows A1111's parse_generation_parameters (1.10, default settings); the writer side of the format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldex.generator.infotext import (
    INJECTED_DEFAULTS,
    a1111_version_key,
    extract_json_values,
    format_a1111,
    implied_by_version,
    is_param_key,
    param_pairs,
    parse_a1111,
    parse_a1111_with_json,
    quote,
    unquote,
)

DATA = Path(__file__).parent.parent / "data"

DOCSTRING_EXAMPLE = """girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate
Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing
Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"""  # noqa: E501


def test_a1111_docstring_example_gives_the_full_mapping() -> None:
    assert parse_a1111(DOCSTRING_EXAMPLE) == {
        "Steps": "20",
        "Sampler": "Euler a",
        "CFG scale": "7",
        "Seed": "965400086",
        "Size-1": "512",
        "Size-2": "512",
        "Model hash": "45dee52b",
        "Prompt": DOCSTRING_EXAMPLE.split("\n")[0],
        "Negative prompt": DOCSTRING_EXAMPLE.split("\n")[1][len("Negative prompt: ") :],
        "Clip skip": "1",
        "Hires resize-1": 0,
        "Hires resize-2": 0,
        "Hires sampler": "Use same sampler",
        "Hires schedule type": "Use same scheduler",
        "Hires checkpoint": "Use same checkpoint",
        "Hires prompt": "",
        "Hires negative prompt": "",
        "Mask mode": "Inpaint masked",
        "Masked content": "original",
        "Inpaint area": "Whole picture",
        "Masked area padding": 32,
        "RNG": "GPU",
        "Schedule type": "Automatic",
        "Schedule max sigma": 0,
        "Schedule min sigma": 0,
        "Schedule rho": 0,
        "VAE Encoder": "Full",
        "VAE Decoder": "Full",
        "FP8 weight": "Disable",
        "Emphasis": "Original",
        "Refiner switch by sampling steps": False,
    }


def test_defaults_do_not_override_written_values() -> None:
    res = parse_a1111(
        "x\nSteps: 1, Clip skip: 2, RNG: CPU, Schedule type: Karras, Hires sampler: Euler, VAE Decoder: TAESD, "
        "Masked area padding: 64, Emphasis: No norm, Hires resize: 1024x768"
    )
    assert res["Clip skip"] == "2" and res["RNG"] == "CPU" and res["Schedule type"] == "Karras"
    assert res["Hires sampler"] == "Euler" and res["VAE Decoder"] == "TAESD" and res["Masked area padding"] == "64"
    assert res["Emphasis"] == "No norm"
    assert (res["Hires resize-1"], res["Hires resize-2"]) == ("1024", "768")


def test_emphasis_default_only_when_the_prompt_uses_weights() -> None:
    assert "Emphasis" not in parse_a1111("plain words\nSteps: 1, Seed: 2, CFG scale: 3")
    assert "Emphasis" not in parse_a1111("[(back to one)]\nSteps: 1, Seed: 2, CFG scale: 3")
    assert parse_a1111("plain\nNegative prompt: (ugly)\nSteps: 1, Seed: 2, CFG scale: 3")["Emphasis"] == "Original"
    # A1111 raises on a malformed weight here; it is read as an attempt at emphasis instead.
    assert parse_a1111("(x:1.2.3)\nSteps: 1, Seed: 2, CFG scale: 3")["Emphasis"] == "Original"


def test_fp8_weight_brings_the_lora_cache_default() -> None:
    assert "Cache FP16 weight for LoRA" not in parse_a1111("x\nSteps: 1, Seed: 2, CFG scale: 3")
    res = parse_a1111("x\nSteps: 1, Seed: 2, FP8 weight: Enable")
    assert res["Cache FP16 weight for LoRA"] is False


def test_fewer_than_three_pairs_is_prompt_text() -> None:
    res = parse_a1111("a cat\nSteps: 20, Seed: 1")
    assert res["Prompt"] == "a cat\nSteps: 20, Seed: 1"
    assert "Steps" not in res and "Seed" not in res


def test_multiline_prompt_and_negative() -> None:
    res = parse_a1111("\n\nline one\n\nline two  \nNegative prompt:  bad,\n worse\nSteps: 1, Seed: 2, CFG scale: 3\n")
    assert res["Prompt"] == "line one\n\nline two"
    assert res["Negative prompt"] == "bad,\nworse"


def test_negative_prompt_marker_must_start_a_line() -> None:
    res = parse_a1111("a sign saying Negative prompt: none\nSteps: 1, Seed: 2, CFG scale: 3")
    assert res["Prompt"] == "a sign saying Negative prompt: none" and res["Negative prompt"] == ""


def test_quoted_values_keep_commas_colons_and_escapes() -> None:
    res = parse_a1111(
        'x\nSteps: 1, Lora hashes: "detail: 4ab2c1f0e9d1, style: 0a1b2c3d4e5f", '
        'ADetailer prompt: "a \\"quoted\\" word,\\nnew line", Seed: 3'
    )
    assert res["Lora hashes"] == "detail: 4ab2c1f0e9d1, style: 0a1b2c3d4e5f"
    assert res["ADetailer prompt"] == 'a "quoted" word,\nnew line'
    assert res["Seed"] == "3"


def test_unquoted_values_end_at_the_next_comma() -> None:
    res = parse_a1111('x\nSteps: 1, Created Date: 2024-05-12T10:31:22Z, Hashes: {"a": 1, "b": 2}, Seed: 4')
    assert res["Created Date"] == "2024-05-12T10:31:22Z"
    assert res["Hashes"] == '{"a": 1'  # A1111 cuts CivitAI's JSON; parse_a1111_with_json does not
    assert res["Seed"] == "4"


def test_every_wxh_value_is_split() -> None:
    res = parse_a1111("x\nSteps: 1, Size: 640x960, Seed resize from: 512x512, Model: 3x4, Seed: 1")
    assert (res["Size-1"], res["Size-2"]) == ("640", "960")
    assert (res["Seed resize from-1"], res["Seed resize from-2"]) == ("512", "512")
    assert (res["Model-1"], res["Model-2"]) == ("3", "4")
    assert "Size" not in res and "Model" not in res


def test_empty_values_are_skipped() -> None:
    res = parse_a1111("x\nSteps: 1, Model: , VAE: v, Seed: 2")
    assert "Model" not in res and res["VAE"] == "v"


def test_hypernet_is_appended_to_the_prompt() -> None:
    assert parse_a1111("x\nSteps: 1, Seed: 2, Hypernet: anime")["Prompt"] == "x<hypernet:anime:1.0>"
    res = parse_a1111("x\nSteps: 1, Hypernet: anime, Hypernet strength: 0.5")
    assert res["Prompt"] == "x<hypernet:anime:0.5>"


@pytest.mark.parametrize(
    ("line", "size", "hires"),
    [
        ("Size: 1024x1024, First pass size: 0x0", (512, 512), (1024, 1024)),
        ("Size: 1024x768, First pass size: 0x0", (640, 448), (1024, 768)),  # ceil(591.2/64), ceil(443.4/64)
        ("Size: 1024x768, First pass size: 512x384", (512, 384), (1024, 768)),
        ("First pass size: 0x0", (512, 512), (512, 512)),
    ],
)
def test_old_first_pass_size_becomes_size_and_hires_resize(
    line: str, size: tuple[int, int], hires: tuple[int, int]
) -> None:
    res = parse_a1111(f"x\nSteps: 1, Seed: 2, {line}")
    assert (res["Size-1"], res["Size-2"]) == size
    assert (res["Hires resize-1"], res["Hires resize-2"]) == hires


def test_first_pass_size_with_zero_size_does_not_crash() -> None:
    res = parse_a1111("x\nSteps: 1, Size: 0x0, First pass size: 0x0")
    assert (res["Size-1"], res["Size-2"]) == ("0", "0")


@pytest.mark.parametrize(
    ("version", "prompt", "sampler", "expected"),
    [
        ("v1.5.1", "a [b:c:3]", "DDIM", {"Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod"}),
        ("v1.5.1", "a b", "Euler", {"Downcast alphas_cumprod"}),
        ("v1.6.0", "a [b:c:3]", "PLMS", {"Downcast alphas_cumprod"}),
        ("v1.7.0-224-gabcdef0", "a", "Euler", {"Downcast alphas_cumprod"}),
        ("v1.7.0-225-gabcdef0", "a", "Euler", set()),
        ("1.8.0-RC", "a", "Euler", set()),
        ("v1.10.1", "a", "Euler", set()),
        ("f2.0.1v1.10.1-previous-535-gb20cb4bf", "a [b:c:3]", "DDIM", set()),
        ("not a version", "a", "Euler", set()),
    ],
)
def test_version_back_compatibility(version: str, prompt: str, sampler: str, expected: set[str]) -> None:
    res = parse_a1111(f"{prompt}\nSteps: 1, Sampler: {sampler}, Seed: 2, Version: {version}")
    switched = {k for k in ("Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod") if k in res}
    assert switched == expected
    assert all(res[k] is True for k in switched)


def test_refiner_switch_by_steps_before_1_8() -> None:
    old = parse_a1111("a\nSteps: 1, Seed: 2, Refiner: sdxl_refiner, Version: 1.8.0-RC")
    assert old["Refiner switch by sampling steps"] is True
    new = parse_a1111("a\nSteps: 1, Seed: 2, Refiner: sdxl_refiner, Version: v1.8.0")
    assert new["Refiner switch by sampling steps"] is False


def test_version_keys_order_like_pep440() -> None:
    ordered = ["1.5.2", "v1.6.0", "1.7.0", "v1.7.0-224", "v1.7.0-225", "1.8.0rc1", "1.8.0", "v1.8.0-139", "1.10.1"]
    keys = [a1111_version_key(v) for v in ordered]
    assert all(k is not None for k in keys)
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert a1111_version_key("v1.6.0") == a1111_version_key("1.6")
    assert a1111_version_key("f2.0.1v1.10.1-previous-1-gabc") is None
    assert a1111_version_key(None) is None and a1111_version_key(3) is None


def test_implied_by_version() -> None:
    assert implied_by_version("v1.5.0", "[a:b:1]", "DDIM", None) == {
        "Old prompt editing timelines": True,
        "Pad conds v0": True,
        "Downcast alphas_cumprod": True,
    }
    assert implied_by_version(None, "[a]", "DDIM", "r") == {}


def test_crlf_infotexts_parse_like_a1111() -> None:
    res = parse_a1111("a\r\nNegative prompt: b\r\nSteps: 1, Seed: 2, Sampler: Euler a\r\n")
    assert res["Prompt"] == "a" and res["Negative prompt"] == "b" and res["Sampler"] == "Euler a"


def test_never_raises_on_garbage() -> None:
    for text in ["", "\n\n", ":", ", , ,", '"', 'a: "', "Steps: , Seed: , CFG: ", "\x00\xff", "a:b:c:d:e,f:g,h:i"]:
        res = parse_a1111(text)
        assert isinstance(res["Prompt"], str)


# -- key/value scanning ----------------------------------------------------------------------------------------


def test_param_pairs_raw_values() -> None:
    assert param_pairs('Steps: 20, Sampler: Euler a, Lora hashes: "a: 1, b: 2", Size: 1x2') == [
        ("Steps", "20"),
        ("Sampler", "Euler a"),
        ("Lora hashes", '"a: 1, b: 2"'),
        ("Size", "1x2"),
    ]


def test_param_pairs_keys_need_two_characters_and_allowed_characters() -> None:
    assert param_pairs("A: 1, Kohya Hires.fix: True, SAG Scale/Blur-2: 3") == [
        ("fix", "True"),
        ("SAG Scale/Blur-2", "3"),
    ]


def test_unclosed_quote_falls_back_to_the_next_comma() -> None:
    assert param_pairs('A1: "open, B2: x') == [("A1", '"open'), ("B2", "x")]


# -- JSON values (CivitAI) ---------------------------------------------------------------------------------------


def test_extract_json_values() -> None:
    line = 'Steps: 20, Hashes: {"model": "abc", "lora:x": "def"}, Civitai resources: [{"type": "lora"}], Seed: 1'
    rest, values = extract_json_values(line)
    assert values == {"Hashes": {"model": "abc", "lora:x": "def"}, "Civitai resources": [{"type": "lora"}]}
    assert param_pairs(rest) == [("Steps", "20"), ("Seed", "1")]


def test_broken_json_is_left_for_a1111s_rules() -> None:
    line = 'Steps: 20, Hashes: {"model": "abc", Seed: 1, Sampler: Euler'
    rest, values = extract_json_values(line)
    assert values == {} and rest == line
    assert extract_json_values("Hashes: {} trailing, Steps: 1") == ("Hashes: {} trailing, Steps: 1", {})
    deep = "Steps: 1, Hashes: " + "[" * 100000
    assert extract_json_values(deep) == (deep, {})


def test_parse_with_json_decides_the_parameter_line_as_a1111_does() -> None:
    fields, values = parse_a1111_with_json('a cat\nSteps: 1, Hashes: {"model": "m"}')
    assert values == {} and fields["Prompt"] == 'a cat\nSteps: 1, Hashes: {"model": "m"}'
    fields, values = parse_a1111_with_json('a cat\nSteps: 1, Seed: 2, Hashes: {"model": "m", "vae": "v"}')
    assert values == {"Hashes": {"model": "m", "vae": "v"}} and fields["Seed"] == "2"


# -- writing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("Euler a", "Euler a"),
        (7, "7"),
        ("a, b", '"a, b"'),
        ("key: value", '"key: value"'),
        ("two\nlines", '"two\\nlines"'),
        ("", '""'),
        (" padded", '" padded"'),
        ('"quoted"', '"\\"quoted\\""'),
        ("日本語, テスト", '"日本語, テスト"'),
    ],
)
def test_quote(value: object, written: str) -> None:
    assert quote(value) == written
    assert unquote(written) == str(value)


def test_unquote_leaves_non_json_alone() -> None:
    assert unquote('"') == '"' and unquote('"a" "b"') == '"a" "b"' and unquote("plain") == "plain"


def test_format_then_parse() -> None:
    text = format_a1111(
        "a cat\nin a hat",
        "blurry",
        {"Steps": 20, "Sampler": "DPM++ 2M", "Size": "512x768", "Note": "a, b: c", "Skipped": None, "Empty": ""},
    )
    assert text == (
        'a cat\nin a hat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Size: 512x768, Note: "a, b: c", '
        'Empty: ""'
    )
    res = parse_a1111(text)
    assert res["Prompt"] == "a cat\nin a hat" and res["Note"] == "a, b: c" and res["Empty"] == ""
    assert format_a1111("", "", {"Steps": 1, "Seed": 2, "CFG scale": 3}) == "Steps: 1, Seed: 2, CFG scale: 3"


@pytest.mark.parametrize("key", ["", "A", "bad:key", "comma,key", " lead", "dot.key", "-dash"])
def test_unreadable_keys_are_refused(key: str) -> None:
    assert not is_param_key(key)
    with pytest.raises(ValueError, match="cannot be an infotext key"):
        format_a1111("p", "", {key: "v", "Steps": 1, "Seed": 2})


def test_readable_keys() -> None:
    for key in ["Steps", "ADetailer model 2nd", "SAG Guidance Scale/Blur", "Seed resize from-1", "风格", "K "]:
        assert is_param_key(key)


def test_injected_defaults_table_matches_the_parser() -> None:
    res = parse_a1111("x\nSteps: 1, Seed: 2, FP8 weight: Enable")
    for key, value in INJECTED_DEFAULTS.items():
        if key not in ("Emphasis", "FP8 weight"):
            assert res[key] == value, key


# -- corpus ------------------------------------------------------------------------------------------------------


def _infotext_corpus() -> list[dict[str, Any]]:
    with open(DATA / "infotexts.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("entry", _infotext_corpus(), ids=lambda e: str(e["id"]))
def test_infotext_corpus_parses_as_expected(entry: dict[str, Any]) -> None:
    res = parse_a1111(entry["text"])
    for key, value in entry["expect"].items():
        assert res.get(key, "<missing>") == value, key
    assert isinstance(res["Prompt"], str) and isinstance(res["Negative prompt"], str)
