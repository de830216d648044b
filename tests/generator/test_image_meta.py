"""Reading generation metadata from PNG, JPEG and WebP files, writing it into PNGs, and `modeldex meta`."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from modeldex.cli.main import cli
from modeldex.generator import image_meta
from modeldex.generator.comfy_meta import params_from_comfyui
from modeldex.generator.image_meta import (
    ImageReadError,
    decode_user_comment,
    png_text_chunk,
    read_image_metadata,
    read_parameters,
    save_png,
    set_png_text,
)
from modeldex.generator.infotext import parse_a1111
from modeldex.generator.params import GenerationParams, NoParametersError

INFOTEXT = (
    "a lighthouse on a cliff, (stormy sky:1.2), <lora:oil_paint:0.7>\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "oil_paint: 0a1b2c3d4e5f", Version: v1.10.1'
)
UNICODE_INFOTEXT = (
    "桜の木の下の猫, 夜 🌙\nNegative prompt: 低品質\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512"
)


# -- builders (the containers are written by hand so tests do not depend on an EXIF library) ----------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _plain_png(path: Path, color: tuple[int, int, int] = (10, 20, 30)) -> Path:
    Image.new("RGB", (8, 6), color).save(path, format="PNG")
    return path


def _png_with(path: Path, extra: list[bytes], *, after_idat: bool = False) -> Path:
    """A PNG with extra chunks inserted after IHDR (or after the image data)."""
    chunks = _png_chunks(_plain_png(path).read_bytes())
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, data in chunks:
        if kind == b"IEND" and after_idat:
            out.extend(extra)
        out.append(_chunk(kind, data))
        if kind == b"IHDR" and not after_idat:
            out.extend(extra)
    path.write_bytes(b"".join(out))
    return path


def _tiff(order: str, ifd0: list[tuple[int, int, bytes]], exif_ifd: list[tuple[int, int, bytes]]) -> bytes:
    """A TIFF block: IFD0 entries, plus an Exif IFD (linked from IFD0) when given. Entries: (tag, type, value)."""
    mark = b"II*\0" if order == "<" else b"MM\0*"
    entries0 = list(ifd0)
    if exif_ifd:
        entries0.append((0x8769, 4, b"\0\0\0\0"))  # patched below
    ifd0_size = 2 + 12 * len(entries0) + 4
    exif_offset = 8 + ifd0_size
    exif_size = 2 + 12 * len(exif_ifd) + 4 if exif_ifd else 0
    data_offset = exif_offset + exif_size
    blob = b""

    def directory(entries: list[tuple[int, int, bytes]]) -> bytes:
        nonlocal blob
        out = struct.pack(order + "H", len(entries))
        for tag, kind, value in entries:
            if tag == 0x8769:
                value = struct.pack(order + "I", exif_offset)
            count = len(value) if kind in (1, 2, 7) else len(value) // 4
            if len(value) <= 4:
                out += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\0")
            else:
                out += struct.pack(order + "HHII", tag, kind, count, data_offset + len(blob))
                blob += value
        return out + b"\0\0\0\0"

    first = directory(entries0)
    second = directory(exif_ifd) if exif_ifd else b""
    return mark + struct.pack(order + "I", 8) + first + second + blob


def _user_comment(text: str, encoding: str) -> bytes:
    if encoding == "utf-16-be":
        return b"UNICODE\0" + text.encode("utf-16-be")
    if encoding == "utf-16-le":
        return b"UNICODE\0" + text.encode("utf-16-le")
    if encoding == "ascii-utf8":
        return b"ASCII\0\0\0" + text.encode("utf-8")
    return text.encode("utf-8")  # no charset prefix at all


def _jpeg_with(path: Path, segments: list[bytes]) -> Path:
    buffer = path.with_suffix(".tmp.jpg")
    Image.new("RGB", (8, 8), (200, 100, 50)).save(buffer, format="JPEG")
    data = buffer.read_bytes()
    buffer.unlink()
    path.write_bytes(data[:2] + b"".join(segments) + data[2:])
    return path


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _webp_with(path: Path, exif: bytes, *, prefix: bool) -> Path:
    def riff_chunk(kind: bytes, data: bytes) -> bytes:
        return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    body = riff_chunk(b"VP8X", b"\x08" + b"\0" * 9) + riff_chunk(b"VP8L", b"\x2f\0\0\0\0")
    body += riff_chunk(b"EXIF", (b"Exif\0\0" if prefix else b"") + exif)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
    return path


# -- PNG ---------------------------------------------------------------------------------------------------------


def test_png_written_like_a1111_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    save_png(Image.new("RGB", (8, 8)), path, INFOTEXT)
    kinds = [kind for kind, _ in _png_chunks(path.read_bytes())]
    assert b"tEXt" in kinds and kinds.index(b"tEXt") < kinds.index(b"IDAT")
    found = read_parameters(path)
    assert found.source == "png:parameters" and found.infotext == INFOTEXT
    assert found.params == GenerationParams.from_infotext(INFOTEXT)
    assert found.a1111 == parse_a1111(INFOTEXT)
    assert Image.open(path).info["parameters"] == INFOTEXT  # what A1111 itself reads


def test_unicode_infotext_goes_to_itxt(tmp_path: Path) -> None:
    path = tmp_path / "u.png"
    save_png(Image.new("RGB", (4, 4)), path, UNICODE_INFOTEXT, extra_texts={"note": "ok"})
    kinds = [kind for kind, _ in _png_chunks(path.read_bytes())]
    assert b"iTXt" in kinds
    texts = read_image_metadata(path).texts
    assert texts["png:parameters"] == UNICODE_INFOTEXT and texts["png:note"] == "ok"
    assert read_parameters(path).params.prompt == "桜の木の下の猫, 夜 🌙"


def test_ztxt_itxt_compressed_and_text_after_the_image_data(tmp_path: Path) -> None:
    compressed = _chunk(b"zTXt", b"parameters\0\0" + zlib.compress(INFOTEXT.encode("latin-1", "replace")))
    itxt = _chunk(b"iTXt", b"workflow\0\x01\0en\0\0" + zlib.compress(b'{"nodes": []}'))
    path = _png_with(tmp_path / "z.png", [compressed, itxt], after_idat=True)
    texts = read_image_metadata(path).texts
    assert texts["png:parameters"].startswith("a lighthouse") and texts["png:workflow"] == '{"nodes": []}'


def test_utf8_in_a_latin1_text_chunk_is_read_as_utf8(tmp_path: Path) -> None:
    raw = _chunk(b"tEXt", b"parameters\0" + UNICODE_INFOTEXT.encode("utf-8"))
    latin = _chunk(b"tEXt", b"Comment\0caf\xe9")
    texts = read_image_metadata(_png_with(tmp_path / "t.png", [raw, latin])).texts
    assert texts["png:parameters"] == UNICODE_INFOTEXT and texts["png:Comment"] == "café"


def test_set_png_text_replaces_parameters_without_touching_pixels(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    save_png(Image.new("RGB", (8, 8), (1, 2, 3)), source, "old prompt\nSteps: 1, Seed: 2, CFG scale: 3")
    dest = tmp_path / "b.png"
    set_png_text(source, dest, {"parameters": UNICODE_INFOTEXT})
    before = [c for c in _png_chunks(source.read_bytes()) if c[0] not in (b"tEXt", b"iTXt")]
    after = [c for c in _png_chunks(dest.read_bytes()) if c[0] not in (b"tEXt", b"iTXt")]
    assert before == after
    texts = read_image_metadata(dest).texts
    assert texts == {"png:parameters": UNICODE_INFOTEXT}
    set_png_text(dest, dest, {"parameters": INFOTEXT})  # in place
    assert read_parameters(dest).infotext == INFOTEXT
    assert list(tmp_path.glob(".*tmp")) == []


def test_set_png_text_refuses_broken_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="is not a PNG"):
        set_png_text(bad, tmp_path / "x.png", {"parameters": "x"})
    truncated = tmp_path / "t.png"
    truncated.write_bytes(_plain_png(tmp_path / "p.png").read_bytes()[:-20])
    with pytest.raises(ImageReadError, match="truncated"):
        set_png_text(truncated, tmp_path / "y.png", {"parameters": "x"})
    assert not (tmp_path / "y.png").exists()
    with pytest.raises(ValueError, match="keyword"):
        png_text_chunk("", "x")


def test_truncated_png_still_gives_its_text(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    save_png(Image.new("RGB", (64, 64)), path, INFOTEXT)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"IDAT") + 10])
    assert read_parameters(path).infotext == INFOTEXT


def test_text_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_meta, "MAX_TEXT_BYTES", 1000)
    bomb = _chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * 5000))
    with pytest.raises(ImageReadError, match="inflates beyond"):
        read_image_metadata(_png_with(tmp_path / "bomb.png", [bomb]))
    huge = _chunk(b"tEXt", b"parameters\0" + b"b" * 2000)
    with pytest.raises(ImageReadError, match="larger than any real metadata"):
        read_image_metadata(_png_with(tmp_path / "huge.png", [huge]))


# -- EXIF UserComment --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le", "ascii-utf8", "none"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_jpeg_user_comment_in_any_encoding(tmp_path: Path, encoding: str, order: str) -> None:
    tiff = _tiff(order, [(0x010F, 2, b"Canon\0")], [(0x9286, 7, _user_comment(UNICODE_INFOTEXT, encoding))])
    path = _jpeg_with(tmp_path / "a.jpg", [_segment(0xE1, b"Exif\0\0" + tiff)])
    found = read_parameters(path)
    assert found.source == "exif:usercomment" and found.infotext == UNICODE_INFOTEXT
    assert found.params.seed == 5


@pytest.mark.parametrize("prefix", [True, False])
def test_webp_exif_user_comment(tmp_path: Path, prefix: bool) -> None:
    tiff = _tiff(">", [], [(0x9286, 7, _user_comment(INFOTEXT, "utf-16-be"))])
    found = read_parameters(_webp_with(tmp_path / "a.webp", tiff, prefix=prefix))
    assert found.source == "exif:usercomment" and found.params == GenerationParams.from_infotext(INFOTEXT)


def test_png_exif_chunk(tmp_path: Path) -> None:
    tiff = _tiff("<", [], [(0x9286, 7, _user_comment(INFOTEXT, "utf-16-le"))])
    found = read_parameters(_png_with(tmp_path / "e.png", [_chunk(b"eXIf", tiff)]))
    assert found.source == "exif:usercomment" and found.infotext == INFOTEXT


def test_user_comment_byte_order_detection() -> None:
    text = "Steps: 20, Seed: 1"
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-be"), byte_order="<") == text
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-le"), byte_order=">") == text
    assert decode_user_comment(b"UNICODE\0\xff\xfe" + text.encode("utf-16-le")) == text
    assert decode_user_comment(b"UNICODE\0\xfe\xff" + text.encode("utf-16-be"), byte_order="<") == text
    # No ASCII to tell by: the TIFF byte order decides.
    assert decode_user_comment(b"UNICODE\0" + "猫犬".encode("utf-16-le"), byte_order="<") == "猫犬"
    assert decode_user_comment(b"UNICODE\0" + "猫犬".encode("utf-16-be"), byte_order=">") == "猫犬"
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-be") + b"\0\0") == text
    assert decode_user_comment(b"\0" * 8 + text.encode("utf-16-le"), byte_order=">") == text
    assert decode_user_comment(b"JIS\0\0\0\0\0" + "ねこ".encode("shift_jis")) == "ねこ"


def test_jpeg_comment_counts_only_when_it_reads_as_an_infotext(tmp_path: Path) -> None:
    camera = _jpeg_with(tmp_path / "cam.jpg", [_segment(0xFE, b"OLYMPUS DIGITAL CAMERA")])
    assert read_image_metadata(camera).texts == {"jpeg:comment": "OLYMPUS DIGITAL CAMERA"}
    with pytest.raises(NoParametersError):
        read_parameters(camera)
    tool = _jpeg_with(tmp_path / "tool.jpg", [_segment(0xFE, INFOTEXT.encode())])
    assert read_parameters(tool).source == "jpeg:comment"


def test_fooocus_style_json_parameters(tmp_path: Path) -> None:
    meta = {"prompt": "a wolf", "negative_prompt": "cartoon", "steps": 30, "guidance_scale": 4, "seed": 9}
    path = _png_with(tmp_path / "f.png", [png_text_chunk("parameters", json.dumps(meta))])
    found = read_parameters(path)
    assert found.infotext is None and found.a1111 is None
    assert (found.params.prompt, found.params.negative_prompt, found.params.cfg_scale) == ("a wolf", "cartoon", 4.0)


# -- ComfyUI -----------------------------------------------------------------------------------------------------

COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8.0,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SDXL\\sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["11", 0], "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["10", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {
        "class_type": "LoraLoader",
        "inputs": {
            "lora_name": "styles/pixel_art.safetensors",
            "strength_model": 0.8,
            "strength_clip": 1.0,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
    },
    "11": {"class_type": "PrimitiveNode", "inputs": {"value": "beautiful scenery nature glass bottle landscape"}},
}

COMFY_WORKFLOW = {
    "nodes": [
        {
            "id": 3,
            "type": "KSampler",
            "inputs": [
                {"name": "model", "link": 1},
                {"name": "positive", "link": 4},
                {"name": "negative", "link": 6},
                {"name": "latent_image", "link": 2},
            ],
            "widgets_values": [42, "fixed", 25, 6.5, "euler_ancestral", "normal", 1],
        },
        {"id": 4, "type": "CheckpointLoaderSimple", "inputs": [], "widgets_values": ["dreamshaper_8.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "inputs": [], "widgets_values": [512, 640, 1]},
        {"id": 6, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "link": 3}], "widgets_values": ["a red fox"]},
        {"id": 7, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "link": 5}], "widgets_values": ["blurry"]},
    ],
    "links": [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 5, 0, 3, 3, "LATENT"],
        [4, 6, 0, 3, 1, "CONDITIONING"],
        [6, 7, 0, 3, 2, "X"],
    ],
}


def test_comfyui_prompt_graph(tmp_path: Path) -> None:
    path = _png_with(
        tmp_path / "comfy.png",
        [png_text_chunk("prompt", json.dumps(COMFY_PROMPT)), png_text_chunk("workflow", json.dumps(COMFY_WORKFLOW))],
    )
    found = read_parameters(path)
    p = found.params
    assert found.source == "comfyui:prompt" and found.a1111 is None
    assert (p.seed, p.steps, p.cfg_scale, p.sampler, p.schedule_type) == (
        156680208700286,
        20,
        8.0,
        "DPM++ 2M",
        "Karras",
    )
    assert (p.prompt, p.negative_prompt) == ("beautiful scenery nature glass bottle landscape", "text, watermark")
    assert (p.model, p.width, p.height, p.denoising_strength) == ("sd_xl_base_1.0", 1024, 768, None)
    assert [(r.type, r.name, r.weight) for r in p.resources] == [("lora", "pixel_art", 0.8)]
    assert p.other["comfyui"] == {"sampler_node": "KSampler", "sampler_name": "dpmpp_2m", "scheduler": "karras"}


def test_comfyui_workflow_only(tmp_path: Path) -> None:
    found = read_parameters(_png_with(tmp_path / "wf.png", [png_text_chunk("workflow", json.dumps(COMFY_WORKFLOW))]))
    p = found.params
    assert found.source == "comfyui:workflow"
    assert (p.seed, p.steps, p.cfg_scale, p.sampler, p.schedule_type) == (42, 25, 6.5, "Euler a", "Normal")
    assert (p.prompt, p.negative_prompt, p.model, p.width, p.height) == (
        "a red fox",
        "blurry",
        "dreamshaper_8",
        512,
        640,
    )


def test_comfyui_webp_exif(tmp_path: Path) -> None:
    tiff = _tiff("<", [(0x0110, 2, b"prompt:" + json.dumps(COMFY_PROMPT).encode() + b"\0")], [])
    found = read_parameters(_webp_with(tmp_path / "c.webp", tiff, prefix=False))
    assert found.source == "comfyui:prompt" and found.params.steps == 20


def test_comfyui_custom_sampler_and_hires_second_pass() -> None:
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}},
        "3": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["2", 0]}},
        "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "5": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 28, "denoise": 1}},
        "6": {"class_type": "RandomNoise", "inputs": {"noise_seed": 77}},
        "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 896, "height": 1152, "batch_size": 1}},
        "8": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {"noise": ["6", 0], "guider": ["3", 0], "sampler": ["4", 0], "sigmas": ["5", 0]}
            | {"latent_image": ["7", 0]},
        },
        "9": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 10, "latent_image": ["8", 0]}},
    }
    p = params_from_comfyui(graph)
    assert (p.seed, p.steps, p.sampler, p.schedule_type, p.prompt) == (77, 28, "Euler", "Simple", "a cat")
    assert (p.model, p.width, p.height) == ("flux1-dev", 896, 1152)


def test_comfyui_errors() -> None:
    with pytest.raises(NoParametersError, match="no sampler"):
        params_from_comfyui({"1": {"class_type": "SaveImage", "inputs": {}}})
    with pytest.raises(NoParametersError, match="no node graph"):
        params_from_comfyui({"not": "a graph"}, {"nodes": "nope"})
    with pytest.raises(Exception, match="not valid JSON"):
        params_from_comfyui("{broken")
    cyclic = {
        "1": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "latent_image": ["1", 0]}},
        "2": {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["2", 0]}},
        "3": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["3", 0]}},
    }
    p = params_from_comfyui(cyclic)  # loops end; nothing found is nothing set
    assert (p.model, p.prompt, p.width) == (None, "", None)


# -- errors ------------------------------------------------------------------------------------------------------


def test_unreadable_inputs_give_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    cases = {
        tmp_path / "missing.png": "does not exist",
        tmp_path: "is a directory",
        empty: "is empty",
        text: "is not a PNG, JPEG or WebP image",
    }
    for path, message in cases.items():
        with pytest.raises(ImageReadError, match=message):
            read_parameters(path)


def test_image_without_parameters(tmp_path: Path) -> None:
    with pytest.raises(NoParametersError, match="no generation parameters"):
        read_parameters(_plain_png(tmp_path / "plain.png"))


# -- modeldex meta -----------------------------------------------------------------------------------------------


def test_meta_json_lines(tmp_path: Path) -> None:
    a1111 = tmp_path / "a.png"
    save_png(Image.new("RGB", (4, 4)), a1111, INFOTEXT)
    comfy = _png_with(tmp_path / "c.png", [png_text_chunk("prompt", json.dumps(COMFY_PROMPT))])
    result = CliRunner().invoke(cli, ["meta", "--json", str(a1111), str(comfy)])
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["path"] == str(a1111) and first["source"] == "png:parameters"
    assert first["a1111"] == parse_a1111(INFOTEXT)
    assert GenerationParams.from_dict(first["params"]) == GenerationParams.from_infotext(INFOTEXT)
    assert second["source"] == "comfyui:prompt" and second["a1111"] is None and second["params"]["steps"] == 20


def test_meta_reports_every_file_and_exits_1_when_one_has_no_parameters(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    save_png(Image.new("RGB", (4, 4)), good, INFOTEXT)
    plain = _plain_png(tmp_path / "plain.png")
    missing = tmp_path / "missing.jpg"
    result = CliRunner().invoke(cli, ["meta", "--json", str(plain), str(good), str(missing)])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["path"] for r in records] == [str(plain), str(good), str(missing)]
    assert records[0] == {"path": str(plain), "source": None, "error": "no generation parameters in this image"}
    assert records[1]["source"] == "png:parameters"
    assert records[2]["source"] is None and "does not exist" in records[2]["error"]


def test_meta_human_summary(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    save_png(Image.new("RGB", (4, 4)), path, INFOTEXT)
    result = CliRunner().invoke(cli, ["meta", str(path)])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == f"{path}  [png:parameters]"
    assert "  Prompt:    a lighthouse on a cliff, (stormy sky:1.2), <lora:oil_paint:0.7>" in lines
    assert "  Negative:  blurry, lowres" in lines
    assert "  Settings:  Steps 24 | Sampler DPM++ 2M | Schedule Karras | CFG 6.5 | Seed 1234 | Size 512x768" in lines
    assert "  Model:     v1-5-pruned-emaonly [6ce0161689]" in lines
    assert "  LoRA:      oil_paint 0.7 [0a1b2c3d4e5f]" in lines


def test_meta_needs_an_image_argument() -> None:
    result = CliRunner().invoke(cli, ["meta"])
    assert result.exit_code == 2


def test_meta_does_not_load_torch() -> None:
    code = "import sys, modeldex.cli.meta_cmd; assert 'torch' not in sys.modules, 'torch was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
