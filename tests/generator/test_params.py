"""GenerationParams: typed fields from infotexts and CivitAI meta, and the infotext round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldex.errors import GenerationError
from modeldex.generator.params import (
    GenerationParams,
    NoParametersError,
    Resource,
    format_hash_list,
    parse_hash_list,
)

DATA = Path(__file__).parent.parent / "data"

SDXL_HIRES = """score_9, score_8_up, 1girl, <lora:kitsune:0.8>, <lyco:ink_style:0.5:0.3>, (lantern light:1.2)
Negative prompt: score_4, lowres, easynegative
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 4128823196, Size: 832x1216, Model hash: 67ab2fd8ec, Model: ponyDiffusionV6XL, VAE hash: 235745af8d, VAE: sdxl_vae.safetensors, Denoising strength: 0.4, Clip skip: 2, ENSD: 31337, RNG: NV, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: 4x-UltraSharp, Hires CFG Scale: 4, Lora hashes: "kitsune: 1f2e3d4c5b6a, ink_style: 0a0b0c0d0e0f", TI hashes: "easynegative: c74b4e810b03", ADetailer model: face_yolov8n.pt, Hashes: {"model": "67ab2fd8ec", "vae": "235745af8d", "embed:easynegative": "c74b4e810b"}, Version: v1.10.1"""  # noqa: E501


def test_infotext_fields_are_typed() -> None:
    p = GenerationParams.from_infotext(SDXL_HIRES)
    assert p.prompt.startswith("score_9") and p.negative_prompt == "score_4, lowres, easynegative"
    assert (p.steps, p.sampler, p.schedule_type, p.cfg_scale, p.seed) == (28, "DPM++ 2M", "Karras", 6.5, 4128823196)
    assert (p.width, p.height, p.model, p.model_hash) == (832, 1216, "ponyDiffusionV6XL", "67ab2fd8ec")
    assert (p.vae, p.vae_hash, p.denoising_strength, p.clip_skip, p.ensd, p.rng) == (
        "sdxl_vae.safetensors",
        "235745af8d",
        0.4,
        2,
        31337,
        "NV",
    )
    assert (p.hires_upscale, p.hires_steps, p.hires_upscaler, p.hires_cfg_scale) == (1.5, 12, "4x-UltraSharp", 4.0)
    assert p.final_size == (1248, 1824)
    assert p.lora_hashes == {"kitsune": "1f2e3d4c5b6a", "ink_style": "0a0b0c0d0e0f"}
    assert p.ti_hashes == {"easynegative": "c74b4e810b03"}
    assert p.hashes == {"model": "67ab2fd8ec", "vae": "235745af8d", "embed:easynegative": "c74b4e810b"}
    assert p.version == "v1.10.1" and not p.downcast_alphas_cumprod
    assert p.extra == {"ADetailer model": "face_yolov8n.pt"}


def test_a1111_defaults_read_as_unset() -> None:
    p = GenerationParams.from_infotext(
        "a\nSteps: 1, Seed: 2, Schedule type: Automatic, Hires sampler: Use same sampler, Schedule max sigma: 0.0, "
        "Hires resize: 0x0, Mask mode: Inpaint masked, Masked area padding: 32, Clip skip: 1, RNG: GPU"
    )
    assert p.schedule_type is None and p.hires_sampler is None and p.schedule_max_sigma is None
    assert p.hires_resize is None and p.clip_skip == 1 and p.rng == "GPU"
    assert p.extra == {}
    # Two pairs alone would read as prompt text: a default A1111 reads as unset fills the line up.
    assert p.to_infotext() == "a\nSteps: 1, Seed: 2, Clip skip: 1"
    assert GenerationParams.from_infotext(p.to_infotext()) == p


def test_a_prompt_that_reads_as_parameters_gets_a_parameter_line() -> None:
    p = GenerationParams(prompt="style: anime, mood: calm, light: soft")
    assert p.to_infotext() == "style: anime, mood: calm, light: soft\nClip skip: 1, RNG: GPU, Schedule type: Automatic"
    assert GenerationParams.from_infotext(p.to_infotext()) == p
    assert GenerationParams(prompt="just words").to_infotext() == "just words"
    assert GenerationParams().to_infotext() == ""


def test_unreadable_values_are_kept_verbatim() -> None:
    p = GenerationParams.from_infotext("a\nSteps: many, Seed: 1.5, CFG scale: inf, Size: big, Pad conds: maybe")
    assert p.steps is None and p.seed is None and p.cfg_scale is None and p.width is None and not p.pad_conds
    assert p.extra == {"Steps": "many", "Seed": "1.5", "CFG scale": "inf", "Size": "big", "Pad conds": "maybe"}
    assert GenerationParams.from_infotext(p.to_infotext()) == p


def test_integral_floats_are_accepted_for_integers() -> None:
    p = GenerationParams.from_infotext("a\nSteps: 20.0, Seed: 7, Clip skip: 2.0")
    assert (p.steps, p.clip_skip) == (20, 2)


def test_hypernet_keys_become_the_prompt_tag() -> None:
    p = GenerationParams.from_infotext("a\nSteps: 1, Seed: 2, Hypernet: anime, Hypernet strength: 0.5")
    assert p.prompt == "a<hypernet:anime:0.5>" and "Hypernet" not in p.extra
    assert [(r.type, r.name, r.weight) for r in p.all_resources()] == [("hypernet", "anime", 0.5)]
    assert GenerationParams.from_infotext(p.to_infotext()) == p


def test_old_first_pass_size_round_trips_as_size_and_hires_resize() -> None:
    p = GenerationParams.from_infotext("a\nSteps: 1, Seed: 2, Size: 1024x1024, First pass size: 0x0")
    assert (p.width, p.height, p.hires_resize) == (512, 512, (1024, 1024))
    assert "First pass size" not in p.to_infotext()
    assert GenerationParams.from_infotext(p.to_infotext()) == p


def test_flags_implied_by_version_are_not_written() -> None:
    p = GenerationParams.from_infotext("a [b:c:2]\nSteps: 1, Sampler: DDIM, Seed: 2, Version: v1.5.1")
    assert p.downcast_alphas_cumprod and p.old_prompt_editing_timelines and p.pad_conds_v0
    text = p.to_infotext()
    assert "Downcast" not in text and "Old prompt" not in text and text.endswith("Version: v1.5.1")
    q = GenerationParams.from_infotext("a\nSteps: 1, Seed: 2, Downcast alphas_cumprod: True, Pad conds: True")
    assert q.to_infotext() == "a\nSteps: 1, Seed: 2, Pad conds: True, Downcast alphas_cumprod: True"


def test_infotext_write_order_follows_a1111() -> None:
    p = GenerationParams(
        prompt="p",
        steps=20,
        sampler="Euler a",
        cfg_scale=7.0,
        seed=1,
        width=512,
        height=512,
        model="m",
        version="v1.10.1",
        hashes={"model": "abc"},
        extra={"ADetailer model": "face_yolov8n.pt"},
    )
    assert p.to_infotext() == (
        "p\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: m, ADetailer model: "
        'face_yolov8n.pt, Hashes: {"model": "abc"}, Version: v1.10.1'
    )


def test_keys_a1111_cannot_read_are_left_out_when_writing() -> None:
    p = GenerationParams(prompt="p", steps=1, seed=2, cfg_scale=3.0, extra={"bad:key": "x", "Good key": "y"})
    assert p.to_infotext() == "p\nSteps: 1, CFG scale: 3, Seed: 2, Good key: y"


def test_hash_lists() -> None:
    assert parse_hash_list("a: 1, b: 2") == {"a": "1", "b": "2"}
    assert parse_hash_list("no hashes here") is None and parse_hash_list("a: , b: 2") is None
    assert format_hash_list({"a": "1", "b": "2"}) == "a: 1, b: 2"
    p = GenerationParams.from_infotext('x\nSteps: 1, Seed: 2, Lora hashes: "not a list"')
    assert p.lora_hashes == {} and p.extra == {"Lora hashes": "not a list"}


def test_all_resources_joins_prompt_tags_and_hashes() -> None:
    p = GenerationParams.from_infotext(SDXL_HIRES)
    resources = [(r.type, r.name, r.hash, r.weight) for r in p.all_resources()]
    assert resources == [
        ("checkpoint", "ponyDiffusionV6XL", "67ab2fd8ec", None),
        ("vae", "sdxl_vae.safetensors", "235745af8d", None),
        ("lora", "kitsune", "1f2e3d4c5b6a", 0.8),
        ("lora", "ink_style", "0a0b0c0d0e0f", 0.5),
        ("embed", "easynegative", "c74b4e810b03", None),
    ]


def test_all_resources_survives_an_unreadable_tag() -> None:
    p = GenerationParams(prompt="<lora:x:strong>", model="m")
    assert [(r.type, r.name) for r in p.all_resources()] == [("checkpoint", "m")]


def test_dict_round_trip() -> None:
    p = GenerationParams.from_infotext(SDXL_HIRES)
    p.civitai_resources = [Resource("lora", weight=0.5, model_version_id=12, extra={"modelName": "x"})]
    data = json.loads(json.dumps(p.to_dict()))
    assert GenerationParams.from_dict(data) == p


# -- CivitAI meta ------------------------------------------------------------------------------------------------


def test_civitai_documented_example() -> None:
    meta = {
        "Size": "512x768",
        "seed": 234871805,
        "Model": "Meina",
        "steps": 35,
        "prompt": "<lora:setsunaTokage_v10:0.6>, green hair",
        "sampler": "DPM++ SDE Karras",
        "cfgScale": 7,
        "Clip skip": "2",
        "Hires upscale": "2",
        "Hires upscaler": "4x-AnimeSharp",
        "negativePrompt": "(worst quality, low quality:1.4), easynegative,",
        "Denoising strength": "0.4",
    }
    p = GenerationParams.from_civitai_meta(meta)
    assert (p.width, p.height, p.seed, p.model, p.steps) == (512, 768, 234871805, "Meina", 35)
    assert (p.sampler, p.cfg_scale, p.clip_skip, p.hires_upscale, p.denoising_strength) == (
        "DPM++ SDE Karras",
        7.0,
        2,
        2.0,
        0.4,
    )
    assert p.negative_prompt == "(worst quality, low quality:1.4), easynegative,"
    assert p.hires_upscaler == "4x-AnimeSharp" and p.extra == {} and p.other == {}


@pytest.mark.parametrize("meta", [None, {}, "null"])
def test_null_meta_is_a_clear_error(meta: object) -> None:
    with pytest.raises(NoParametersError, match="no generation parameters"):
        GenerationParams.from_civitai_meta(meta)  # type: ignore[arg-type]


@pytest.mark.parametrize(("meta", "message"), [("[1, 2]", "JSON object"), ("{oops", "not valid JSON"), (7, "JSON")])
def test_bad_meta_is_a_clear_error(meta: object, message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        GenerationParams.from_civitai_meta(meta)  # type: ignore[arg-type]


def test_meta_json_values_and_lists() -> None:
    p = GenerationParams.from_civitai_meta(
        {
            "prompt": "x",
            "hashes": {"model": "abc", "lora:y": 123},
            "resources": [{"name": "y", "type": "lora", "weight": "0.7", "hash": "123"}, "junk"],
            "civitaiResources": [{"type": "checkpoint", "modelVersionId": "290640", "modelVersionName": "V6"}],
        }
    )
    assert p.hashes == {"model": "abc", "lora:y": "123"}
    assert p.resources == [Resource("lora", "y", "123", 0.7)]
    assert p.civitai_resources == [Resource("checkpoint", model_version_id=290640, extra={"modelVersionName": "V6"})]


def test_resource_keeps_what_it_cannot_read() -> None:
    r = Resource.from_json({"type": "lora", "weight": "heavy", "modelVersionId": "v2", "name": 5, "extra_field": 1})
    assert r.weight is None and r.model_version_id is None and r.name is None
    assert r.extra == {"weight": "heavy", "modelVersionId": "v2", "name": 5, "extra_field": 1}
    assert Resource.from_json(r.to_json()) == r


def test_meta_to_infotext_reads_back() -> None:
    p = GenerationParams.from_civitai_meta(
        {"prompt": "a, b", "negativePrompt": "c", "steps": "20", "cfgScale": "7", "seed": 1, "Size": "512x512"}
    )
    q = GenerationParams.from_infotext(p.to_infotext())
    assert (q.prompt, q.negative_prompt, q.steps, q.cfg_scale, q.seed, q.width) == ("a, b", "c", 20, 7.0, 1, 512)


# -- corpus ------------------------------------------------------------------------------------------------------


def _jsonl(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _matches(params: GenerationParams, expected: dict[str, Any]) -> None:
    data = json.loads(json.dumps(params.to_dict()))
    for key, value in expected.items():
        if key == "final_size":
            actual: Any = list(params.final_size) if params.final_size else None
        elif key in ("civitai_resources", "resources"):
            assert len(data[key]) == len(value), key
            actual = [{k: got[k] for k in want} for got, want in zip(data[key], value, strict=True)]
        else:
            actual = data[key]
        assert actual == value, key


@pytest.mark.parametrize("entry", _jsonl("infotexts.jsonl"), ids=lambda e: str(e["id"]))
def test_infotext_corpus_params_and_round_trip(entry: dict[str, Any]) -> None:
    params = GenerationParams.from_infotext(entry["text"])
    _matches(params, entry["params"])
    assert GenerationParams.from_infotext(params.to_infotext()) == params


@pytest.mark.parametrize("entry", _jsonl("civitai_meta.jsonl"), ids=lambda e: str(e["id"]))
def test_civitai_meta_corpus(entry: dict[str, Any]) -> None:
    error = entry.get("error")
    if error == "none":
        with pytest.raises(NoParametersError):
            GenerationParams.from_civitai_meta(entry["meta"])
        return
    if error is not None:
        with pytest.raises(GenerationError):
            GenerationParams.from_civitai_meta(entry["meta"])
        return
    params = GenerationParams.from_civitai_meta(entry["meta"])
    _matches(params, entry["params"])
    written = GenerationParams.from_infotext(params.to_infotext())
    assert GenerationParams.from_infotext(written.to_infotext()) == written
