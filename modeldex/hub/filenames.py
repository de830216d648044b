"""File names that come from a server: read from Content-Disposition, made safe to create on any OS.

A download's name is chosen by whoever answers the request (CivitAI, or the file host it redirects to), so it is
untrusted input: `../../.bashrc`, `/etc/passwd`, `C:\\Windows\\x.dll`, control characters and 2,000-byte names all
arrive the same way as `model_v1.safetensors`. `safe_filename` keeps only the last path component, removes what
Windows, macOS or Linux refuse or misread, and limits the length so the `.part` file and sidecars still fit.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from urllib.parse import unquote

MAX_NAME_BYTES = 200
"""UTF-8 bytes for a final name: NAME_MAX is 255, and `.part` or `.preview.png`/`.civitai.info` must still fit."""
_MAX_SUFFIX_BYTES = 16
"""A longer "extension" is not one (`a.very long sentence with a dot`): it is cut like the rest of the name."""

_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{stem}{n}" for stem in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")]
)
_UNSAFE_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f]')
_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
"""Zero-width and direction-override characters: a name like `gnp.\u202eexe` would display as something else."""


def safe_filename(name: str, *, fallback: str = "download") -> str:
    """A single, harmless file name made from `name`, or `fallback` (itself made safe) when nothing is left.

    Only the last component of a path survives (`/`, `\\` both separate). Control, bidi and zero-width characters
    and the characters Windows forbids become `_`; leading dots (hidden files, `..`) and trailing dots and spaces
    (which Windows drops) go; Windows device names (`CON`, `nul.txt`) get a `_` prefix; the result is NFC and at
    most `MAX_NAME_BYTES` bytes of UTF-8, cut before the extension so `.safetensors` survives.
    """
    cleaned = _clean(name)
    if not cleaned:
        cleaned = _clean(fallback) or "download"
    return cleaned


def _clean(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = _BIDI_AND_INVISIBLE.sub("", name)
    name = _UNSAFE_CHARS.sub("_", name)
    name = name.strip().lstrip(".").rstrip(". ")
    if not name or set(name) <= {"_", " ", "."}:
        return ""
    stem = name.split(".", 1)[0].rstrip(" ")
    if stem.upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return _limit(name, MAX_NAME_BYTES)


def _limit(name: str, max_bytes: int) -> str:
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix.encode("utf-8")) > _MAX_SUFFIX_BYTES:
        stem, suffix = name, ""
    tail = f".{suffix}" if suffix else ""
    room = max_bytes - len(tail.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
    return cut + tail


def filename_from_disposition(header: str | None) -> str | None:
    """The file name a `Content-Disposition` header gives (not yet made safe), or None.

    `filename*=UTF-8''...` (RFC 6266/5987) wins over `filename="..."`; quoted strings may hold `;` and `\\"`.
    Names are percent-decoded only in the extended form, where the encoding says they are.
    """
    if not header:
        return None
    params = _parameters(header)
    extended = params.get("filename*")
    if extended is not None:
        charset, _, rest = extended.partition("'")
        _lang, _, encoded = rest.partition("'")
        if encoded:
            try:
                codecs.lookup(charset or "utf-8")
                return unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                pass  # a bad charset label or bytes: fall back to the plain parameter
    plain = params.get("filename")
    return plain or None


def _parameters(header: str) -> dict[str, str]:
    """`key=value` pairs after the disposition type; keys lower-case, quoted values unescaped."""
    found: dict[str, str] = {}
    for match in re.finditer(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', header):
        key, value = match.group(1).lower(), match.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.setdefault(key, value)
    return found
