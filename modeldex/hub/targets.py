"""What the user asked to download: a model id, a version id, a CivitAI link or an AIR urn, parsed into ids.

    123                                               model 123 (its latest published version)
    v:456                                             version 456
    https://civitai.com/models/123/some-slug          model 123
    https://civitai.red/models/123?modelVersionId=456 version 456 of model 123
    https://civitai.com/api/download/models/456?type=Model&format=SafeTensor&fp=fp16
                                                      version 456, with those file filters
    urn:air:sdxl:lora:civitai:123@456                 version 456 of model 123

Links are accepted on civitai.com, civitai.red (with or without `www.`) and the configured base URL's host. A
`token=` in a pasted link is dropped: the key is only ever sent as a header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from modeldex.errors import UsageError
from modeldex.hub.auth import civitai_hostnames, normalize_base_url, redact

_AIR = re.compile(
    r"""^urn:air:
    (?P<ecosystem>[a-z0-9_.-]+):(?P<type>[a-z0-9_.-]+):(?P<source>[a-z0-9_.-]+):
    (?P<id>[^@:.\s]+)(?:@(?P<version>[^:.\s]+))?
    (?::(?P<layer>[^.\s]+))?(?:\.(?P<format>[a-z0-9]+))?$""",
    re.IGNORECASE | re.VERBOSE,
)
_DIGITS = re.compile(r"[0-9]+")
_AIR_FORMATS = {"safetensors": "SafeTensor", "ckpt": "PickleTensor", "pt": "PickleTensor", "gguf": "GGUF"}
_VERSION_PREFIXES = ("v:", "version:")
_MODEL_PREFIXES = ("m:", "model:")


@dataclass(frozen=True)
class Target:
    """A parsed TARGET: a version id when the user named one, else a model id; optional file filters."""

    model_id: int | None = None
    version_id: int | None = None
    file_type: str | None = None
    """`type=` of a download link (Model, Pruned Model, VAE, Training Data...)."""
    format: str | None = None
    fp: str | None = None
    size: str | None = None

    def describe(self) -> str:
        """Words for messages: "version 456" or "model 123"."""
        if self.version_id is not None:
            return f"version {self.version_id}"
        return f"model {self.model_id}"


def parse_target(text: str, *, base_url: str | None = None) -> Target:
    """Parse a TARGET; raises `UsageError` (one line, token redacted) for anything else.

    `base_url` is the configured CivitAI site root, whose host is accepted in links besides CivitAI's own.
    """
    value = text.strip()
    if not value:
        raise UsageError("no download target given: use a model id, v:VERSION_ID, a CivitAI link or an AIR urn")
    lowered = value.lower()
    if _DIGITS.fullmatch(value):
        return Target(model_id=_id(value, value))
    for prefix in _VERSION_PREFIXES:
        if lowered.startswith(prefix):
            return Target(version_id=_id(value[len(prefix) :], value))
    for prefix in _MODEL_PREFIXES:
        if lowered.startswith(prefix):
            return Target(model_id=_id(value[len(prefix) :], value))
    if lowered.startswith("urn:air:"):
        return _parse_air(value)
    return _parse_link(value, base_url)


def _parse_air(value: str) -> Target:
    match = _AIR.match(value)
    if match is None:
        raise UsageError(f"{value!r} is not an AIR urn of the form urn:air:ECOSYSTEM:TYPE:civitai:MODEL@VERSION")
    if match["source"].lower() != "civitai":
        raise UsageError(f"AIR {value!r} points at {match['source']!r}; only civitai resources can be downloaded")
    model_id = _id(match["id"], value)
    version_id = _id(match["version"], value) if match["version"] else None
    file_format = _AIR_FORMATS.get((match["format"] or "").lower())
    return Target(model_id=model_id, version_id=version_id, format=file_format)


def _parse_link(value: str, base_url: str | None) -> Target:
    shown = redact(value)
    link = value if "://" in value else f"https://{value}"
    try:
        parts = urlsplit(link)
        host = (parts.hostname or "").lower()
    except ValueError:  # "[" without "]" and other unparseable netlocs
        raise UsageError(f"{shown!r} is not a download target: the link cannot be read") from None
    if parts.scheme not in ("http", "https") or not host or ("." not in host and host != "localhost"):
        raise UsageError(
            f"{shown!r} is not a download target: use a model id, v:VERSION_ID, a CivitAI link or an AIR urn"
        )
    if host not in civitai_hostnames(base_url):
        raise UsageError(f"{shown!r} is not a CivitAI link (host {host}); links on civitai.com or civitai.red work")
    path = unquote(parts.path)
    if base_url:
        base = urlsplit(normalize_base_url(base_url))
        prefix = base.path.rstrip("/")
        if prefix and (base.hostname or "").lower() == host and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
    segments = [s for s in path.split("/") if s]
    query = parse_qs(parts.query)

    def param(name: str) -> str | None:
        found = query.get(name)
        return found[0] if found and found[0] else None

    if segments[:3] == ["api", "download", "models"] and len(segments) == 4:
        return Target(
            version_id=_id(segments[3], shown),
            file_type=param("type"),
            format=param("format"),
            fp=param("fp"),
            size=param("size"),
        )
    if segments[:2] == ["api", "v1"]:
        segments = segments[2:]
    if len(segments) >= 2 and segments[0] == "models":
        model_id = _id(segments[1], shown)
        version = param("modelVersionId")
        return Target(model_id=model_id, version_id=_id(version, shown) if version else None)
    if len(segments) == 2 and segments[0] == "model-versions":
        return Target(version_id=_id(segments[1], shown))
    raise UsageError(
        f"{shown!r} is not a CivitAI model or download link (expected /models/ID or /api/download/models/ID)"
    )


def _id(text: str, shown: str) -> int:
    token = text.strip()
    if not _DIGITS.fullmatch(token) or int(token) <= 0:
        raise UsageError(f"{redact(shown)!r}: {token!r} is not a CivitAI id (a positive whole number)")
    return int(token)
