"""A fault-injecting HTTP server on 127.0.0.1 for the hub tests: every answer is scripted per test.

A test scripts a path with a queue of steps; each request to that path takes the next step and the last one repeats.
A step is a `Reply` (status, headers, body and the fault to inject while sending it) or a callable that builds one
from the `Recorded` request (`file_handler` serves bytes with Range). Every request is recorded, headers and body
included, so tests can assert what the client sent (and what it did not: the API key to a file host).

    with FaultServer() as server:
        server.script("/api/v1/models/1", Reply.rate_limited(retry_after=2), Reply.json({"id": 1, "name": "m"}))
        server.script("/files/a.bin", with_fault(file_handler(data), reset_at=1000), file_handler(data))
        ...
        assert len(server.requests_to("/api/v1/models/1")) == 2

Faults: `delay` (before the status line: a slow response), `chunk_delay` (between body chunks: a slow body),
`truncate_at` (announce the whole body, send N bytes, close: a truncated body), `reset_at` (send N bytes, then a TCP
reset), `content_length` (announce a wrong length). Unscripted paths answer 404 JSON, as CivitAI does.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

CHALLENGE_HTML = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390"></head><body><div class="main-wrapper" role="main">
<h1>civitai.com</h1><h2>Verifying you are human. This may take a few seconds.</h2>
<noscript>Enable JavaScript and cookies to continue</noscript>
<script>window._cf_chl_opt={cvId: '3', cType: 'managed'};</script></div></body></html>"""
"""A Cloudflare managed-challenge page, shaped like the one CivitAI users get instead of JSON."""

LOGIN_HTML = b"""<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head>
<body><div id="__next"><h1>Sign in to Civitai</h1><form action="/api/auth/signin"></form></div></body></html>"""
"""The login page a download without the required login is redirected to."""


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names lower-cased; a repeated header keeps its last value."""
    body: bytes

    def param(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Reply:
    """One scripted answer and the fault to inject while sending it."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before the status line."""
    chunk_delay: float = 0.0
    """Seconds to wait before each body chunk."""
    chunk_size: int = 64 * 1024
    truncate_at: int | None = None
    """Send this many body bytes, then close the connection cleanly (the announced length stays the full one)."""
    reset_at: int | None = None
    """Send this many body bytes, then reset the connection (RST)."""
    content_length: int | None = None
    """Announce this Content-Length instead of the real one."""

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """A JSON answer."""
        return cls(
            status, json.dumps(obj).encode(), {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        )

    @classmethod
    def error(cls, status: int, error: str, /, **extra: Any) -> Reply:
        """CivitAI's error body: `{"error": error, ...}` (extra keys such as `message=` or `deadline=` added)."""
        return cls.json({"error": error, **extra}, status)

    @classmethod
    def html(cls, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """An HTML page."""
        return cls(status, body, {"Content-Type": "text/html; charset=utf-8", **(headers or {})})

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None) -> Reply:
        """429, with a `Retry-After` (seconds or an HTTP date) when given."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls.json({"error": "Too Many Requests"}, 429, headers)

    @classmethod
    def challenge(cls, status: int = 403) -> Reply:
        """A Cloudflare challenge page where JSON was expected."""
        return cls.html(CHALLENGE_HTML, status, {"cf-mitigated": "challenge", "Server": "cloudflare"})

    @classmethod
    def timeout_524(cls) -> Reply:
        """Cloudflare's "a timeout occurred" (its origin did not answer in time)."""
        return cls.html(b"<html><body><h1>524: A timeout occurred</h1></body></html>", 524, {"Server": "cloudflare"})

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Reply:
        """A redirect to `location` (absolute, or a path on this server)."""
        return cls(status, b"", {"Location": location})


Handler = Callable[[Recorded], Reply]
Step = Reply | Handler


def with_fault(handler: Handler, **overrides: Any) -> Handler:
    """A handler whose replies carry these `Reply` field overrides (`reset_at=1000`, `delay=2`...)."""

    def faulty(request: Recorded) -> Reply:
        return dataclasses.replace(handler(request), **overrides)

    return faulty


def content_disposition(filename: str) -> str:
    """An `attachment` header naming `filename`, with the RFC 5987 form when it is not plain ASCII."""
    try:
        filename.encode("ascii")
    except UnicodeEncodeError:
        return f"attachment; filename*=UTF-8''{quote(filename)}"
    escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
    return f'attachment; filename="{escaped}"'


def file_handler(
    data: bytes,
    *,
    filename: str | None = None,
    disposition: str | None = None,
    content_type: str = "application/octet-stream",
    honour_range: bool = True,
) -> Handler:
    """Serve `data` like S3/R2 does: 200, or 206/416 for a Range request (unless `honour_range` is False: then
    every answer is a 200 with the whole body, as a server that restarts does). `disposition` is sent verbatim;
    `filename` builds a normal one."""
    headers = {"Content-Type": content_type, "Accept-Ranges": "bytes" if honour_range else "none"}
    if disposition is not None:
        headers["Content-Disposition"] = disposition
    elif filename is not None:
        headers["Content-Disposition"] = content_disposition(filename)

    def handle(request: Recorded) -> Reply:
        wanted = request.headers.get("range")
        if not honour_range or not wanted:
            return Reply(200, data, dict(headers))
        span = _parse_range(wanted, len(data))
        if span is None:
            return Reply(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
        start, end = span
        return Reply(206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})

    return handle


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One `bytes=` range as (first, last) inclusive, or None when it cannot be satisfied."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not first:  # a suffix range: the last N bytes
        count = int(last)
        return (max(0, size - count), size - 1) if count > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start < size and start <= end else None


class FaultServer:
    """The server; a context manager that starts it on a free port of 127.0.0.1 and stops it on exit."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._steps: dict[tuple[str, str], list[Step]] = {}
        self.requests: list[Recorded] = []
        self._httpd = _Server((host, 0), _RequestHandler)
        self._httpd.fault_server = self
        self.host = host
        self.port = self._httpd.server_address[1]
        # A short poll interval: shutdown() waits for the loop to notice, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"faultserver:{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The origin, e.g. `http://127.0.0.1:41234` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def script(self, path: str, *steps: Step, method: str = "GET") -> None:
        """Answer requests to `path` (query ignored) with these steps in turn; the last one repeats.

        Scripting a path again replaces its queue. GET scripts also answer HEAD (without the body).
        """
        if not steps:
            raise ValueError("script() needs at least one step")
        with self._lock:
            self._steps[(method.upper(), path)] = list(steps)

    def requests_to(self, path: str, method: str | None = None) -> list[Recorded]:
        """The recorded requests to `path`, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def _next_reply(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            method = "GET" if request.method == "HEAD" else request.method
            queue = self._steps.get((method, request.path))
            step: Step | None = None
            if queue:
                step = queue.pop(0) if len(queue) > 1 else queue[0]
        if step is None:
            return Reply.error(404, f"No route for {request.method} {request.path}")
        return step if isinstance(step, Reply) else step(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    fault_server: FaultServer


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's parameter name
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        reply = self.server.fault_server._next_reply(request)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up first; nothing to tell it

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response_only(reply.status)
        self.send_header("Date", formatdate(usegmt=True))
        names = {name.lower() for name in reply.headers}
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if "content-length" not in names:
            announced = reply.content_length if reply.content_length is not None else len(reply.body)
            self.send_header("Content-Length", str(announced))
        faulty = reply.truncate_at is not None or reply.reset_at is not None or reply.content_length is not None
        if faulty:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            self.wfile.flush()
            return
        limit = next((n for n in (reply.reset_at, reply.truncate_at) if n is not None), len(reply.body))
        for chunk in _chunks(reply.body[:limit], reply.chunk_size):
            if reply.chunk_delay:
                self.wfile.flush()
                time.sleep(reply.chunk_delay)
            self.wfile.write(chunk)
        self.wfile.flush()
        if reply.reset_at is not None:
            # Linger 0 turns close() into an RST: the client sees "connection reset", not a clean end of stream.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        if faulty:
            self.close_connection = True


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Socks5Proxy:
    """A minimal SOCKS5 proxy (no auth, CONNECT only) that records the host names clients ask for.

    `routes` maps a requested host name to the real (host, port) to connect to, so a test can fetch
    `http://civitai.test/...` through it: with `socks5h://` the name reaches the proxy unresolved (`connects` holds
    ("civitai.test", 80)), which is the point of socks5h.
    """

    def __init__(self, routes: dict[str, tuple[str, int]] | None = None) -> None:
        self.routes = dict(routes or {})
        self.connects: list[tuple[str, int]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"socks5:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """`socks5h://127.0.0.1:PORT`."""
        return f"socks5h://127.0.0.1:{self.port}"

    def __enter__(self) -> Socks5Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not on Linux
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            self._handshake_and_pipe(client)
        except OSError:
            pass  # a client that went away mid-handshake: nothing to do
        finally:
            client.close()

    def _handshake_and_pipe(self, client: socket.socket) -> None:
        greeting = _recv_exact(client, 2)
        _recv_exact(client, greeting[1])  # the offered auth methods: we take "none"
        client.sendall(b"\x05\x00")
        _, command, _, kind = _recv_exact(client, 4)
        if kind == 1:
            host = socket.inet_ntoa(_recv_exact(client, 4))
        elif kind == 3:
            host = _recv_exact(client, _recv_exact(client, 1)[0]).decode("idna")
        else:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(client, 16))
        port = struct.unpack("!H", _recv_exact(client, 2))[0]
        self.connects.append((host, port))
        target = self.routes.get(host, (host, port))
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.sendall(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        client.sendall(b"\x05\x00\x00\x01" + bytes(6))
        with upstream:
            upstream.settimeout(None)
            pump = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            pump.start()
            _pipe(client, upstream)
            pump.join(timeout=5)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("socks client went away")
        data += chunk
    return data


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
