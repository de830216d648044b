"""Who may see the API key: CivitAI's own hosts and the configured base URL, nobody else; and scrubbing it from text.

The key travels only as `Authorization: Bearer`, never as `?token=` (a query string ends up in the file host's logs,
in redirects and in error messages). A download redirects to a pre-signed URL on another host: that request must go
without the header, which `apply_key_policy` guarantees for every request the client sends, redirect hops included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from modeldex.errors import ConfigError

CIVITAI_HOSTS = frozenset({"civitai.com", "www.civitai.com", "civitai.red", "www.civitai.red"})
"""CivitAI's public hosts (green and red); the key goes to them over HTTPS only."""

DEFAULT_BASE_URL = "https://civitai.com"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_base_url(base_url: str) -> str:
    """The site root without a trailing slash; an API root (`.../api/v1`) is cut back to the site root.

    Raises `ConfigError` for anything that is not an absolute http(s) URL.
    """
    text = base_url.strip().rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if text.lower().endswith(suffix):
            text = text[: -len(suffix)]
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        host = None
    if host is None or parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(
            f"CivitAI base URL {redact(base_url)!r} is not an http(s) URL; give the site root, e.g. https://civitai.com"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"CivitAI base URL {redact(base_url)!r} must not carry a query or fragment")
    return text


def origin(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in: two URLs with the same origin share credentials."""
    parsed = httpx.URL(str(url)) if not isinstance(url, httpx.URL) else url
    scheme = parsed.scheme.lower()
    port = parsed.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, parsed.host.lower(), port


def civitai_hostnames(base_url: str | None = None) -> frozenset[str]:
    """Host names whose links are CivitAI links: the public hosts and the configured base URL's host."""
    hosts = set(CIVITAI_HOSTS)
    if base_url:
        host = urlsplit(normalize_base_url(base_url)).hostname
        if host:
            hosts.add(host.lower())
    return frozenset(hosts)


class KeyPolicy:
    """Decides, per URL, whether the API key may be sent there."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key or None
        self._base_origin = origin(self.base_url)

    def allows(self, url: str | httpx.URL) -> bool:
        """True when `url` is the configured base origin, or a CivitAI public host over HTTPS."""
        scheme, host, port = origin(url)
        if (scheme, host, port) == self._base_origin:
            return True
        return scheme == "https" and port == 443 and host in CIVITAI_HOSTS

    def headers_for(self, url: str | httpx.URL) -> dict[str, str]:
        """`{"Authorization": "Bearer ..."}` when a key is set and `url` may see it, else `{}`."""
        if self.api_key and self.allows(url):
            return {"Authorization": f"Bearer {self.api_key}"}
        return {}

    def redact(self, text: str) -> str:
        """`text` with the key and any `token=` query value replaced by `***`."""
        return redact(text, [self.api_key] if self.api_key else [])


def apply_key_policy(request: httpx.Request, policy: KeyPolicy) -> None:
    """Give a request the Bearer header when it goes to CivitAI; take any Authorization off when it does not.

    Installed as a request event hook, so it runs for every hop of a redirect chain: civitai.com sending a mature
    download on to civitai.red keeps the key, the hop to the file host loses it. (httpx applies `auth=` to the first
    request only, and strips the header on any change of origin by itself; neither is what we need.)
    """
    if not policy.allows(request.url):
        request.headers.pop("Authorization", None)
        return
    request.headers.update(policy.headers_for(request.url))


_TOKEN_PARAM = re.compile(r"(?i)([?&](?:token|api_key|apikey|key)=)[^&#\s\"']+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_USERINFO = re.compile(r"(//[^/\s:@]+:)[^@\s/]+@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub secrets from text bound for a user or a log: each given secret, `token=` values, Bearer tokens and
    passwords inside URLs."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _TOKEN_PARAM.sub(r"\1***", text)
    text = _USERINFO.sub(r"\1***@", text)  # a proxy password in socks5h://user:password@host
    return _BEARER.sub(r"\1***", text)
