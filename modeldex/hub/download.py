"""A resumable, verified download of one file into a folder of its own.

    got = download_file(civitai.http, url, folder, expected=Expected.from_api(file.size_kb, file.sha256))

The bytes go to `NAME.part` in `folder` (NAME from Content-Disposition, made safe), and only a file whose size and
SHA256 match what CivitAI announced is renamed to NAME. A later call with the same folder resumes the `.part` with a
Range request: a 206 appends, a 200 (the server ignored the range) starts over, a 416 means the part may already be
whole. Dropped connections, resets and cut-short bodies are retried from where the bytes stopped, with the retry
budget refilled whenever bytes arrive; 429, 5xx and 524 are retried after a backoff (or the server's Retry-After).

Nothing that is not the file is ever written: an answer that declares or looks like JSON or HTML (a 401 body, an
early-access refusal, a login page after a redirect, a Cloudflare challenge) becomes a typed `HubError` with a
message for the user, checked before the first byte is written. The SHA256 is computed while writing, so
verification costs no second read.

Redirects are followed here, hop by hop, so each hop's headers come from `headers_for` (the API key goes to
CivitAI only, never to the file host) and a redirect to a login page is caught before it is fetched.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modeldex.errors import AuthRequiredError, BadResponseError, HubError, NetworkError
from modeldex.hub.api_errors import KEY_HELP, describe_failure, is_login_redirect, server_message
from modeldex.hub.filenames import filename_from_disposition, safe_filename
from modeldex.hub.retry import RetryPolicy

PART_SUFFIX = ".part"
CHUNK_SIZE = 4 << 20
"""Bytes per read when hashing a part left by an earlier run."""
SIZE_SLACK = 1024
"""`sizeKB` is a rounded float: sizes within 1 KiB of it match."""
FREE_SPACE_MARGIN = 64 << 20
"""Room kept free on the disk beyond the file itself, so a download never fills it to the last byte."""
MAX_REDIRECTS = 10
MAX_RESTARTS = 3
"""Times a download may start over from byte 0 (a server ignoring Range, a part longer than the file)."""
_HEAD_LIMIT = 64 << 10
"""Bytes of a refused answer read to tell the user why (an error body or a login page is far smaller)."""
TEXT_SUFFIXES = frozenset({".json", ".yaml", ".yml", ".txt", ".md", ".csv", ".html", ".htm", ".xml", ".toml"})
"""Files CivitAI hosts that are text by nature (workflows, configs, wildcards): JSON or HTML is what they are."""
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

HeadersFor = Callable[[str], Mapping[str, str]]
Progress = Callable[[int, int | None], None]
"""Called with (bytes on disk, total bytes or None) as the download advances."""


def _no_headers(_url: str) -> Mapping[str, str]:
    return {}


def _ignore_progress(_done: int, _total: int | None) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Expected:
    """What the API says the file is; None where it does not say."""

    sha256: str | None = None
    size: int | None = None
    """Bytes; approximate when it came from `sizeKB`."""
    slack: int = SIZE_SLACK

    @classmethod
    def from_api(cls, size_kb: float | None, sha256: str | None) -> Expected:
        """From a version file's `sizeKB` and `hashes.SHA256`."""
        size = round(size_kb * 1024) if size_kb is not None and size_kb > 0 else None
        return cls(sha256=sha256.lower() if sha256 else None, size=size)

    def size_matches(self, size: int) -> bool:
        return self.size is None or abs(size - self.size) <= self.slack


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified file in place."""

    path: Path
    sha256: str
    """Lower-case hex."""
    size: int
    fetched: int
    """Bytes received over the network by this call (0 when an earlier call had finished the file)."""
    resumed_from: int
    """Bytes of an earlier `.part` that this call kept and did not fetch again."""
    verified: bool
    """True when the SHA256 was checked against the API's; False when the API gave none (size only)."""


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, error: HubError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


class _Restart(Exception):
    """The part on disk cannot be continued: start the file from byte 0."""


@dataclass
class _Part:
    """The `.part` file and the SHA256 of the bytes in it."""

    folder: Path
    name: str
    hasher: Any = None
    hashed: int = 0
    inherited: int = 0
    """Bytes of an earlier call's part that this call kept."""

    @property
    def path(self) -> Path:
        return self.folder / (self.name + PART_SUFFIX)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def rename(self, name: str) -> None:
        if name != self.name:
            if self.path.exists():
                os.replace(self.path, self.folder / (name + PART_SUFFIX))
            self.name = name

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher, self.hashed, self.inherited = hashlib.sha256(), 0, 0

    def catch_up(self) -> None:
        """Hash what is on disk that the hasher has not seen (an earlier run's bytes)."""
        size = self.size()
        if self.hasher is None or self.hashed > size:
            self.hasher, self.hashed = hashlib.sha256(), 0
        if self.hashed == size:
            return
        with open(self.path, "rb") as f:
            f.seek(self.hashed)
            while chunk := f.read(CHUNK_SIZE):
                self.hasher.update(chunk)
                self.hashed += len(chunk)


def download_file(
    http: httpx.Client,
    url: str,
    folder: Path,
    *,
    expected: Expected | None = None,
    name_hint: str | None = None,
    headers_for: HeadersFor = _no_headers,
    on_progress: Progress = _ignore_progress,
    retry: RetryPolicy | None = None,
    redact: Callable[[str], str] = lambda text: text,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Downloaded:
    """Download `url` into `folder` (created; it should hold this download only) and verify it; see the module doc.

    `name_hint` (the API's file name) names the file until Content-Disposition says otherwise; it also decides
    whether a text body is the file itself (`workflow.json`) or an error page. `on_progress` may raise to stop
    the download: the `.part` stays for the next call. Raises `HubError` subclasses: `AuthRequiredError` (exit 3),
    `NotFoundError` (4), `NetworkError`, `ServerError`, `BadResponseError` or `HubError` (1).
    """
    expected = expected or Expected()
    retry = retry or RetryPolicy()
    rng = rng or random.Random()
    folder.mkdir(parents=True, exist_ok=True)
    hint = safe_filename(name_hint) if name_hint else None
    finished = _finished_file(folder, expected)
    if finished is not None:
        return finished
    part = _Part(folder, _existing_part_name(folder, hint) or hint or "download")
    part.inherited = part.size()
    session = _Session(http, url, folder, part, expected, hint, headers_for, on_progress, redact)
    failures = restarts = 0
    furthest = part.size()
    refetched_whole = False
    while True:
        try:
            session.attempt()
        except _Retry as exc:
            if part.size() > furthest:
                # New bytes arrived: the connection works, so the budget starts again. (Only bytes beyond the
                # furthest point count: a server that cuts at the same place after restarting must run out.)
                furthest = part.size()
                failures = 0
            if failures >= retry.max_retries:
                raise exc.error from None
            if exc.retry_after is not None and exc.retry_after > retry.max_retry_after:
                raise exc.error from None
            sleep(exc.retry_after if exc.retry_after is not None else retry.backoff(failures, rng))
            failures += 1
            continue
        except _Restart:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise BadResponseError(
                    redact(f"{_host_of(url)} keeps answering ranges it was not asked for; the download was abandoned")
                ) from None
            part.reset()
            continue
        mismatch = _verify(part, expected, redact)
        if mismatch is None:
            break
        inherited = part.inherited
        part.reset()
        if inherited and not refetched_whole:
            # The bytes of an earlier run may be what is wrong (another file under the same name): fetch it whole once.
            refetched_whole = True
            continue
        raise mismatch
    final = folder / part.name
    _fsync(part.path)
    os.replace(part.path, final)
    _fsync_dir(folder)
    size = final.stat().st_size
    return Downloaded(
        final, part.hasher.hexdigest(), size, session.fetched, part.inherited, expected.sha256 is not None
    )


class _Session:
    """The state shared by the attempts of one download."""

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        folder: Path,
        part: _Part,
        expected: Expected,
        hint: str | None,
        headers_for: HeadersFor,
        on_progress: Progress,
        redact: Callable[[str], str],
    ) -> None:
        self.http = http
        self.url = url
        self.folder = folder
        self.part = part
        self.expected = expected
        self.hint = hint
        self.headers_for = headers_for
        self.on_progress = on_progress
        self.redact = redact
        self.fetched = 0
        self.has_key = False

    def attempt(self) -> None:
        """One request: the rest of the file appended to the part, or `_Retry`/`_Restart`/a `HubError`."""
        offset = self.part.size()
        try:
            response = self._open(offset)
            try:
                self._receive(response, offset)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise _Retry(NetworkError(self.redact(f"the download timed out ({type(exc).__name__})"))) from exc
        except httpx.TransportError as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise _Retry(NetworkError(self.redact(f"the download was cut off ({text})"))) from exc

    def _open(self, offset: int) -> httpx.Response:
        url = self.url
        for _hop in range(MAX_REDIRECTS + 1):
            headers = {"Accept-Encoding": "identity", **self.headers_for(url)}
            self.has_key = self.has_key or "authorization" in {k.lower() for k in headers}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            request = self.http.build_request("GET", url, headers=headers)
            response = self.http.send(request, stream=True, follow_redirects=False)
            if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                location = str(response.url.join(response.headers["location"]))
                if is_login_redirect(response):
                    self._fail(response)
                response.close()
                url = location
                continue
            if response.status_code in (200, 206, 416):
                return response
            self._fail(response)
        raise HubError(self.redact(f"the download of {self.url} was redirected more than {MAX_REDIRECTS} times"))

    def _fail(self, response: httpx.Response) -> None:
        """Raise the error (or `_Retry`) that describes a refused answer; the answer is closed."""
        head = _read_head(response)
        failure = describe_failure(head, what="the file", has_key=self.has_key, redact=self.redact)
        if failure.retryable:
            raise _Retry(failure.error, failure.retry_after)
        raise failure.error

    def _receive(self, response: httpx.Response, offset: int) -> None:
        part = self.part
        status = response.status_code
        total = _total_size(response)
        if status == 416:
            if total is not None and offset == total:
                return  # the part was already whole: verify it
            raise _Restart
        self._check_declared_type(response)
        name = self._name(response)
        part.rename(name)
        if status == 206:
            start = _range_start(response)
            if start != offset:
                raise _Restart
        elif offset:
            part.reset()  # a 200 to a Range request: the server sends the whole file again
            offset = 0
        if total is not None and not self.expected.size_matches(total):
            raise BadResponseError(
                self.redact(
                    f"{_host(response)} offers {total:,} bytes but CivitAI lists the file at about "
                    f"{self.expected.size:,}: it is not the file (nothing was saved)"
                )
            )
        size = total if total is not None else self.expected.size
        if size is not None:
            _check_space(self.folder, max(0, size - offset))
        part.catch_up()
        self._stream(response, offset, total)

    def _check_declared_type(self, response: httpx.Response) -> None:
        """Refuse an answer that declares JSON or HTML where a model was expected, before a byte is written."""
        if self._text_expected():
            return
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if "json" in kind or "html" in kind:
            self._refuse(_read_head(response))

    def _text_expected(self) -> bool:
        return self.hint is not None and Path(self.hint).suffix.lower() in TEXT_SUFFIXES

    def _refuse(self, head: httpx.Response) -> None:
        """Raise the error for a JSON or HTML body that stands where the file should be."""
        implied = _status_implied(head)
        if implied is not None:
            head = httpx.Response(implied, headers=head.headers, content=head.content, request=head.request)
        failure = describe_failure(head, what="the file", has_key=self.has_key, redact=self.redact)
        if type(failure.error) not in (HubError, BadResponseError):
            raise failure.error  # a login page, a challenge, an early-access or login refusal...
        said = _snippet(head.content)
        if _is_login_page(head.content):
            raise AuthRequiredError(
                self.redact(
                    f"{_host(head)} sent its login page instead of the file: the download needs login; {KEY_HELP}"
                )
            )
        what = "an HTML page" if said.lstrip().startswith("<") else "JSON"
        raise BadResponseError(
            self.redact(f"{_host(head)} sent {what} instead of the model file (nothing was saved): {said}")
        )

    def _name(self, response: httpx.Response) -> str:
        given = filename_from_disposition(response.headers.get("content-disposition"))
        if given:
            return safe_filename(given, fallback=self.hint or "download")
        return self.part.name

    def _stream(self, response: httpx.Response, offset: int, total: int | None) -> None:
        part = self.part
        written = offset
        # Unsized: with a chunk size httpx holds bytes back until it has a full chunk, and a cut connection loses them.
        chunks = response.iter_raw()
        first = next(chunks, b"")
        if offset == 0 and not self._text_expected() and _looks_like_page(first):
            self._refuse(_with_body(response, first, sniffed=True))
        with open(part.path, "ab") as out:
            if out.tell() != offset:  # someone else wrote to the part meanwhile: start clean
                raise _Restart
            sink = _Sink(out, part)
            try:
                self.on_progress(written, total)
                chunk = first
                while chunk:
                    sink.put(chunk)
                    written += len(chunk)
                    self.fetched += len(chunk)
                    self.on_progress(written, total)
                    chunk = next(chunks, b"")
            finally:
                # Whatever was received is written and hashed before anything else happens (a stop, a retry,
                # the check), so a resume never fetches bytes this attempt already had.
                sink.close()
        if total is not None and written < total:
            raise _Retry(
                NetworkError(self.redact(f"{_host(response)} closed the connection before the end of the file"))
            )
        if total is not None and written > total:
            raise _Restart


class _Sink:
    """Writes and hashes the received chunks, in order, on a thread of its own.

    Receiving (the socket), writing (the page cache) and SHA256 all release the GIL, so the three overlap: the
    verified download keeps up with a plain one that only writes.
    """

    _DEPTH = 64
    """Chunks in flight (httpx hands out up to 64 KiB at a time: a few MiB at most)."""

    def __init__(self, out: Any, part: _Part) -> None:
        self.out = out
        self.part = part
        self.queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.room = threading.Semaphore(self._DEPTH)
        self.error: OSError | None = None
        self.thread = threading.Thread(target=self._run, name="download-sink", daemon=True)
        self.thread.start()

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.room.acquire()
        self.queue.put(chunk)

    def close(self) -> None:
        """Wait until every chunk put is written and hashed; raise the write error if there was one."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        out, part, hasher = self.out, self.part, self.part.hasher
        while (chunk := self.queue.get()) is not None:
            self.room.release()
            if self.error is not None:
                continue  # a write failed: drain without writing, so the hash stays the file's
            try:
                out.write(chunk)
            except OSError as exc:
                self.error = exc
                continue
            hasher.update(chunk)
            part.hashed += len(chunk)


def _existing_part_name(folder: Path, hint: str | None) -> str | None:
    """The name of the `.part` an earlier run left in `folder` (the hint's first, else the largest)."""
    if hint is not None and (folder / (hint + PART_SUFFIX)).is_file():
        return hint
    parts = [p for p in folder.glob("*" + PART_SUFFIX) if p.is_file()]
    if not parts:
        return None
    best = max(parts, key=lambda p: p.stat().st_size)
    return best.name[: -len(PART_SUFFIX)]


def _finished_file(folder: Path, expected: Expected) -> Downloaded | None:
    """A file an earlier run verified and renamed (then was stopped before recording it), if it is still whole."""
    if expected.sha256 is None:
        return None
    for path in sorted(folder.iterdir()):
        if path.name.endswith(PART_SUFFIX) or path.name.startswith(".") or not path.is_file():
            continue
        size = path.stat().st_size
        if not expected.size_matches(size):
            continue
        digest = _sha256_of(path)
        if digest == expected.sha256:
            return Downloaded(path, digest, size, 0, size, True)
    return None


def _sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


def _verify(part: _Part, expected: Expected, redact: Callable[[str], str]) -> HubError | None:
    """The error when the finished part is not the announced file, else None."""
    part.catch_up()
    size = part.size()
    if not expected.size_matches(size):
        assert expected.size is not None
        return BadResponseError(
            redact(
                f"the downloaded file has {size:,} bytes but CivitAI lists it at about {expected.size:,}: "
                "it was deleted; try again"
            )
        )
    digest = part.hasher.hexdigest()
    if expected.sha256 is not None and digest != expected.sha256:
        return BadResponseError(
            redact(
                f"the downloaded file's SHA256 {digest.upper()} differs from CivitAI's {expected.sha256.upper()}: "
                "it was deleted (a corrupt transfer, or the file changed on CivitAI); try again"
            )
        )
    return None


def _read_head(response: httpx.Response) -> httpx.Response:
    """The answer with at most `_HEAD_LIMIT` bytes of its body read, as a plain response the error mapping can read."""
    body = bytearray()
    try:
        for chunk in response.iter_raw(_HEAD_LIMIT):
            body.extend(chunk)
            if len(body) >= _HEAD_LIMIT:
                break
    except httpx.TransportError:
        pass  # an error body cut short still says enough
    return _with_body(response, bytes(body))


def _looks_like_page(head: bytes) -> bool:
    """Whether the first bytes of a body are a JSON document or an HTML page, which no model format starts like.

    A safetensors file starts with an 8-byte little-endian header length whose upper bytes are 0, so `{"` followed
    by printable text cannot be one; pickles start with `PK` or `\\x80`, GGUF with `GGUF`.
    """
    head = head[:256].lstrip()
    lowered = head.lower()
    if lowered.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return True
    return head.startswith((b'{"', b"[{", b"[]", b"{}", b'["')) and all(
        32 <= c < 127 or c in (9, 10, 13) for c in head[:16]
    )


def _with_body(response: httpx.Response, body: bytes, *, sniffed: bool = False) -> httpx.Response:
    """A plain copy of a streamed answer holding `body`, for the error mapping (the stream is closed).

    `sniffed`: the body was recognised by its first bytes, so its declared type is replaced by what it is.
    """
    response.close()
    dropped = (
        ("content-length", "content-encoding", "content-type") if sniffed else ("content-length", "content-encoding")
    )
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
    if sniffed:
        headers.append(("Content-Type", "text/html" if body.lstrip().startswith(b"<") else "application/json"))
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


def _status_implied(response: httpx.Response) -> int | None:
    """The status a JSON error body sent with a 2xx means (some servers answer 200 with `{"error": ...}`)."""
    if not response.is_success:
        return None
    said = server_message(response).lower()
    if not said:
        return None
    if "early access" in said:
        return 403
    if "unauthorized" in said or "log in" in said or "logged in" in said or "login" in said:
        return 401
    if "not found" in said:
        return 404
    return None


_LOGIN_MARKERS = (b"sign in", b"log in", b"login", b"signin")


def _is_login_page(body: bytes) -> bool:
    """An HTML page whose title or form is about logging in (what a download that needs login ends on)."""
    lowered = body[:_HEAD_LIMIT].lower()
    if b"<html" not in lowered and b"<!doctype html" not in lowered:
        return False
    start, end = lowered.find(b"<title"), lowered.find(b"</title>")
    title = lowered[start:end] if 0 <= start < end else b""
    forms = [lowered[i : i + 200] for i in range(len(lowered)) if lowered.startswith(b"<form", i)]
    return any(m in title for m in _LOGIN_MARKERS) or any(m in form for form in forms for m in _LOGIN_MARKERS)


def _snippet(body: bytes, limit: int = 160) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _total_size(response: httpx.Response) -> int | None:
    """The whole file's size: from Content-Range (`bytes a-b/TOTAL`, `bytes */TOTAL`), else Content-Length of a 200."""
    content_range = response.headers.get("content-range")
    if content_range:
        _, _, total = content_range.rpartition("/")
        return int(total) if total.strip().isdigit() else None
    if response.status_code == 200:
        length = response.headers.get("content-length", "")
        return int(length) if length.strip().isdigit() else None
    return None


def _range_start(response: httpx.Response) -> int | None:
    value = response.headers.get("content-range", "")
    unit, _, rest = value.strip().partition(" ")
    first = rest.split("-", 1)[0]
    return int(first) if unit.lower() == "bytes" and first.isdigit() else None


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + FREE_SPACE_MARGIN:
        raise HubError(
            f"not enough disk space in {folder}: the download needs {_size(needed)} and {_size(free)} is free "
            f"(modeldex keeps {_size(FREE_SPACE_MARGIN)} spare)",
            title="disk full",
        )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{value:.1f} TiB"


def _host(response: httpx.Response) -> str:
    return response.url.host or "the server"


def _host_of(url: str) -> str:
    return httpx.URL(url).host or "the server"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open folders; its renames are durable enough
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
