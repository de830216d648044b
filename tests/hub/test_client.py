"""CivitaiClient against the fault server: retries, typed errors, paging, batching, pacing, the key's travels, proxies."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from faultserver import LOGIN_HTML, FaultServer, Recorded, Reply, Socks5Proxy, file_handler

from modeldex.errors import (
    AuthRequiredError,
    BadResponseError,
    ChallengeError,
    ConfigError,
    EarlyAccessError,
    HubError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UsageError,
)
from modeldex.hub.api_errors import describe_failure, is_login_redirect, json_body
from modeldex.hub.api_models import Model, ModelVersion
from modeldex.hub.auth import redact
from modeldex.hub.client import CivitaiClient
from modeldex.hub.retry import RateLimiter, RetryPolicy, parse_retry_after

KEY = "k3y-0123456789abcdef"
MODEL = {"id": 1, "name": "Realistic Demo", "type": "Checkpoint", "modelVersions": [{"id": 10, "name": "v1"}]}


class FakeTime:
    """A clock that moves only when the client sleeps, so waits are recorded exactly and cost nothing."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def waits(self) -> list[float]:
        """Sleeps longer than the pacing of back-to-back calls (the client runs at 1e6 requests/s here)."""
        return [s for s in self.sleeps if s > 1e-3]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fault_server: FaultServer, fake_time: FakeTime) -> Iterator[Callable[..., CivitaiClient]]:
    """Builds clients on the fault server with fake time, fast pacing, 3 retries, no proxy from the environment."""
    made: list[CivitaiClient] = []

    def make(api_key: str | None = None, **options: Any) -> CivitaiClient:
        settings: dict[str, Any] = {
            "requests_per_second": 1e6,
            "sleep": fake_time.sleep,
            "clock": fake_time.clock,
            "rng": random.Random(5),
            "max_retries": 3,
            "timeout": 5.0,
            "trust_env": False,
        }
        base_url = options.pop("base_url", fault_server.url)
        settings.update(options)
        client = CivitaiClient(base_url, api_key, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def api(path: str) -> str:
    return f"/api/v1{path}"


# --- success and tolerant parsing ---------------------------------------------------------------------------------


def test_get_model_parses_and_keeps_unknown_fields(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    body = {**MODEL, "brandNewField": {"x": 1}, "tags": [{"name": "anime"}, "photo"]}
    body["modelVersions"] = [
        {
            "id": 10,
            "name": "v1",
            "baseModel": "Pony",
            "trainedWords": None,
            "files": [
                {
                    "id": 5,
                    "name": "a.safetensors",
                    "sizeKB": 12.5,
                    "primary": True,
                    "metadata": {"fp": "fp16", "format": "SafeTensor"},
                    "hashes": {"SHA256": "ab" * 32, "AutoV2": "ABABABABAB"},
                }
            ],
            "publishedAt": "not a date",
        }
    ]
    fault_server.script(api("/models/1"), Reply.json(body))

    model = make_client().get_model(1)

    assert model.name == "Realistic Demo" and model.tags == ["anime", "photo"]
    assert model.model_extra == {"brandNewField": {"x": 1}}
    version = model.model_versions[0]
    assert version.trained_words == [] and version.published_at is None and version.images == []
    file = version.primary_file()
    assert file is not None and file.sha256 == "AB" * 32 and file.size_bytes == 12800
    assert file.hash("autov2") == "ABABABABAB" and file.metadata.fp == "fp16"
    assert model.raw()["brandNewField"] == {"x": 1}
    assert model.raw()["modelVersions"][0]["files"][0]["sizeKB"] == 12.5


def test_wrong_shape_is_a_bad_response(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models/1"), Reply.json({"name": "no id"}))
    with pytest.raises(BadResponseError, match=r"shape .*id"):
        make_client().get_model(1)
    assert len(fault_server.requests) == 1  # a shape problem is not retried: it would come back the same


# --- retries ------------------------------------------------------------------------------------------------------


def test_429_without_retry_after_backs_off_exponentially_with_jitter(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    fault_server.script(
        api("/models/1"), Reply.rate_limited(), Reply.rate_limited(), Reply.rate_limited(), Reply.json(MODEL)
    )

    model = make_client(backoff_base=1.0, backoff_cap=30.0).get_model(1)

    assert model.id == 1
    assert len(fault_server.requests) == 4
    waits = fake_time.waits
    assert len(waits) == 3
    for retry, wait in enumerate(waits):
        ceiling = 2.0**retry
        assert ceiling / 2 <= wait <= ceiling  # equal jitter: half fixed, half random
    assert len(set(waits)) == 3


def test_backoff_is_capped(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    fault_server.script(api("/models/1"), *[Reply(500)] * 6, Reply.json(MODEL))
    make_client(max_retries=6, backoff_base=1.0, backoff_cap=4.0).get_model(1)
    assert max(fake_time.waits) <= 4.0
    assert fake_time.waits[-1] >= 2.0


def test_429_retry_after_seconds_is_honoured(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    fault_server.script(api("/models/1"), Reply.rate_limited(retry_after=7), Reply.json(MODEL))
    assert make_client().get_model(1).id == 1
    assert fake_time.waits == [7.0]


def test_429_retry_after_http_date_is_honoured(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    when = formatdate(time.time() + 20, usegmt=True)
    fault_server.script(api("/models/1"), Reply.rate_limited(retry_after=when), Reply.json(MODEL))
    make_client().get_model(1)
    assert len(fake_time.waits) == 1 and 17 <= fake_time.waits[0] <= 20


def test_a_long_retry_after_fails_at_once_and_says_how_long(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    fault_server.script(api("/models/1"), Reply.rate_limited(retry_after=3600))
    with pytest.raises(RateLimitedError, match="3600 s") as caught:
        make_client(max_retry_after=120).get_model(1)
    assert caught.value.retry_after == 3600
    assert len(fault_server.requests) == 1 and fake_time.waits == []


def test_429_forever_ends_in_rate_limited_error(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.rate_limited())
    with pytest.raises(RateLimitedError, match="429") as caught:
        make_client(max_retries=3).get_model(1)
    assert len(fault_server.requests) == 4
    assert caught.value.exit_code == 1 and "requests_per_second" in caught.value.message


def test_too_many_pages_429_is_not_retried(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(
        api("/tags"), Reply.json({"error": "You've requested too many pages, please use cursors instead"}, 429)
    )
    with pytest.raises(HubError, match="paging") as caught:
        make_client().tags(page=11, limit=100)
    assert not isinstance(caught.value, RateLimitedError)
    assert len(fault_server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_then_succeeds(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], status: int
) -> None:
    fault_server.script(api("/models/1"), Reply.error(status, "Internal error"), Reply.json(MODEL))
    assert make_client().get_model(1).id == 1
    assert len(fault_server.requests) == 2


def test_500_forever_ends_in_server_error(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models/1"), Reply.error(500, "Internal error"))
    with pytest.raises(ServerError, match=r"HTTP 500: Internal error .*model 1"):
        make_client(max_retries=2).get_model(1)
    assert len(fault_server.requests) == 3


def test_524_is_retried_and_named(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models/1"), Reply.timeout_524(), Reply.json(MODEL))
    assert make_client().get_model(1).id == 1
    fault_server.script(api("/models/2"), Reply.timeout_524())
    with pytest.raises(ServerError, match="524"):
        make_client(max_retries=1).get_model(2)


def test_challenge_page_is_retried_then_succeeds(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.challenge(), Reply.challenge(503), Reply.json(MODEL))
    assert make_client().get_model(1).id == 1
    assert len(fault_server.requests) == 3


def test_challenge_page_forever_is_a_typed_error(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.challenge())
    with pytest.raises(ChallengeError, match="Cloudflare challenge"):
        make_client(max_retries=2).get_model(1)
    assert len(fault_server.requests) == 3


def test_challenge_html_with_status_200_and_no_header_is_recognised(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    from faultserver import CHALLENGE_HTML

    fault_server.script(api("/models/1"), Reply.html(CHALLENGE_HTML, 200))
    with pytest.raises(ChallengeError):
        make_client(max_retries=0).get_model(1)


def test_other_html_where_json_was_expected(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.html(b"<html><body>Maintenance</body></html>"), Reply.json(MODEL))
    assert make_client().get_model(1).id == 1
    fault_server.script(api("/models/2"), Reply.html(b"<html><body>Maintenance</body></html>"))
    with pytest.raises(BadResponseError, match="HTML page instead of data"):
        make_client(max_retries=1).get_model(2)


def test_truncated_body_is_retried(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    whole = Reply.json(MODEL)
    cut = Reply.json(MODEL)
    cut.truncate_at = 20
    fault_server.script(api("/models/1"), cut, whole)
    assert make_client().get_model(1).name == "Realistic Demo"
    assert len(fault_server.requests) == 2


def test_truncated_body_forever_is_a_network_error(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    cut = Reply.json(MODEL)
    cut.truncate_at = 20
    fault_server.script(api("/models/1"), cut)
    with pytest.raises(NetworkError, match="RemoteProtocolError"):
        make_client(max_retries=1).get_model(1)


def test_connection_reset_mid_body_is_retried(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    reset = Reply.json(MODEL)
    reset.reset_at = 10
    fault_server.script(api("/models/1"), reset, Reply.json(MODEL))
    assert make_client().get_model(1).id == 1


def test_wrong_content_length_gives_invalid_json_which_is_retried(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    short = Reply.json(MODEL)
    short.content_length = 15
    fault_server.script(api("/models/1"), short, Reply.json(MODEL))
    assert make_client().get_model(1).id == 1
    fault_server.script(api("/models/2"), short)
    with pytest.raises(BadResponseError, match="invalid JSON"):
        make_client(max_retries=1).get_model(2)


def test_slow_response_times_out_and_is_retried(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    slow = Reply.json(MODEL)
    slow.delay = 3.0
    fault_server.script(api("/models/1"), slow, Reply.json(MODEL))
    started = time.monotonic()
    assert make_client(timeout=0.2).get_model(1).id == 1
    assert time.monotonic() - started < 2.5  # it gave up on the slow answer instead of waiting it out
    fault_server.script(api("/models/2"), slow)
    with pytest.raises(NetworkError, match="timed out"):
        make_client(timeout=0.2, max_retries=1).get_model(2)


def test_slow_body_within_the_timeout_succeeds(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    trickle = Reply.json({**MODEL, "description": "x" * 3000})
    trickle.chunk_size, trickle.chunk_delay = 1000, 0.05
    fault_server.script(api("/models/1"), trickle)
    assert make_client(timeout=1.0).get_model(1).description == "x" * 3000
    assert len(fault_server.requests) == 1


def test_connection_refused_is_a_network_error(make_client: Callable[..., CivitaiClient]) -> None:
    with FaultServer() as gone:
        url = gone.url
    with pytest.raises(NetworkError, match="cannot get model 1 from 127.0.0.1"):
        make_client(base_url=url, max_retries=1).get_model(1)


# --- errors that are not retried ----------------------------------------------------------------------------------


def test_404_is_not_found_and_not_retried(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models/9"), Reply.error(404, "No model with id 9"))
    with pytest.raises(NotFoundError, match="model 9 not found on 127.0.0.1: No model with id 9") as caught:
        make_client().get_model(9)
    assert caught.value.exit_code == 4
    assert len(fault_server.requests) == 1


def test_401_json_without_key_tells_how_to_set_one(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(
        api("/models/1"),
        Reply.error(401, "Unauthorized", message="The creator of this asset requires you to be logged in"),
    )
    with pytest.raises(AuthRequiredError, match="requires login") as caught:
        make_client().get_model(1)
    assert caught.value.exit_code == 3
    assert "CIVITAI_API_KEY" in caught.value.message and "logged in" in caught.value.message
    assert len(fault_server.requests) == 1


def test_401_with_key_says_the_key_was_refused_without_showing_it(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.error(401, f"Unauthorized token {KEY}"))
    with pytest.raises(AuthRequiredError, match="refused the API key") as caught:
        make_client(KEY).get_model(1)
    assert KEY not in caught.value.message and KEY not in str(caught.value) and "***" in caught.value.message


@pytest.mark.parametrize(
    "reply",
    [
        Reply.error(403, "Early Access", deadline="2030-01-01T00:00:00.000Z"),
        Reply.error(401, "Unauthorized", message="This model is in early access"),
    ],
)
def test_early_access_has_its_own_error(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], reply: Reply
) -> None:
    fault_server.script(api("/model-versions/10"), reply)
    with pytest.raises(EarlyAccessError, match="version 10 is in early access") as caught:
        make_client().get_version(10)
    assert caught.value.exit_code == 3


def test_redirect_to_login_page_is_login_required(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.redirect("/login?returnUrl=%2Fmodels%2F1&reason=download-auth"))
    fault_server.script("/login", Reply.html(LOGIN_HTML))
    with pytest.raises(AuthRequiredError, match="login page"):
        make_client().get_model(1)


def test_400_is_not_retried(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models"), Reply.error(400, "Cannot use page param with query search"))
    with pytest.raises(HubError, match=r"rejected .*HTTP 400: Cannot use page") as caught:
        list(make_client().iter_models(query="x", page=2))
    assert type(caught.value) is HubError and len(fault_server.requests) == 1


def test_the_key_is_redacted_from_every_error(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.error(500, f"db said: Bearer {KEY} ?token={KEY}"))
    with pytest.raises(ServerError) as caught:
        make_client(KEY, max_retries=0).get_model(1)
    assert KEY not in caught.value.message and KEY not in repr(caught.value.args)


# --- pacing -------------------------------------------------------------------------------------------------------


def test_requests_are_paced_by_the_configured_rate(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    client = make_client(requests_per_second=2.0)
    for _ in range(5):
        client.get_model(1)
    assert fake_time.sleeps == [0.5] * 4


def test_pacing_holds_across_threads_in_real_time(fault_server: FaultServer) -> None:
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    stamps: list[float] = []
    with CivitaiClient(fault_server.url, requests_per_second=20.0, trust_env=False) as client:

        def call() -> None:
            client.get_model(1)
            stamps.append(time.monotonic())

        threads = [threading.Thread(target=call) for _ in range(6)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(stamps) == 6
    assert max(stamps) - started >= 5 * 0.05 - 0.01  # six calls at 20/s need five gaps of 50 ms


def test_a_429_slows_the_whole_client(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], fake_time: FakeTime
) -> None:
    fault_server.script(api("/models/1"), Reply.rate_limited(retry_after=4), Reply.json(MODEL))
    fault_server.script(api("/models/2"), Reply.json(MODEL))
    client = make_client(requests_per_second=1.0)
    client.get_model(1)
    client.get_model(2)
    assert fake_time.sleeps == [4.0, 1.0]


# --- paging and batching ------------------------------------------------------------------------------------------


def _page(ids: list[int], **metadata: Any) -> Reply:
    return Reply.json({"items": [{"id": i, "name": f"m{i}"} for i in ids], "metadata": metadata})


def test_iter_models_follows_cursors_with_the_same_filters(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(
        api("/models"),
        _page([1, 2], nextCursor="2|100", nextPage="https://civitai.com/api/v1/models?cursor=2%7C100&limit=2"),
        _page([3, 4], nextCursor=4),
        _page([5]),
    )
    models = list(
        make_client().iter_models(
            query="dragon", types=["LORA", "LoCon"], base_models=["SDXL 1.0"], sort="Newest", nsfw=False, limit=2
        )
    )
    assert [m.id for m in models] == [1, 2, 3, 4, 5] and all(isinstance(m, Model) for m in models)
    sent = fault_server.requests_to(api("/models"))
    assert [r.param("cursor") for r in sent] == [None, "2|100", "4"]
    for request in sent:
        assert request.query["types"] == ["LORA", "LoCon"]
        assert request.query["baseModels"] == ["SDXL 1.0"]
        assert (request.param("query"), request.param("nsfw"), request.param("limit")) == ("dragon", "false", "2")
        assert request.param("page") is None


def test_next_page_on_another_host_is_followed_on_the_configured_one(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(
        api("/tags"),
        Reply.json({"items": [{"name": "a"}], "metadata": {"nextPage": "https://civitai.red/api/v1/tags?page=2"}}),
        Reply.json({"items": [{"name": "b"}], "metadata": {"totalItems": 0}}),
    )
    assert [t.name for t in make_client().iter_tags(query="x", limit=1)] == ["a", "b"]
    assert [r.param("page") for r in fault_server.requests] == [None, "2"]
    assert all(r.param("query") == "x" for r in fault_server.requests)


def test_a_repeated_cursor_stops_paging(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/images"), Reply.json({"items": [{"id": 1, "url": "u"}], "metadata": {"nextCursor": "c"}}))
    images = list(make_client().iter_images(model_version_id=10))
    assert [i.id for i in images] == [1, 1]
    assert len(fault_server.requests) == 2


def test_empty_result_ends_paging(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models"), Reply.json({"items": [], "metadata": {}}))
    assert list(make_client().iter_models(username="nobody")) == []


def test_iter_images_sends_filters_and_keeps_meta_whole(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    meta = {"prompt": "a cat", "Clip skip": "2", "civitaiResources": [{"modelVersionId": 10}], "comfy": {"n": 1}}
    fault_server.script(
        api("/images"),
        Reply.json(
            {
                "items": [
                    {"id": 1, "url": "u1", "nsfwLevel": "None", "meta": meta, "futureKey": True},
                    {"id": 2, "url": "u2.mp4", "type": "video", "meta": None},
                ],
                "metadata": {},
            }
        ),
    )
    first, second = make_client().iter_images(model_version_id=10, nsfw="X")
    assert first.meta == meta and first.nsfw_level == "None" and first.raw()["futureKey"] is True
    assert second.meta is None and second.is_video
    request = fault_server.requests[0]
    assert (request.param("modelVersionId"), request.param("nsfw"), request.param("withMeta")) == ("10", "X", "true")


def test_ids_go_in_batches_of_100(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    def answer(request: Recorded) -> Reply:
        ids = [int(i) for i in (request.param("ids") or "").split(",")]
        return _page(ids)

    fault_server.script(api("/models"), answer)
    wanted = list(range(1, 251))
    found = [m.id for m in make_client().iter_models(ids=[*wanted, 5, 7])]
    assert found == wanted
    batches = [len((r.param("ids") or "").split(",")) for r in fault_server.requests]
    assert batches == [100, 100, 50]


def test_versions_by_hashes_posts_batches_of_100(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    def answer(request: Recorded) -> Reply:
        hashes = request.json()
        # CivitAI omits misses: answer only for hashes ending in 0.
        return Reply.json(
            [{"id": int(h[-6:], 16), "files": [{"hashes": {"SHA256": h}}]} for h in hashes if h.endswith("0")]
        )

    fault_server.script(api("/model-versions/by-hash"), answer, method="POST")
    hashes = [f"{i:064x}" for i in range(230)]
    versions = make_client().versions_by_hashes(hashes)
    posted = [r.json() for r in fault_server.requests]
    assert [len(p) for p in posted] == [100, 100, 30]
    assert all(h == h.upper() for p in posted for h in p)
    assert sorted(v.id for v in versions) == [i for i in range(230) if f"{i:x}".endswith("0")]
    assert all(isinstance(v, ModelVersion) for v in versions)


def test_versions_by_hashes_rejects_non_sha256_before_any_request(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    with pytest.raises(UsageError, match="not a SHA256"):
        make_client().versions_by_hashes(["ab" * 32, "1234567890"])
    assert fault_server.requests == []


def test_get_version_by_hash_upper_cases_and_404s(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/model-versions/by-hash/ABCDEF0123"), Reply.json({"id": 10, "modelId": 1}))
    assert make_client().get_version_by_hash("abcdef0123").model_id == 1
    with pytest.raises(NotFoundError, match="hash 00FF"):
        make_client().get_version_by_hash("00ff")
    with pytest.raises(UsageError):
        make_client().get_version_by_hash("../etc")


def test_creators_tags_and_enums(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(
        api("/creators"),
        Reply.json({"items": [{"username": "u", "modelCount": 3}], "metadata": {"totalItems": 1, "currentPage": 1}}),
    )
    fault_server.script(api("/enums"), Reply.json({"ModelType": ["Checkpoint", "LORA"], "NewEnum": ["x"]}))
    client = make_client()
    page = client.creators("u", limit=5)
    assert page.items[0].model_count == 3 and page.metadata.total_items == 1
    assert (fault_server.requests[0].param("query"), fault_server.requests[0].param("limit")) == ("u", "5")
    enums = client.enums()
    assert enums.model_type == ["Checkpoint", "LORA"] and enums.model_extra == {"NewEnum": ["x"]}


# --- the key, hosts and downloads ---------------------------------------------------------------------------------


def test_download_url_carries_filters_and_no_key(make_client: Callable[..., CivitaiClient]) -> None:
    client = make_client(KEY, base_url="https://civitai.red/")
    assert client.download_url(456) == "https://civitai.red/api/download/models/456"
    url = client.download_url(456, type="Model", format="SafeTensor", fp="fp16", size="pruned")
    assert url == "https://civitai.red/api/download/models/456?type=Model&format=SafeTensor&fp=fp16&size=pruned"
    assert KEY not in url


@pytest.mark.parametrize(
    ("base", "url", "sent"),
    [
        ("https://civitai.com", "https://civitai.com/api/v1/models/1", True),
        ("https://civitai.com", "https://civitai.red/api/download/models/1", True),
        ("https://civitai.com", "https://www.civitai.com/models/1", True),
        ("https://civitai.com", "http://civitai.com/api/v1/models/1", False),  # never in clear text
        ("https://civitai.com", "https://civitai.com.evil.example/x", False),
        ("https://civitai.com", "https://b2.civitai.com/file?sig=1", False),
        ("https://civitai.com", "https://r2.cloudflarestorage.com/model.safetensors", False),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/api/download/models/1", True),
        ("http://127.0.0.1:8765", "http://127.0.0.1:9999/files/a", False),  # same host, other port
        ("http://127.0.0.1:8765", "https://civitai.com/api/v1/models/1", True),
    ],
)
def test_auth_headers_only_for_civitai_hosts(base: str, url: str, sent: bool) -> None:
    with CivitaiClient(base, KEY, trust_env=False) as client:
        headers = client.auth_headers_for(url)
    assert headers == ({"Authorization": f"Bearer {KEY}"} if sent else {})


def test_no_key_no_header(fault_server: FaultServer, make_client: Callable[..., CivitaiClient]) -> None:
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    client = make_client()
    client.get_model(1)
    assert "authorization" not in fault_server.requests[0].headers
    assert client.auth_headers_for(fault_server.url) == {}


def test_key_goes_to_the_api_but_never_to_the_file_host(
    fault_server: FaultServer, file_host: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    data = b"model bytes" * 100
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    fault_server.script("/api/download/models/10", Reply.redirect(f"{file_host.url}/bucket/a.safetensors?X-Sig=1"))
    file_host.script("/bucket/a.safetensors", file_handler(data, filename="a.safetensors"))
    client = make_client(KEY)

    client.get_model(1)
    with client.http.stream("GET", client.download_url(10)) as response:
        body = response.read()

    assert body == data
    assert fault_server.requests_to(api("/models/1"))[0].headers["authorization"] == f"Bearer {KEY}"
    assert fault_server.requests_to("/api/download/models/10")[0].headers["authorization"] == f"Bearer {KEY}"
    file_request = file_host.requests[0]
    assert "authorization" not in file_request.headers
    assert KEY not in json.dumps([file_request.path, file_request.query, file_request.headers])


def test_a_header_set_by_hand_is_stripped_on_foreign_hosts(
    file_host: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    file_host.script("/x", Reply(200, b"ok"))
    client = make_client(KEY)
    client.http.get(f"{file_host.url}/x", headers={"Authorization": f"Bearer {KEY}"})
    assert "authorization" not in file_host.requests[0].headers


def test_redirect_between_civitai_hosts_over_mock_transport() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        if request.url.host == "civitai.com":
            return httpx.Response(307, headers={"Location": "https://civitai.red/api/v1/models/1"})
        if request.url.host == "civitai.red":
            return httpx.Response(307, headers={"Location": "https://storage.example.com/f?sig=abc"})
        return httpx.Response(200, json=MODEL)

    with CivitaiClient("https://civitai.com", KEY, transport=httpx.MockTransport(handler)) as client:
        assert client.get_model(1).id == 1
    assert [auth for _, auth in seen] == [f"Bearer {KEY}", f"Bearer {KEY}", None]


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("https://civitai.com", "https://civitai.com"),
        ("https://civitai.red/", "https://civitai.red"),
        ("https://civitai.com/api/v1", "https://civitai.com"),
        ("http://127.0.0.1:8765/mirror/", "http://127.0.0.1:8765/mirror"),
    ],
)
def test_base_url_is_the_site_root(given: str, root: str) -> None:
    with CivitaiClient(given, trust_env=False) as client:
        assert client.base_url == root and client.api_root == f"{root}/api/v1"


@pytest.mark.parametrize(
    "bad",
    ["civitai.com", "ftp://civitai.com", "", "https://civitai.com/?token=abc", "http://[", "https://civitai.com:x"],
)
def test_bad_base_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CivitaiClient(bad)
    assert "abc" not in caught.value.message


def test_socks5h_proxy_resolves_names_at_the_proxy(fault_server: FaultServer) -> None:
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    with Socks5Proxy({"civitai.test": ("127.0.0.1", fault_server.port)}) as proxy:
        with CivitaiClient("http://civitai.test", KEY, proxy=proxy.url, trust_env=False) as client:
            assert client.get_model(1).id == 1
    assert proxy.connects == [("civitai.test", 80)]  # the name, unresolved: that is socks5h
    assert fault_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_proxy_from_environment(fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    with Socks5Proxy({"civitai.test": ("127.0.0.1", fault_server.port)}) as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        with CivitaiClient("http://civitai.test") as client:
            assert client.get_model(1).id == 1
    assert proxy.connects == [("civitai.test", 80)]


def test_http_proxy_from_environment(fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plain HTTP proxy gets the absolute URL; the fault server stands in for one and answers by path.
    fault_server.script(api("/models/1"), Reply.json(MODEL))
    monkeypatch.setenv("HTTP_PROXY", fault_server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with CivitaiClient("http://civitai.invalid") as client:
        assert client.get_model(1).id == 1
    assert fault_server.requests[0].headers["host"] == "civitai.invalid"


# --- the pieces: backoff, Retry-After, pacing, answers read as errors -----------------------------------------------


def test_backoff_grows_is_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=8.0)
    rng = random.Random(1)
    for retry in range(10):
        ceiling = min(8.0, 0.5 * 2**retry)
        waits = {policy.backoff(retry, rng) for _ in range(20)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits) and len(waits) > 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
        ("Wed, 21 Oct 2037 07:28:10 GMT", 10.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2037, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds


def test_rate_limiter_reserves_slots_in_order() -> None:
    fake = FakeTime()
    limiter = RateLimiter(4.0, clock=fake.clock, sleep=fake.sleep)
    assert [limiter.wait() for _ in range(4)] == [0.0, 0.25, 0.25, 0.25]
    fake.now += 10
    assert limiter.wait() == 0.0
    limiter.push_back(3.0)
    assert limiter.wait() == 3.0
    with pytest.raises(ValueError):
        RateLimiter(0)


def _answer(
    status: int, body: bytes = b"", url: str = "https://civitai.com/api/v1/x", **headers: str
) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers, request=httpx.Request("GET", url))


def test_describe_failure_reads_civitai_answers() -> None:
    def error(response: httpx.Response, has_key: bool = False) -> HubError:
        return describe_failure(response, what="model 1", has_key=has_key).error

    as_json = {"content-type": "application/json"}
    assert isinstance(error(_answer(404, b'{"error":"No model with id 1"}', **as_json)), NotFoundError)
    assert "civitai.red" in error(_answer(404, b"{}", **as_json)).message  # the hint for the green host
    assert "civitai.red" not in error(_answer(404, b"{}", "http://127.0.0.1:8/x", **as_json)).message
    trpc = b'{"code":"UNAUTHORIZED","message":"You must be logged in"}'
    assert "You must be logged in" in error(_answer(401, trpc, **as_json)).message
    assert isinstance(error(_answer(403, b"{}", **as_json), has_key=True), AuthRequiredError)
    zod = b'{"error":[{"path":["ids"],"message":"Too long"}]}'
    assert "Too long" in error(_answer(400, zod, **as_json)).message
    long = error(_answer(500, b'{"error":"' + b"x" * 5000 + b'"}', **as_json)).message
    assert len(long) < 400 and "\n" not in long
    assert isinstance(error(_answer(418, b"teapot")), HubError)


def test_describe_failure_never_reads_an_unread_stream() -> None:
    # A download's streamed answer must not be read just to word an error.
    response = httpx.Response(
        401,
        stream=httpx.ByteStream(b"x" * 100),
        headers={"content-type": "application/json"},
        request=httpx.Request("GET", "https://civitai.com/api/download/models/1"),
    )
    failure = describe_failure(response, what="version 1", has_key=False)
    assert isinstance(failure.error, AuthRequiredError) and not failure.retryable
    assert not response.is_stream_consumed


def test_is_login_redirect_sees_the_login_page_in_the_history() -> None:
    first = _answer(307, url="https://civitai.com/api/download/models/1", location="/login?reason=download-auth")
    final = _answer(200, LOGIN_HTML, "https://civitai.com/login?returnUrl=%2F&reason=download-auth")
    final.history = [first]
    assert is_login_redirect(final) and is_login_redirect(first)
    assert not is_login_redirect(_answer(200, b"{}", "https://civitai.com/api/v1/models/1"))


def test_json_body_accepts_json_and_refuses_the_rest() -> None:
    data, failure = json_body(
        _answer(200, b'{"id": 1}', **{"content-type": "application/json"}), what="x", has_key=False
    )
    assert data == {"id": 1} and failure is None
    _, failure = json_body(_answer(200, b'{"id": '), what="x", has_key=False)
    assert failure is not None and isinstance(failure.error, BadResponseError) and failure.retryable
    _, failure = json_body(_answer(200, b"<!DOCTYPE html><html>hi</html>"), what="x", has_key=False)
    assert failure is not None and failure.retryable


def test_redact() -> None:
    text = f"GET https://civitai.com/api/download/models/1?token={KEY}&x=1 Authorization: Bearer abc.def {KEY}"
    clean = redact(text, [KEY])
    assert KEY not in clean and "abc.def" not in clean and "x=1" in clean
    assert redact("?type=Model&api_key=zzz") == "?type=Model&api_key=***"


def test_unusable_proxy_is_a_config_error_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="proxy URL is not usable") as caught:
        CivitaiClient(proxy="gopher://me:hunter22@proxy:1")
    assert "hunter22" not in caught.value.message
    monkeypatch.setenv("ALL_PROXY", "gopher://me:hunter22@proxy:1")
    with pytest.raises(ConfigError, match="ALL_PROXY") as caught:
        CivitaiClient()
    assert "hunter22" not in caught.value.message


def test_redirect_loop_is_an_error_not_a_traceback(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient]
) -> None:
    fault_server.script(api("/models/1"), Reply.redirect(api("/models/1")))
    with pytest.raises(HubError, match="redirected model 1 in a loop"):
        make_client().get_model(1)


def test_the_key_is_not_logged(
    fault_server: FaultServer, make_client: Callable[..., CivitaiClient], caplog: pytest.LogCaptureFixture
) -> None:
    fault_server.script(api("/models/1"), Reply.rate_limited(), Reply.json(MODEL))
    with caplog.at_level(logging.DEBUG):
        make_client(KEY).get_model(1)
    assert "models/1" in caplog.text  # httpx and httpcore did log the calls
    assert KEY not in caplog.text
