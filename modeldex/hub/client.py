"""The CivitAI API v1 client: typed answers, cursor paging, pacing, retries and a key that stays on CivitAI.

    with CivitaiClient("https://civitai.com", api_key) as civitai:
        model = civitai.get_model(4201)
        for version in civitai.versions_by_hashes(sha256s):
            ...

Settings arrive as arguments (the shell reads the config and the environment). Proxies: `proxy=` or, with
`trust_env` (the default), `HTTPS_PROXY`/`ALL_PROXY`, `socks5h://` included.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from modeldex import __version__
from modeldex.errors import BadResponseError, ConfigError, HubError, NetworkError, UsageError
from modeldex.hub.api_errors import Failure, json_body
from modeldex.hub.api_models import Creator, Enums, Image, Model, ModelVersion, Page, Tag
from modeldex.hub.auth import DEFAULT_BASE_URL, KeyPolicy, apply_key_policy, redact
from modeldex.hub.retry import RateLimiter, RetryPolicy

ItemT = TypeVar("ItemT", bound=BaseModel)

BATCH_SIZE = 100
"""Ids per `/models?ids=` call and SHA256s per `POST /model-versions/by-hash` (CivitAI's limit for the latter)."""

_SHA256 = re.compile(r"^[0-9A-Fa-f]{64}$")
_EMPTY_PAGES_BEFORE_STOP = 5
ParamValue = str | int | float | bool | Sequence[str] | None


class CivitaiClient:
    """A client for one CivitAI site (civitai.com, civitai.red, a mirror or `modeldex serve`)."""

    http: httpx.Client
    """The underlying httpx client, for streaming downloads: it adds the key only for CivitAI hosts."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        requests_per_second: float = 2.0,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        proxy: str | None = None,
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
        user_agent: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """`base_url` is the site root (the API is under `/api/v1`, downloads under `/api/download`).

        `timeout` bounds connecting and each read (not a whole download). `sleep`, `clock` and `rng` are for tests.
        """
        self.policy = KeyPolicy(base_url, api_key)
        self.base_url = self.policy.base_url
        self.api_root = f"{self.base_url}/api/v1"
        self.retry = RetryPolicy(max_retries, backoff_base, backoff_cap, max_retry_after)
        self._limiter = RateLimiter(requests_per_second, clock=clock, sleep=sleep)
        self._rng = rng or random.Random()
        try:
            self.http = self._make_http(timeout, proxy, trust_env, transport, user_agent)
        except ValueError as exc:  # httpx's word for a proxy URL it cannot use (flag or environment)
            where = "proxy URL" if proxy else "proxy from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY"
            raise ConfigError(f"{where} is not usable: {redact(str(exc))}") from exc

    def _make_http(
        self,
        timeout: float,
        proxy: str | None,
        trust_env: bool,
        transport: httpx.BaseTransport | None,
        user_agent: str | None,
    ) -> httpx.Client:
        policy = self.policy
        return httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 20.0)),
            follow_redirects=True,
            proxy=proxy,
            trust_env=trust_env,
            transport=transport,
            headers={"User-Agent": user_agent or f"modeldex/{__version__}"},
            event_hooks={"request": [lambda request: apply_key_policy(request, policy)]},
        )

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> CivitaiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_key(self) -> bool:
        """True when an API key is configured."""
        return self.policy.api_key is not None

    def auth_headers_for(self, url: str) -> dict[str, str]:
        """The Authorization header for `url` when it is a CivitAI host (or the configured base), else `{}`."""
        return self.policy.headers_for(url)

    def redact(self, text: str) -> str:
        """`text` with the API key and any token scrubbed, for messages and logs."""
        return self.policy.redact(text)

    # --- endpoints -------------------------------------------------------------------------------------------------

    def get_model(self, model_id: int) -> Model:
        """`/models/{id}`; raises `NotFoundError` when there is no such model."""
        data = self.get_json(f"/models/{int(model_id)}", what=f"model {model_id}")
        return self._parse(Model, data, f"model {model_id}")

    def get_version(self, version_id: int) -> ModelVersion:
        """`/model-versions/{id}`; raises `NotFoundError` when there is no such published version."""
        data = self.get_json(f"/model-versions/{int(version_id)}", what=f"model version {version_id}")
        return self._parse(ModelVersion, data, f"model version {version_id}")

    def get_version_by_hash(self, file_hash: str) -> ModelVersion:
        """`/model-versions/by-hash/{hash}`: any hash type CivitAI keeps (AutoV1/V2/V3, SHA256, CRC32, BLAKE3).

        Raises `NotFoundError` when CivitAI knows no file with that hash.
        """
        value = file_hash.strip().upper()
        if not value or not re.fullmatch(r"[0-9A-F]+", value):
            raise UsageError(f"{file_hash!r} is not a hexadecimal file hash")
        data = self.get_json(f"/model-versions/by-hash/{value}", what=f"a file with hash {value}")
        return self._parse(ModelVersion, data, f"the version of hash {value}")

    def versions_by_hashes(self, sha256s: Iterable[str]) -> list[ModelVersion]:
        """`POST /model-versions/by-hash` in batches of 100: the versions of the files CivitAI knows (misses omitted)."""
        wanted: list[str] = []
        for value in sha256s:
            text = value.strip()
            if not _SHA256.fullmatch(text):
                raise UsageError(f"{value!r} is not a SHA256 (64 hexadecimal digits)")
            if text.upper() not in wanted:
                wanted.append(text.upper())
        found: list[ModelVersion] = []
        for start in range(0, len(wanted), BATCH_SIZE):
            chunk = wanted[start : start + BATCH_SIZE]
            what = f"{len(chunk)} hashes"
            data = self.request_json("POST", "/model-versions/by-hash", json=chunk, what=what)
            if not isinstance(data, list):
                raise BadResponseError(f"{self._host} answered the batch hash lookup with {type(data).__name__}")
            found.extend(self._parse(ModelVersion, item, "a version found by hash") for item in data)
        return found

    def iter_models(
        self,
        *,
        query: str | None = None,
        tag: str | None = None,
        username: str | None = None,
        types: Sequence[str] | None = None,
        base_models: Sequence[str] | None = None,
        sort: str | None = None,
        period: str | None = None,
        nsfw: bool | None = None,
        ids: Iterable[int] | None = None,
        limit: int = 100,
        **extra: ParamValue,
    ) -> Iterator[Model]:
        """`/models`, every page (cursor paging); `ids` go in batches of 100. Extra filters pass through as given."""
        params: dict[str, ParamValue] = {
            "query": query,
            "tag": tag,
            "username": username,
            "types": list(types) if types else None,
            "baseModels": list(base_models) if base_models else None,
            "sort": sort,
            "period": period,
            "nsfw": nsfw,
            "limit": limit,
            **extra,
        }
        if ids is None:
            yield from self._paginate("/models", params, Model, "the model list")
            return
        id_list = list(dict.fromkeys(int(i) for i in ids))
        for start in range(0, len(id_list), BATCH_SIZE):
            chunk = id_list[start : start + BATCH_SIZE]
            chunk_params = {**params, "ids": ",".join(map(str, chunk)), "limit": max(limit, len(chunk))}
            yield from self._paginate("/models", chunk_params, Model, f"models {chunk[0]}..{chunk[-1]}")

    def iter_images(
        self,
        *,
        model_version_id: int | None = None,
        model_id: int | None = None,
        username: str | None = None,
        nsfw: bool | str | None = None,
        sort: str | None = None,
        period: str | None = None,
        with_meta: bool | None = True,
        limit: int = 100,
        **extra: ParamValue,
    ) -> Iterator[Image]:
        """`/images`, every page (cursor paging). `nsfw` is a bool or a level name (None, Soft, Mature, X)."""
        params: dict[str, ParamValue] = {
            "modelVersionId": model_version_id,
            "modelId": model_id,
            "username": username,
            "nsfw": nsfw,
            "sort": sort,
            "period": period,
            "withMeta": with_meta,
            "limit": limit,
            **extra,
        }
        yield from self._paginate("/images", params, Image, "the image list")

    def creators(self, query: str | None = None, *, limit: int = 20, page: int | None = None) -> Page[Creator]:
        """One page of `/creators`."""
        params = {"query": query, "limit": limit, "page": page}
        data = self.get_json("/creators", params=params, what="the creator list")
        return self._parse(Page[Creator], data, "the creator list")

    def iter_creators(self, query: str | None = None, *, limit: int = 100) -> Iterator[Creator]:
        """Every creator matching `query` (page paging; CivitAI stops page paging at 1000 items)."""
        yield from self._paginate("/creators", {"query": query, "limit": limit}, Creator, "the creator list")

    def tags(self, query: str | None = None, *, limit: int = 20, page: int | None = None) -> Page[Tag]:
        """One page of `/tags`."""
        params = {"query": query, "limit": limit, "page": page}
        data = self.get_json("/tags", params=params, what="the tag list")
        return self._parse(Page[Tag], data, "the tag list")

    def iter_tags(self, query: str | None = None, *, limit: int = 100) -> Iterator[Tag]:
        """Every tag matching `query` (page paging)."""
        yield from self._paginate("/tags", {"query": query, "limit": limit}, Tag, "the tag list")

    def enums(self) -> Enums:
        """`/enums`: model types, file types and base models CivitAI accepts today."""
        return self._parse(Enums, self.get_json("/enums", what="the enum lists"), "the enum lists")

    def download_url(
        self,
        version_id: int,
        *,
        type: str | None = None,  # noqa: A002 - CivitAI's query parameter names
        format: str | None = None,  # noqa: A002
        fp: str | None = None,
        size: str | None = None,
    ) -> str:
        """`{base}/api/download/models/{id}` with the given file filters; never carries the key."""
        query = {k: v for k, v in {"type": type, "format": format, "fp": fp, "size": size}.items() if v}
        url = f"{self.base_url}/api/download/models/{int(version_id)}"
        return f"{url}?{urlencode(query)}" if query else url

    # --- the request core ------------------------------------------------------------------------------------------

    def get_json(self, path: str, *, params: Mapping[str, ParamValue] | None = None, what: str = "the request") -> Any:
        """GET an API path (relative to `/api/v1`) and return its JSON, retrying what is worth retrying."""
        return self.request_json("GET", path, params=params, what=what)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        json: Any = None,
        what: str = "the request",
    ) -> Any:
        """Send one API call, paced by the rate limit; back off and retry 429, 5xx, 524, challenge pages and
        connection errors (honouring `Retry-After`); raise a typed `HubError` for the rest and when tries run out."""
        url = f"{self.api_root}/{path.lstrip('/')}"
        query = _encode_params(params or {})
        retry = 0
        while True:
            self._limiter.wait()
            failure = self._try_once(method, url, query, json, what)
            if isinstance(failure, _Success):
                return failure.data
            if not failure.retryable or retry >= self.retry.max_retries:
                raise failure.error
            if failure.retry_after is not None and failure.retry_after > self.retry.max_retry_after:
                raise failure.error  # do not hang for minutes: the message says how long CivitAI wants
            delay = failure.retry_after if failure.retry_after is not None else self.retry.backoff(retry, self._rng)
            self._limiter.push_back(delay)
            retry += 1

    def _try_once(
        self, method: str, url: str, query: list[tuple[str, str]], body: Any, what: str
    ) -> _Success | Failure:
        try:
            response = self.http.request(
                method, url, params=tuple(query), json=body, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException as exc:
            return Failure(NetworkError(self.redact(f"{self._host} timed out answering {what} ({_name(exc)})")), True)
        except httpx.TransportError as exc:
            # Connection refused or reset, a body cut short, a proxy failure: all worth another try.
            return Failure(NetworkError(self.redact(f"cannot get {what} from {self._host}: {_describe(exc)}")), True)
        except httpx.TooManyRedirects:
            return Failure(HubError(self.redact(f"{self._host} redirected {what} in a loop")), False)
        except httpx.DecodingError as exc:
            return Failure(BadResponseError(self.redact(f"{self._host} sent {what} mis-encoded: {exc}")), True)
        data, failure = json_body(response, what=what, has_key=self.has_key, redact=self.redact)
        return failure if failure is not None else _Success(data)

    def _paginate(
        self, path: str, params: Mapping[str, ParamValue], item_type: type[ItemT], what: str
    ) -> Iterator[ItemT]:
        """Yield items page after page, following `metadata.nextCursor` / `nextPage` until there is none."""
        current = dict(params)
        seen: set[tuple[tuple[str, str], ...]] = set()
        empty_pages = 0
        while True:
            key = tuple(_encode_params(current))
            if key in seen:
                return  # the server handed back a cursor it gave before: stop instead of looping forever
            seen.add(key)
            data = self.get_json(path, params=current, what=what)
            page = self._parse(Page[item_type], data, what)  # type: ignore[valid-type]
            yield from page.items
            empty_pages = 0 if page.items else empty_pages + 1
            following = _next_params(page.metadata.next_cursor, page.metadata.next_page, current)
            if following is None or empty_pages >= _EMPTY_PAGES_BEFORE_STOP:
                return
            current = following

    def _parse(self, model: type[ItemT], data: Any, what: str) -> ItemT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the top level"
            raise BadResponseError(
                f"{self._host} sent {what} in a shape modeldex does not understand ({where}: {first['msg']})"
            ) from exc

    @property
    def _host(self) -> str:
        return urlsplit(self.base_url).netloc


class _Success:
    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _encode_params(params: Mapping[str, ParamValue]) -> list[tuple[str, str]]:
    """Query pairs: None dropped, booleans as true/false, sequences as repeated parameters."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(item)) for item in value)
    return pairs


def _next_params(
    next_cursor: str | None, next_page: str | None, current: Mapping[str, ParamValue]
) -> dict[str, ParamValue] | None:
    """The parameters of the next page: ours, with the cursor or page number the server handed back.

    `nextPage` is a full URL, possibly on another CivitAI host than the one configured: only its `cursor`/`page`
    are taken, so paging stays on the configured host and the key never follows a link.
    """
    if next_cursor:
        following = {k: v for k, v in current.items() if k != "page"}
        following["cursor"] = next_cursor
        return following
    if next_page:
        query = parse_qs(urlsplit(next_page).query)
        for name in ("cursor", "page"):
            if query.get(name):
                following = {k: v for k, v in current.items() if k not in ("cursor", "page")}
                following[name] = query[name][0]
                return following
    return None


def _name(exc: Exception) -> str:
    return type(exc).__name__


def _describe(exc: httpx.TransportError) -> str:
    text = " ".join(str(exc).split())
    return f"{_name(exc)}: {text}" if text else _name(exc)
