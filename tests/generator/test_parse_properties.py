"""Property tests: every parser answers any input with a result or a clear error, quickly, and round trips hold."""

from __future__ import annotations

import re
import struct
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldex.errors import GenerationError
from modeldex.generator.comfy_meta import params_from_comfyui
from modeldex.generator.image_meta import (
    ImageReadError,
    _exif_texts,
    decode_user_comment,
    read_image_metadata,
)
from modeldex.generator.infotext import param_pairs, parse_a1111
from modeldex.generator.params import GenerationParams
from modeldex.generator.prompt import (
    PromptSyntaxError,
    extract_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    split_and,
)

FAST = settings(
    deadline=timedelta(milliseconds=1500),
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Characters that matter to the parsers, plus some of everything else.
SYNTAX = st.sampled_from(list('()[]<>:|,\\"=- \n\t\r/.') + ["BREAK", "AND", "lora", "0.5", "1.2", "3", "\u3000"])
TEXT = st.lists(st.one_of(SYNTAX, st.text(max_size=4)), max_size=40).map("".join)

# The parameter-line pattern as documented (reproduce-a1111.md §1.3): a key of word characters, spaces, `-` and `/`
# starting with a word character; a JSON-style quoted value or anything up to the next comma.
REFERENCE_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
PAIR_TEXT = st.lists(st.sampled_from(list('ab_1 -/:,"\\\t') + ["\u00a0", "é"]), max_size=24).map("".join)


@FAST
@given(PAIR_TEXT)
def test_param_pairs_equal_the_reference_pattern(line: str) -> None:
    assert param_pairs(line) == REFERENCE_PAIR.findall(line)


@FAST
@given(TEXT)
def test_parse_a1111_never_raises(text: str) -> None:
    res = parse_a1111(text)
    assert isinstance(res["Prompt"], str) and isinstance(res["Negative prompt"], str)
    assert all(isinstance(key, str) for key in res)


@FAST
@given(TEXT)
def test_infotext_round_trip_on_any_text(text: str) -> None:
    params = GenerationParams.from_infotext(text)
    assert GenerationParams.from_infotext(params.to_infotext()) == params


NAMES = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8)
VALUES = st.text(max_size=12).filter(lambda v: "\x00" not in v)
KEYS = st.sampled_from(["ADetailer model", "Token merging ratio", "Mask blur", "风格", "Kohya Deep Shrink", "NGMS"])


@st.composite
def generation_params(draw: st.DrawFn) -> GenerationParams:
    """Parameters as a user might have them, with awkward strings in every string field."""
    size = draw(st.none() | st.tuples(st.integers(1, 4096), st.integers(1, 4096)))
    return GenerationParams(
        prompt=draw(st.text(max_size=30)).strip(),
        negative_prompt=draw(st.text(max_size=30)).strip(),
        steps=draw(st.none() | st.integers(1, 150)),
        sampler=draw(st.none() | VALUES),
        schedule_type=draw(st.none() | st.sampled_from(["Karras", "Exponential", "Align Your Steps"])),
        cfg_scale=draw(st.none() | st.floats(0, 30, allow_nan=False)),
        seed=draw(st.none() | st.integers(0, 2**64)),
        width=size[0] if size else None,
        height=size[1] if size else None,
        model=draw(st.none() | VALUES),
        denoising_strength=draw(st.none() | st.floats(0.01, 1)),
        clip_skip=draw(st.integers(1, 12)),
        rng=draw(st.sampled_from(["GPU", "CPU", "NV"])),
        hires_upscale=draw(st.none() | st.floats(1, 4)),
        hires_resize=draw(st.none() | st.tuples(st.integers(1, 8192), st.integers(1, 8192))),
        hires_prompt=draw(st.none() | st.text(min_size=1, max_size=20)),
        pad_conds=draw(st.booleans()),
        version=draw(st.none() | st.sampled_from(["v1.5.1", "v1.10.1", "f2.0.1v1.10.1-previous-1-gabc"])),
        lora_hashes=draw(st.dictionaries(NAMES, st.from_regex(r"[0-9a-f]{12}", fullmatch=True), max_size=3)),
        hashes=draw(st.dictionaries(NAMES, VALUES, max_size=3)),
        extra=draw(st.dictionaries(KEYS, VALUES, max_size=3)),
    )


@FAST
@given(generation_params())
def test_written_params_read_back_the_same_twice(params: GenerationParams) -> None:
    # Written then read: an empty or padded value may be read as A1111's default, so compare the second trip.
    once = GenerationParams.from_infotext(params.to_infotext())
    assert GenerationParams.from_infotext(once.to_infotext()) == once
    assert (once.steps, once.seed, once.width, once.clip_skip, once.lora_hashes) == (
        params.steps,
        params.seed,
        params.width,
        params.clip_skip,
        params.lora_hashes,
    )


@FAST
@given(TEXT)
def test_attention_gives_runs_or_a_clear_error(text: str) -> None:
    try:
        runs = parse_prompt_attention(text)
    except PromptSyntaxError as exc:
        assert "is not a number" in str(exc)
        return
    assert runs
    for (_, first), (_, second) in zip(runs, runs[1:], strict=False):
        assert first != second or first != first  # merged runs differ (NaN never merges)
    if not set(text) & set("()[]\\") and "BREAK" not in text:
        assert runs == [(text, 1.0)]


@FAST
@given(TEXT, st.integers(1, 40), st.booleans())
def test_schedules_always_cover_every_step(text: str, steps: int, old: bool) -> None:
    schedule = prompt_schedules(text, steps, old_timelines=old)
    boundaries = [step for step, _ in schedule]
    assert boundaries == sorted(set(boundaries)) and boundaries[0] >= 1 and boundaries[-1] == steps
    if "[" not in text:
        assert schedule == [(steps, text)]


@FAST
@given(TEXT)
def test_extra_networks_remove_exactly_the_tags(text: str) -> None:
    try:
        rest, networks = extract_extra_networks(text)
    except PromptSyntaxError:
        return
    assert len(rest) + sum(len(n.tag) for n in networks) == len(text)
    assert all(n.tag in text for n in networks)


@FAST
@given(TEXT)
def test_split_and_has_one_part_per_and(text: str) -> None:
    parts = split_and(text)
    assert len(parts) == len(re.split(r"\bAND\b", text))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)
NODE_IDS = st.sampled_from(["1", "2", "3", "4"])
LINK = st.tuples(NODE_IDS, st.integers(0, 2)).map(list)
COMFY_NODE = st.fixed_dictionaries(
    {
        "class_type": st.sampled_from(["KSampler", "CLIPTextEncode", "LoraLoader", "EmptyLatentImage", "X"]),
        "inputs": st.dictionaries(
            st.sampled_from(["model", "positive", "negative", "latent_image", "text", "seed", "width", "lora_name"]),
            LINK | JSON,
            max_size=6,
        )
        | JSON,
    }
)


@FAST
@given(st.dictionaries(NODE_IDS, COMFY_NODE | JSON, max_size=4), JSON)
def test_comfyui_graphs_give_params_or_a_clear_error(prompt: object, workflow: object) -> None:
    try:
        params = params_from_comfyui(prompt, workflow)
    except GenerationError:
        return
    assert isinstance(params.prompt, str) and isinstance(params.negative_prompt, str)


@FAST
@given(st.binary(max_size=64), st.sampled_from(["<", ">"]))
def test_user_comment_decoding_never_raises(raw: bytes, order: str) -> None:
    assert isinstance(decode_user_comment(raw, byte_order=order), str)
    assert isinstance(decode_user_comment(b"UNICODE\0" + raw, byte_order=order), str)


@FAST
@given(st.binary(max_size=200))
def test_exif_parsing_never_raises(tail: bytes) -> None:
    for head in (b"II*\0\x08\0\0\0", b"MM\0*\0\0\0\x08"):
        assert isinstance(_exif_texts(head + tail), dict)
        assert isinstance(_exif_texts(head[:4] + tail[:3]), dict)
    # A directory entry pointing far outside the block.
    entry = struct.pack("<HHHII", 1, 0x8769, 4, 1, 0xFFFFFFF0)
    assert _exif_texts(b"II*\0\x08\0\0\0" + entry + tail) == {}


@settings(FAST, max_examples=100)
@given(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"RIFF\0\0\0\0WEBP", b""]), st.binary(max_size=300))
def test_image_reading_gives_texts_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, head: bytes, body: bytes
) -> None:
    path = tmp_path_factory.mktemp("img") / "x.bin"
    path.write_bytes(head + body)
    try:
        meta = read_image_metadata(path)
    except ImageReadError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.texts.items())
