"""Turning a CivitAI answer that is not the data asked for into a typed error with a message for the user.

Used by the API client and by downloads, so a 401, an early-access refusal, a login-page redirect, a Cloudflare
challenge or a 524 reads the same wherever it happens. Every message is one line and passes through `redact`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from modeldex.errors import (
    AuthRequiredError,
    BadResponseError,
    ChallengeError,
    EarlyAccessError,
    HubError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from modeldex.hub.retry import RETRY_STATUSES, parse_retry_after

KEY_HELP = (
    "create an API key at https://civitai.com/user/account and set CIVITAI_API_KEY "
    "(or civitai_api_key in the config file)"
)

_CHALLENGE_MARKERS = (
    b"just a moment",
    b"_cf_chl_opt",
    b"challenge-platform",
    b"cf-challenge",
    b"attention required! | cloudflare",
    b"cf-error-details",
)


@dataclass(frozen=True)
class Failure:
    """What went wrong with one answer, and whether trying again may help."""

    error: HubError
    retryable: bool
    retry_after: float | None = None
    """Seconds the server asked us to wait (`Retry-After`), when it did."""


def is_html(response: httpx.Response) -> bool:
    """True when the answer declares HTML, or looks like it though it declares something else."""
    kind = response.headers.get("content-type", "").lower()
    if "html" in kind:
        return True
    head = response.content[:512].lstrip().lower() if _is_read(response) else b""
    return head.startswith((b"<!doctype html", b"<html"))


def is_challenge(response: httpx.Response) -> bool:
    """True for a Cloudflare challenge or block page."""
    if response.headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    if not is_html(response) or not _is_read(response):
        return False
    head = response.content[:65536].lower()
    return any(marker in head for marker in _CHALLENGE_MARKERS)


def is_login_redirect(response: httpx.Response) -> bool:
    """True when a request ended on CivitAI's login page (a download that needs login redirects there)."""
    urls = [response.url, *(r.url for r in response.history)]
    if response.is_redirect and "location" in response.headers:
        urls.append(response.url.join(response.headers["location"]))
    for url in urls:
        path = url.path.rstrip("/").lower()
        if path.endswith("/login") or path.endswith("/signin") or url.params.get("reason") == "download-auth":
            return True
    return False


def server_message(response: httpx.Response, limit: int = 200) -> str:
    """The server's own words from a JSON error body (`error`, `message`), on one line; "" when there are none."""
    if not _is_read(response) or "json" not in response.headers.get("content-type", "").lower():
        return ""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [_as_text(body.get(key)) for key in ("error", "message")]
    text = ": ".join(p for p in parts if p)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_failure(
    response: httpx.Response,
    *,
    what: str,
    has_key: bool,
    redact: Callable[[str], str] = lambda text: text,
) -> Failure:
    """The error for an answer that is not a success (or a success that is an HTML page or a login page).

    `what` names the thing asked for ("model 123"), `has_key` says whether an API key was sent.
    """
    status = response.status_code
    host = response.url.host or "CivitAI"
    said = server_message(response)
    detail = f": {said}" if said else ""

    def fail(error: HubError, retryable: bool = False, retry_after: float | None = None) -> Failure:
        error.message = redact(error.message)
        error.args = (error.message,)
        return Failure(error, retryable, retry_after)

    if is_challenge(response):
        return fail(
            ChallengeError(
                f"{host} answered {what} with a Cloudflare challenge page instead of data (HTTP {status}); "
                "wait a while and retry, lower requests_per_second, or use another network or a mirror"
            ),
            retryable=True,
        )
    early = _early_access(response, said)
    if early is not None:
        return fail(EarlyAccessError(f"{what} is in early access{early}: {_early_help(has_key)}"))
    if status in (401, 403) or is_login_redirect(response):
        if is_login_redirect(response) or not has_key:
            where = " (redirected to the login page)" if is_login_redirect(response) else f" (HTTP {status}{detail})"
            return fail(AuthRequiredError(f"{host} requires login for {what}{where}: {KEY_HELP}"))
        return fail(
            AuthRequiredError(
                f"{host} refused the API key for {what} (HTTP {status}{detail}): check CIVITAI_API_KEY or "
                "civitai_api_key; a version in early access also needs an account that has access"
            )
        )
    if status == 404:
        hint = ""
        if host in ("civitai.com", "www.civitai.com"):
            hint = '; mature content may be served only by civitai.red (set civitai_url = "https://civitai.red")'
        return fail(NotFoundError(f"{what} not found on {host}{detail}{hint}"))
    if status == 429:
        if "page" in said.lower() and "cursor" in said.lower():
            return fail(HubError(f"{host} refuses page-based paging this deep for {what}{detail}"))
        wait = parse_retry_after(response.headers.get("retry-after"))
        after = f", asked to wait {wait:.0f} s" if wait is not None else ""
        return fail(
            RateLimitedError(
                f"{host} is rate limiting requests (HTTP 429{after}) for {what}; try again later or lower "
                "requests_per_second",
                retry_after=wait,
            ),
            retryable=True,
            retry_after=wait,
        )
    if status == 524:
        return fail(
            ServerError(f"{host}: Cloudflare timed out waiting for CivitAI (HTTP 524) for {what}; try again later"),
            retryable=True,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500 or status in RETRY_STATUSES:
        return fail(
            ServerError(f"{host} failed with HTTP {status}{detail} for {what}; CivitAI may be busy, try again later"),
            retryable=True,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if 200 <= status < 300 and is_html(response):
        return fail(BadResponseError(f"{host} sent an HTML page instead of data for {what}"), retryable=True)
    return fail(HubError(f"{host} rejected the request for {what} (HTTP {status}{detail})"))


def json_body(
    response: httpx.Response, *, what: str, has_key: bool, redact: Callable[[str], str] = lambda text: text
) -> tuple[Any, Failure | None]:
    """The parsed JSON of a successful answer, or the failure that describes it."""
    if not response.is_success or is_html(response) or is_login_redirect(response):
        return None, describe_failure(response, what=what, has_key=has_key, redact=redact)
    try:
        return response.json(), None
    except (json.JSONDecodeError, UnicodeDecodeError):
        host = response.url.host or "CivitAI"
        # Retryable: a body cut short by a proxy or a wrong Content-Length is the usual cause.
        return None, Failure(BadResponseError(redact(f"{host} sent invalid JSON for {what}")), retryable=True)


def _early_access(response: httpx.Response, said: str) -> str | None:
    """ " until DATE" / "" when the refusal is about early access, None when it is not."""
    if response.status_code not in (401, 403) or not _is_read(response):
        return None
    body: Any = None
    if "json" in response.headers.get("content-type", "").lower():
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
    deadline = body.get("deadline") if isinstance(body, dict) else None
    if "early access" not in said.lower() and not deadline:
        return None
    return f" until {deadline}" if isinstance(deadline, str) and deadline else ""


def _early_help(has_key: bool) -> str:
    if has_key:
        return (
            "the API key's account has no access to it yet; wait for the end of early access or get access on CivitAI"
        )
    return f"only accounts with access may download it; {KEY_HELP}"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_read(response: httpx.Response) -> bool:
    # A streamed download that was not read yet has no content to inspect; touching it would raise.
    try:
        response.content  # noqa: B018 - probing whether the body is loaded
    except httpx.ResponseNotRead:
        return False
    return True
