"""download_file against the fault server: every fault ends in a correct file or a clear error, never a bad file."""

from __future__ import annotations

import hashlib
import random
import shutil
from collections import namedtuple
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultserver import LOGIN_HTML, FaultServer, Recorded, Reply, file_handler, with_fault

from modeldex.errors import (
    AuthRequiredError,
    BadResponseError,
    ChallengeError,
    EarlyAccessError,
    HubError,
    NetworkError,
    NotFoundError,
)
from modeldex.hub.client import CivitaiClient
from modeldex.hub.download import PART_SUFFIX, Downloaded, Expected, download_file
from modeldex.hub.retry import RetryPolicy

PATH = "/api/download/models/42"
FILE = "/files/blob"
FAST_RETRY = RetryPolicy(max_retries=3, backoff_base=0.0, backoff_cap=0.0)


def model_bytes(size: int = 300_000, seed: int = 1) -> bytes:
    """Bytes shaped like a safetensors file: a little-endian header length (upper bytes 0), then noise."""
    rng = random.Random(seed)
    return (200).to_bytes(8, "little") + b'{"__metadata__":{}}'.ljust(200) + rng.randbytes(size - 208)


def expected_for(data: bytes) -> Expected:
    return Expected.from_api(len(data) / 1024, hashlib.sha256(data).hexdigest().upper())


def fetch(
    server: FaultServer,
    folder: Path,
    data: bytes,
    *,
    expected: Expected | None = None,
    hint: str | None = "model.safetensors",
    timeout: float = 5.0,
    sleeps: list[float] | None = None,
    **kwargs: Any,
) -> Downloaded:
    with httpx.Client(timeout=timeout) as http:
        return download_file(
            http,
            server.url + PATH,
            folder,
            expected=expected if expected is not None else expected_for(data),
            name_hint=hint,
            retry=FAST_RETRY,
            sleep=(sleeps.append if sleeps is not None else lambda _s: None),
            **kwargs,
        )


def only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_renames_into_place(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    fault_server.script(PATH, file_handler(data, filename="realisticDemo_v51.safetensors"))
    seen: list[tuple[int, int | None]] = []
    got = fetch(fault_server, tmp_path / "dl", data, on_progress=lambda done, total: seen.append((done, total)))
    assert got.path == tmp_path / "dl" / "realisticDemo_v51.safetensors"
    assert got.path.read_bytes() == data
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert (got.size, got.fetched, got.resumed_from, got.verified) == (len(data), len(data), 0, True)
    assert only_files(tmp_path / "dl") == ["realisticDemo_v51.safetensors"]
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    sent = fault_server.requests_to(PATH)[0]
    assert "range" not in sent.headers and sent.headers["accept-encoding"] == "identity"


def test_redirect_to_file_host_keeps_the_key_on_civitai(
    fault_server: FaultServer, file_host: FaultServer, tmp_path: Path
) -> None:
    data = model_bytes()
    fault_server.script(PATH, Reply.redirect(file_host.url + FILE + "?X-Amz-Signature=abc"))
    file_host.script(FILE, file_handler(data, filename="lora.safetensors"))
    with CivitaiClient(fault_server.url, "sk-secret-key-1234") as client:
        got = download_file(
            client.http,
            client.download_url(42),
            tmp_path,
            expected=expected_for(data),
            headers_for=client.auth_headers_for,
            retry=FAST_RETRY,
        )
    assert got.path.name == "lora.safetensors" and got.path.read_bytes() == data
    assert fault_server.requests_to(PATH)[0].headers["authorization"] == "Bearer sk-secret-key-1234"
    to_host = file_host.requests_to(FILE)
    assert len(to_host) == 1 and "authorization" not in to_host[0].headers
    assert to_host[0].query == {"X-Amz-Signature": ["abc"]}


def test_resume_fetches_only_the_missing_bytes(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / ("model.safetensors" + PART_SUFFIX)).write_bytes(data[:123_457])
    fault_server.script(PATH, file_handler(data, filename="model.safetensors"))
    got = fetch(fault_server, folder, data)
    assert got.path.read_bytes() == data
    assert (got.resumed_from, got.fetched) == (123_457, len(data) - 123_457)
    assert fault_server.requests_to(PATH)[0].headers["range"] == "bytes=123457-"


def test_part_under_the_api_name_follows_the_content_disposition_name(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "model.safetensors.part").write_bytes(data[:50_000])
    fault_server.script(PATH, file_handler(data, filename="Real Name.safetensors"))
    got = fetch(fault_server, folder, data)
    assert got.path.name == "Real Name.safetensors" and got.path.read_bytes() == data
    assert got.resumed_from == 50_000
    assert only_files(folder) == ["Real Name.safetensors"]


def test_a_server_ignoring_range_restarts_from_zero(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "model.safetensors.part").write_bytes(b"\x00" * 1000)  # wrong bytes: a 200 must replace them
    fault_server.script(PATH, file_handler(data, filename="model.safetensors", honour_range=False))
    got = fetch(fault_server, folder, data)
    assert got.path.read_bytes() == data
    assert (got.resumed_from, got.fetched) == (0, len(data))


def test_416_with_a_whole_part_verifies_without_fetching(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "model.safetensors.part").write_bytes(data)
    fault_server.script(PATH, file_handler(data, filename="model.safetensors"))
    got = fetch(fault_server, folder, data)
    assert got.path.read_bytes() == data and got.fetched == 0
    assert fault_server.requests_to(PATH)[0].headers["range"] == f"bytes={len(data)}-"


def test_416_with_a_part_longer_than_the_file_starts_over(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "model.safetensors.part").write_bytes(data + b"extra bytes")
    fault_server.script(PATH, file_handler(data, filename="model.safetensors"))
    got = fetch(fault_server, folder, data)
    assert got.path.read_bytes() == data and got.fetched == len(data)
    assert [r.headers.get("range") for r in fault_server.requests_to(PATH)] == [f"bytes={len(data) + 11}-", None]


@pytest.mark.parametrize("fault", ["truncate_at", "reset_at"])
def test_a_body_cut_short_is_resumed_where_it_stopped(fault_server: FaultServer, tmp_path: Path, fault: str) -> None:
    data = model_bytes()
    handler = file_handler(data, filename="model.safetensors")
    fault_server.script(PATH, with_fault(handler, **{fault: 100_000}), handler)
    got = fetch(fault_server, tmp_path / "dl", data)
    assert got.path.read_bytes() == data
    requests = fault_server.requests_to(PATH)
    assert len(requests) == 2
    resumed_at = int(requests[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 100_000  # a reset may lose bytes in flight; never more than were sent
    assert got.fetched == len(data)


def test_repeated_cuts_each_bring_bytes_so_the_budget_refills(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes(600_000)

    def cut_after_50k(request: Recorded) -> Reply:
        reply = file_handler(data, filename="m.safetensors")(request)
        reply.truncate_at = 50_000 if len(reply.body) > 50_000 else None
        return reply

    fault_server.script(PATH, cut_after_50k)
    got = fetch(fault_server, tmp_path / "dl", data)  # 12 cuts, with a budget of 3 retries in a row
    assert got.path.read_bytes() == data
    assert len(fault_server.requests_to(PATH)) == 12


def test_a_wrong_longer_content_length_is_retried_then_fails_keeping_the_part(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    data = model_bytes()
    fault_server.script(PATH, Reply(200, data, {"Content-Disposition": 'attachment; filename="m.safetensors"'},
                                    content_length=len(data) + 10))  # fmt: skip
    with pytest.raises(NetworkError, match="cut off|closed"):
        fetch(fault_server, tmp_path / "dl", data, expected=Expected(sha256=expected_for(data).sha256))
    assert only_files(tmp_path / "dl") == ["m.safetensors.part"]  # kept for a resume, never renamed


def test_a_short_content_length_against_the_api_size_saves_nothing(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    fault_server.script(PATH, Reply(200, data, {}, content_length=len(data) // 2))
    with pytest.raises(BadResponseError, match="not the file"):
        fetch(fault_server, tmp_path / "dl", data)
    assert only_files(tmp_path / "dl") == []


def test_a_slow_answer_times_out_and_is_retried(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    handler = file_handler(data, filename="m.safetensors")
    fault_server.script(PATH, with_fault(handler, delay=1.0), handler)
    got = fetch(fault_server, tmp_path / "dl", data, timeout=0.3)
    assert got.path.read_bytes() == data


@pytest.mark.parametrize(
    ("first", "waited"),
    [
        (Reply.rate_limited(retry_after=2), 2.0),
        (Reply.rate_limited(), 0.0),
        (Reply.error(500, "boom"), 0.0),
        (Reply.timeout_524(), 0.0),
    ],
)
def test_rate_limits_and_server_errors_are_retried(
    fault_server: FaultServer, tmp_path: Path, first: Reply, waited: float
) -> None:
    data = model_bytes()
    sleeps: list[float] = []
    fault_server.script(PATH, first, file_handler(data, filename="m.safetensors"))
    got = fetch(fault_server, tmp_path / "dl", data, sleeps=sleeps)
    assert got.path.read_bytes() == data and sleeps == [waited]


def test_server_errors_that_persist_end_in_a_clear_error(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.script(PATH, Reply.error(503, "down for maintenance"))
    with pytest.raises(HubError, match="503"):
        fetch(fault_server, tmp_path / "dl", model_bytes())
    assert len(fault_server.requests_to(PATH)) == 1 + FAST_RETRY.max_retries
    assert only_files(tmp_path / "dl") == []


LOGIN_BODY = {
    "error": "Unauthorized",
    "message": "The creator of this asset requires you to be logged in to download it",
}


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (Reply.json(LOGIN_BODY, 401), AuthRequiredError, "requires login"),
        (Reply.json({"error": "Early Access", "deadline": "2030-01-01T00:00:00.000Z"}, 403), EarlyAccessError, "2030"),
        (Reply.error(404, "Model file not found"), NotFoundError, "Model file not found"),
        (Reply.redirect("/login?returnUrl=%2Fmodels%2F1&reason=download-auth"), AuthRequiredError, "login page"),
        (Reply.html(LOGIN_HTML), AuthRequiredError, "login"),
        (Reply.json(LOGIN_BODY, 200), AuthRequiredError, "logged in"),
        (
            Reply(200, b'{"error":"Model not found"}', {"Content-Type": "application/octet-stream"}),
            NotFoundError,
            "not found",
        ),
        (Reply(200, b"<!DOCTYPE html><html><body>Oops</body></html>", {}), BadResponseError, "HTML page"),
        (Reply.challenge(), ChallengeError, "Cloudflare"),
    ],
)
def test_json_or_html_instead_of_a_model_is_never_saved(
    fault_server: FaultServer, tmp_path: Path, reply: Reply, error: type[HubError], words: str
) -> None:
    fault_server.script(PATH, reply)
    fault_server.script("/login", Reply.html(LOGIN_HTML))
    with pytest.raises(error, match=words) as caught:
        fetch(fault_server, tmp_path / "dl", model_bytes(), expected=Expected())
    assert "\n" not in caught.value.message
    assert only_files(tmp_path / "dl") == []
    assert fault_server.requests_to("/login") == []  # the login page itself is never fetched


def test_a_sha256_mismatch_deletes_the_file(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    fault_server.script(PATH, file_handler(tampered, filename="m.safetensors"))
    with pytest.raises(BadResponseError, match="SHA256 .* differs from CivitAI's"):
        fetch(fault_server, tmp_path / "dl", data)
    assert only_files(tmp_path / "dl") == []


def test_a_stale_part_with_other_content_is_fetched_whole_again(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "m.safetensors.part").write_bytes(model_bytes(seed=2)[:100_000])  # same name, other file
    fault_server.script(PATH, file_handler(data, filename="m.safetensors"))
    got = fetch(fault_server, folder, data, hint="m.safetensors")
    assert got.path.read_bytes() == data and got.resumed_from == 0
    assert [r.headers.get("range") for r in fault_server.requests_to(PATH)] == ["bytes=100000-", None]


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ('attachment; filename="../../.bashrc"', "bashrc"),
        ('attachment; filename="/etc/passwd"', "passwd"),
        ("attachment; filename*=UTF-8''..%2F..%2Fevil%0A.safetensors", "evil_.safetensors"),
        ('attachment; filename="C:\\\\Windows\\\\system32\\\\x.dll"', "x.dll"),
        ('attachment; filename=".."', "model.safetensors"),
    ],
)
def test_malicious_content_disposition_stays_inside_the_folder(
    fault_server: FaultServer, tmp_path: Path, disposition: str, name: str
) -> None:
    data = model_bytes()
    fault_server.script(PATH, file_handler(data, disposition=disposition))
    folder = tmp_path / "a" / "dl"
    got = fetch(fault_server, folder, data)
    assert got.path == folder / name and got.path.read_bytes() == data
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [f"a/dl/{name}"]


def test_not_enough_disk_space_stops_before_writing(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000))
    data = model_bytes()
    fault_server.script(PATH, file_handler(data, filename="m.safetensors"))
    with pytest.raises(HubError, match="not enough disk space") as caught:
        fetch(fault_server, tmp_path / "dl", data)
    assert caught.value.title == "disk full"
    assert only_files(tmp_path / "dl") == []


def test_a_text_file_that_is_the_download_is_kept(fault_server: FaultServer, tmp_path: Path) -> None:
    workflow = b'{"nodes": [], "links": []}'
    fault_server.script(
        PATH, Reply.json({"nodes": [], "links": []}, headers={"Content-Disposition": 'attachment; filename="wf.json"'})
    )
    got = fetch(fault_server, tmp_path / "dl", workflow, hint="wf.json", expected=Expected(sha256=None))
    assert got.path.name == "wf.json" and got.path.read_bytes() == workflow and not got.verified


def test_stopping_from_progress_keeps_the_part_for_the_next_call(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes(2_000_000)
    fault_server.script(PATH, file_handler(data, filename="m.safetensors"))

    class Stop(Exception):
        pass

    def stop_midway(done: int, _total: int | None) -> None:
        if done > 700_000:
            raise Stop

    with pytest.raises(Stop):
        fetch(fault_server, tmp_path / "dl", data, on_progress=stop_midway)
    kept = (tmp_path / "dl" / "m.safetensors.part").stat().st_size
    assert 700_000 < kept < len(data)
    got = fetch(fault_server, tmp_path / "dl", data)
    assert got.path.read_bytes() == data and got.resumed_from == kept and got.fetched == len(data) - kept


def test_a_file_already_verified_is_not_fetched_again(fault_server: FaultServer, tmp_path: Path) -> None:
    data = model_bytes()
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "m.safetensors").write_bytes(data)
    got = fetch(fault_server, folder, data)
    assert got.path == folder / "m.safetensors" and got.fetched == 0
    assert fault_server.requests_to(PATH) == []


def test_a_write_error_stops_the_download_and_the_part_resumes(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from modeldex.hub import download

    data = model_bytes(1_000_000)
    fault_server.script(PATH, file_handler(data, filename="m.safetensors"))
    real_sink = download._Sink

    class FullDisk:
        def __init__(self, out: Any) -> None:
            self.out, self.room = out, 300_000

        def write(self, chunk: bytes) -> int:
            if len(chunk) > self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(chunk)
            return int(self.out.write(chunk))

    monkeypatch.setattr(download, "_Sink", lambda out, part: real_sink(FullDisk(out), part))
    with pytest.raises(OSError, match="No space left"):
        fetch(fault_server, tmp_path / "dl", data)
    kept = (tmp_path / "dl" / "m.safetensors.part").stat().st_size
    assert 0 < kept <= 300_000 and (tmp_path / "dl" / "m.safetensors.part").read_bytes() == data[:kept]
    monkeypatch.setattr(download, "_Sink", real_sink)
    got = fetch(fault_server, tmp_path / "dl", data)
    assert got.path.read_bytes() == data and got.resumed_from == kept
