"""Tell what a file is from its first bytes, never from its name.

Model containers are recognised by their magic; the usual impostors (a Git LFS pointer, an HTML login page, a JSON
error body, a preview image, an archive) get a message that says what they are and what to do.
"""

from __future__ import annotations

import enum
import json
import struct

from modeldex.errors import ReadError

SNIFF_BYTES = 4096
_SMALL_TEXT = 1 << 20


class Container(enum.Enum):
    """The container a file's magic bytes announce."""

    SAFETENSORS = "safetensors"
    TORCH_ZIP = "torch_zip"
    PICKLE = "pickle"
    """Starts with a protocol 2-5 pickle: a legacy torch file or a plain pickle."""
    MAYBE_PICKLE = "maybe_pickle"
    """Might be a protocol 0/1 pickle (no header to tell): only accepted if it parses to the end."""
    GGUF = "gguf"


_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image, not a model"),
    (0, b"\xff\xd8\xff", "a JPEG image, not a model"),
    (0, b"GIF8", "a GIF image, not a model"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: unpack it first"),
    (0, b"Rar!\x1a\x07", "a RAR archive: unpack it first"),
    (0, b"\x1f\x8b", "a gzip-compressed file: unpack it first"),
    (0, b"BZh", "a bzip2-compressed file: unpack it first"),
    (0, b"\xfd7zXZ\x00", "an xz-compressed file: unpack it first"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd-compressed file: unpack it first"),
    (257, b"ustar", "a tar archive: unpack it first"),
    (0, b"%PDF", "a PDF document, not a model"),
)

_PROTOCOL_0_STARTS = frozenset(b"(}])cNIJKLFSVX")
"""Opcodes a protocol 0/1 pickle of a model-ish object can begin with."""


def _text_error(head: bytes, size: int, read_all: bytes | None) -> str | None:
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    lower = text[:512].lower()
    if lower.startswith(b"version https://git-lfs.github.com/spec/"):
        return "a Git LFS pointer, not the model: run `git lfs pull`"
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        lower.startswith(b"<") and b"<html" in lower
    ):
        return "an HTML page (a login or error page?), not a model"
    if lower.startswith(b"<?xml"):
        return "an XML document (an error response?), not a model"
    if text[:1] in (b"{", b"[") and read_all is not None:
        try:
            parsed = json.loads(read_all.decode("utf-8"))
        except (ValueError, RecursionError):
            return None
        detail = ""
        if isinstance(parsed, dict):
            for field in ("error", "message", "detail", "msg"):
                if isinstance(parsed.get(field), str):
                    detail = f": {parsed[field][:200]}"
                    break
        return f"a JSON document (an error response?), not a model{detail}"
    return None


def sniff(head: bytes, size: int, read_all: bytes | None = None) -> Container:
    """The container `head` (the file's first bytes) announces, or a `ReadError` saying what the file is instead.

    `read_all` is the whole file when it is small, for recognising JSON error bodies.
    """
    if size == 0:
        raise ReadError("empty file (0 bytes)")
    if head[:4] == b"GGUF":
        return Container.GGUF
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return Container.TORCH_ZIP
    brace_at_8 = len(head) >= 9 and head[8:9] == b"{"
    # Before the pickle test: a header of 640 bytes (0x280) makes a safetensors file start with 80 02.
    if brace_at_8 and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return Container.SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return Container.PICKLE
    # A JSON body such as `{"data":{...` also has `{` at byte 8 (its "length" runs past the end); otherwise an
    # implausible length is a damaged safetensors file, which its reader describes.
    if brace_at_8 and not _text_error(head, size, read_all):
        return Container.SAFETENSORS
    problem = _text_error(head, size, read_all)
    if problem:
        raise ReadError(problem)
    if not head.strip(b"\x00"):
        raise ReadError("only zero bytes at the start (an unfinished or preallocated download?), not a model")
    for offset, magic, message in _OTHER_FORMATS:
        if head[offset : offset + len(magic)] == magic:
            raise ReadError(message)
    if head[0] in _PROTOCOL_0_STARTS:
        return Container.MAYBE_PICKLE
    if size < 16:
        raise ReadError(f"not a model file (only {size} bytes)")
    raise ReadError(f"not a model file (unrecognised content starting with {head[:8].hex(' ')})")
