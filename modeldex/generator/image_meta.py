"""Generation metadata inside image files: read from PNG, JPEG and WebP, written into PNG.

Only the container is parsed (PNG chunks, JPEG segments, RIFF chunks, the EXIF TIFF directory); pixels are never
decoded, so reading is fast and a huge or broken image costs nothing. Where it looks:

* PNG text chunks (`tEXt`, `zTXt`, `iTXt`, before or after the image data): `parameters` (A1111, Forge, Fooocus),
  `prompt` and `workflow` (ComfyUI); a PNG `eXIf` chunk like the EXIF below.
* JPEG and WebP EXIF `UserComment` (A1111 writes `UNICODE\\0` + UTF-16; the byte order is detected), EXIF
  `ImageDescription`, the JPEG comment segment, and ComfyUI's WebP EXIF (`prompt:{...}` in Model, `workflow:{...}`
  in Make).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from modeldex.errors import ReadError
from modeldex.generator.comfy_meta import params_from_comfyui
from modeldex.generator.infotext import param_pairs, parse_a1111
from modeldex.generator.params import GenerationParams, NoParametersError

if TYPE_CHECKING:
    from PIL.Image import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# No real infotext or ComfyUI workflow comes near this; it bounds memory on hostile files.
MAX_TEXT_BYTES = 64 * 1024 * 1024
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"eXIf")


class ImageReadError(ReadError):
    """An image file could not be read: missing, not an image, truncated, corrupt."""

    title = "image"


@dataclass
class ImageMetadata:
    """Every text entry found in an image, keyed by where it was found (`png:parameters`, `exif:usercomment`)."""

    path: Path
    format: str
    texts: dict[str, str] = field(default_factory=dict)


def read_image_metadata(path: Path) -> ImageMetadata:
    """Read the text metadata of a PNG, JPEG or WebP file (by its magic bytes, not its extension)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            f.seek(0)
            if head.startswith(PNG_SIGNATURE):
                return ImageMetadata(path, "png", _png_texts(f))
            if head.startswith(b"\xff\xd8"):
                return ImageMetadata(path, "jpeg", _jpeg_texts(f))
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return ImageMetadata(path, "webp", _webp_texts(f))
    except IsADirectoryError:
        raise ImageReadError(f"{path} is a directory, not an image") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path} does not exist") from None
    except PermissionError:
        raise ImageReadError(f"{path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise ImageReadError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise ImageReadError(f"{path} is empty")
    raise ImageReadError(f"{path} is not a PNG, JPEG or WebP image")


# -- PNG ---------------------------------------------------------------------------------------------------


def _png_texts(f: BinaryIO) -> dict[str, str]:
    f.seek(len(PNG_SIGNATURE))
    texts: dict[str, str] = {}
    while True:
        header = f.read(8)
        if len(header) < 8:
            break  # truncated before IEND: keep what was found (the image data may be all that is missing)
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            break
        if kind not in _TEXT_CHUNKS:
            f.seek(length + 4, os.SEEK_CUR)
            continue
        if length > MAX_TEXT_BYTES:
            raise ImageReadError(f"{kind.decode()} chunk of {length} bytes is larger than any real metadata")
        data = f.read(length)
        f.seek(4, os.SEEK_CUR)  # CRC: a damaged text chunk is still worth reading
        if len(data) < length:
            break
        if kind == b"eXIf":
            texts.update(_exif_texts(data))
            continue
        entry = _png_text_chunk(kind, data)
        if entry is not None:
            texts[f"png:{entry[0]}"] = entry[1]  # a repeated keyword: the last one wins, as in PIL
    return texts


def _png_text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    keyword, sep, rest = data.partition(b"\0")
    if not sep or not keyword:
        return None
    name = keyword.decode("latin-1")
    if kind == b"tEXt":
        return name, _decode_8bit(rest)
    if kind == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        text = _inflate(rest[1:])
        return (name, _decode_8bit(text)) if text is not None else None
    # iTXt: compression flag, method, language tag \0, translated keyword \0, UTF-8 text
    if len(rest) < 2:
        return None
    compressed, method = rest[0], rest[1]
    parts = rest[2:].split(b"\0", 2)
    if len(parts) < 3:
        return None
    body: bytes | None = parts[2]
    if compressed:
        body = _inflate(parts[2]) if method == 0 else None
    return (name, body.decode("utf-8", errors="replace")) if body is not None else None


def _decode_8bit(data: bytes) -> str:
    # tEXt is Latin-1 by the PNG spec, but some writers put UTF-8 there: take UTF-8 when the bytes are valid UTF-8.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _inflate(data: bytes) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        return None
    if inflater.unconsumed_tail:
        raise ImageReadError(f"a compressed text chunk inflates beyond {MAX_TEXT_BYTES} bytes")
    return out


# -- JPEG --------------------------------------------------------------------------------------------------

_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})


def _jpeg_texts(f: BinaryIO) -> dict[str, str]:
    f.seek(2)  # SOI
    texts: dict[str, str] = {}
    while f.read(1) == b"\xff":
        marker_byte = f.read(1)
        while marker_byte == b"\xff":  # fill bytes before a marker
            marker_byte = f.read(1)
        if not marker_byte:
            break
        marker = marker_byte[0]
        if marker in _STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image, or start of scan: metadata segments all come before it
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            break
        length = max(struct.unpack(">H", length_bytes)[0] - 2, 0)
        data = f.read(length)
        if len(data) < length:
            break  # truncated: keep what was found
        if marker == 0xE1 and data.startswith(b"Exif\0\0"):
            texts.update(_exif_texts(data[6:]))
        elif marker == 0xFE and data.strip(b"\0"):
            texts["jpeg:comment"] = _decode_8bit(data.rstrip(b"\0"))
    return texts


# -- WebP --------------------------------------------------------------------------------------------------


def _webp_texts(f: BinaryIO) -> dict[str, str]:
    f.seek(12)
    texts: dict[str, str] = {}
    while True:
        header = f.read(8)
        if len(header) < 8:
            break
        kind, length = struct.unpack("<4sI", header)
        padded = length + (length & 1)
        if kind != b"EXIF":
            f.seek(padded, os.SEEK_CUR)
            continue
        if length > MAX_TEXT_BYTES:
            raise ImageReadError(f"EXIF chunk of {length} bytes is larger than any real metadata")
        data = f.read(length)
        f.seek(padded - length, os.SEEK_CUR)
        # Some writers keep JPEG's "Exif\0\0" in front of the TIFF data, others do not.
        texts.update(_exif_texts(data[6:] if data.startswith(b"Exif\0\0") else data))
    return texts


# -- EXIF (TIFF directory) ---------------------------------------------------------------------------------

_TAG_IMAGE_DESCRIPTION = 0x010E
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_EXIF_IFD = 0x8769
_TAG_USER_COMMENT = 0x9286
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def _exif_texts(tiff: bytes) -> dict[str, str]:
    """Text tags of an EXIF block (TIFF data); unreadable structure yields nothing rather than an error."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\0", b"MM\0*"):
        return {}
    order = "<" if tiff[:2] == b"II" else ">"
    ifd0 = _ifd_entries(tiff, order, struct.unpack(order + "I", tiff[4:8])[0])
    texts: dict[str, str] = {}
    description = ifd0.get(_TAG_IMAGE_DESCRIPTION)
    if description and description.strip(b"\0 "):
        texts["exif:imagedescription"] = _decode_8bit(description.rstrip(b"\0"))
    # ComfyUI's WebP saver: the API prompt in Model, the workflow in Make, each behind a "name:" prefix.
    for tag in (_TAG_MODEL, _TAG_MAKE):
        value = _decode_8bit(ifd0.get(tag, b"").rstrip(b"\0"))
        name, sep, body = value.partition(":")
        if sep and name in ("prompt", "workflow") and body.lstrip().startswith("{"):
            texts[f"comfyui:{name}"] = body
    pointer = ifd0.get(_TAG_EXIF_IFD)
    if pointer is not None and len(pointer) == 4:
        exif_ifd = _ifd_entries(tiff, order, struct.unpack(order + "I", pointer)[0])
        comment = exif_ifd.get(_TAG_USER_COMMENT)
        if comment is not None:
            text = decode_user_comment(comment, byte_order=order)
            if text:
                texts["exif:usercomment"] = text
    return texts


def _ifd_entries(tiff: bytes, order: str, offset: int) -> dict[int, bytes]:
    """tag -> raw value bytes of one IFD; entries pointing outside the block are skipped."""
    if offset + 2 > len(tiff):
        return {}
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    entries: dict[int, bytes] = {}
    for i in range(count):
        start = offset + 2 + 12 * i
        if start + 12 > len(tiff):
            break
        tag, kind, n = struct.unpack(order + "HHI", tiff[start : start + 8])
        size = _TYPE_SIZES.get(kind, 1) * n
        if size <= 4:
            entries[tag] = tiff[start + 8 : start + 8 + size]
            continue
        (value_offset,) = struct.unpack(order + "I", tiff[start + 8 : start + 12])
        if value_offset + size <= len(tiff):
            entries[tag] = tiff[value_offset : value_offset + size]
    return entries


def decode_user_comment(raw: bytes, *, byte_order: str = ">") -> str:
    """Decode an EXIF UserComment: an 8-byte charset prefix, then the text.

    `UNICODE\\0` is UTF-16 whose byte order writers disagree on (piexif, used by A1111, writes big-endian; others
    follow the TIFF byte order): a BOM decides, else the side the zero bytes of ASCII characters fall on, else
    `byte_order` (the TIFF's: "<" little, ">" big). `ASCII` text is read as UTF-8, which it often really is.
    """
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        text = _decode_utf16(body, byte_order)
    elif prefix == b"JIS\0\0\0\0\0":
        text = body.decode("shift_jis", errors="replace")
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = _decode_utf16(body, byte_order) if _looks_utf16(body) else body.decode("utf-8", errors="replace")
    else:
        # No charset prefix at all: A1111 falls back to UTF-8 on the whole value.
        text = raw.decode("utf-8", errors="replace")
    return text.rstrip("\0")


def _looks_utf16(body: bytes) -> bool:
    sample = body[:4096]
    if len(sample) < 4:
        return False
    zeros = sample.count(0)
    return zeros * 3 >= len(sample)  # ASCII in UTF-16 is half zero bytes; UTF-8 text has none


def _decode_utf16(body: bytes, byte_order: str) -> str:
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", errors="replace")
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", errors="replace")
    sample = body[:4096]
    zeros_even = sample[0::2].count(0)
    zeros_odd = sample[1::2].count(0)
    if zeros_even != zeros_odd:
        big_endian = zeros_even > zeros_odd  # ASCII: the high byte (zero) comes first in big-endian
    else:
        big_endian = byte_order == ">"
    return body[: len(body) & ~1].decode("utf-16-be" if big_endian else "utf-16-le", errors="replace")


# -- generation parameters -----------------------------------------------------------------------------------


@dataclass
class ImageParameters:
    """The generation parameters found in an image and where they were found."""

    path: Path
    source: str
    """`png:parameters`, `exif:usercomment`, `jpeg:comment`, `exif:imagedescription`, `comfyui:prompt`, ..."""
    params: GenerationParams
    infotext: str | None = None
    """The A1111 infotext, when the source is one."""

    @property
    def a1111(self) -> dict[str, Any] | None:
        """The infotext as A1111 parses it (`parse_a1111`), or None for other sources."""
        return parse_a1111(self.infotext) if self.infotext is not None else None


# Where A1111-style parameters are written, most authoritative first. The later ones hold other things too
# (a camera's description, an editor's comment), so they count only when they read as an infotext.
_INFOTEXT_SOURCES = ("png:parameters", "exif:usercomment")
_MAYBE_INFOTEXT_SOURCES = ("jpeg:comment", "exif:imagedescription", "png:Description", "png:Comment")


def read_parameters(path: Path) -> ImageParameters:
    """The generation parameters of an image. Raises `ImageReadError` for an unreadable file and
    `NoParametersError` for an image without any."""
    texts = read_image_metadata(path).texts
    source, params, infotext = parameters_from_texts(texts)
    return ImageParameters(path, source, params, infotext)


def parameters_from_texts(texts: Mapping[str, str]) -> tuple[str, GenerationParams, str | None]:
    """Pick the best source among an image's text entries: (source, params, infotext or None)."""
    for source in _INFOTEXT_SOURCES + _MAYBE_INFOTEXT_SOURCES:
        text = texts.get(source, "").strip()
        if not text:
            continue
        if text.startswith("{"):
            meta = _json_object(text)
            if meta is not None and ("prompt" in meta or "Prompt" in meta):
                return source, GenerationParams.from_civitai_meta(meta), None
        if source in _INFOTEXT_SOURCES or len(param_pairs(text.rsplit("\n", 1)[-1])) >= 3:
            return source, GenerationParams.from_infotext(text), text
    for kind in ("prompt", "workflow"):
        if texts.get(f"png:{kind}") or texts.get(f"comfyui:{kind}"):
            prompt = texts.get("png:prompt") or texts.get("comfyui:prompt")
            workflow = texts.get("png:workflow") or texts.get("comfyui:workflow")
            params = params_from_comfyui(prompt if kind == "prompt" else None, workflow)
            return f"comfyui:{kind}", params, None
    raise NoParametersError("no generation parameters in this image")


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- writing -----------------------------------------------------------------------------------------------


def png_text_chunk(keyword: str, text: str) -> bytes:
    """A complete PNG chunk holding `text`: `tEXt` when Latin-1 can hold it, else uncompressed UTF-8 `iTXt`."""
    key = keyword.encode("latin-1")
    if not 1 <= len(key) <= 79 or b"\0" in key:
        raise ValueError(f"{keyword!r} is not a valid PNG text keyword (1-79 Latin-1 characters)")
    try:
        kind, data = b"tEXt", key + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        kind, data = b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8")
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def set_png_text(source: Path, dest: Path, texts: Mapping[str, str]) -> None:
    """Copy a PNG with these text entries set (earlier ones of the same keywords dropped); pixels untouched.

    The new chunks go right after the header, where A1111 and ComfyUI put theirs. `dest` may be `source`; it is
    replaced atomically.
    """
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{source} cannot be read ({exc.strerror or exc})") from None
    if not data.startswith(PNG_SIGNATURE):
        raise ImageReadError(f"{source} is not a PNG image")
    new_chunks = [png_text_chunk(key, text) for key, text in texts.items()]
    keywords = {key.encode("latin-1") for key in texts}
    out = [PNG_SIGNATURE]
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ImageReadError(f"{source} is truncated (a {kind!r} chunk runs past the end)")
        chunk = data[pos:end]
        keyword = data[pos + 8 : pos + 8 + length].partition(b"\0")[0]
        if not (kind in (b"tEXt", b"zTXt", b"iTXt") and keyword in keywords):
            out.append(chunk)
        if kind == b"IHDR":
            out.extend(new_chunks)
        pos = end
        if kind == b"IEND":
            break
    else:
        raise ImageReadError(f"{source} is truncated (no IEND chunk)")
    _write_atomic(dest, b"".join(out))


def save_png(image: Image, dest: Path, infotext: str, *, extra_texts: Mapping[str, str] | None = None) -> None:
    """Save a PIL image as PNG with the infotext in a `parameters` chunk (as A1111 does), atomically."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", infotext)
    for key, text in (extra_texts or {}).items():
        info.add_text(key, text)
    tmp = _temp_path(dest)
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _temp_path(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _write_atomic(dest: Path, data: bytes) -> None:
    tmp = _temp_path(dest)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
