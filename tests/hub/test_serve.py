"""`modeldex serve`: the CivitAI-compatible API over the fixture catalogue, run by uvicorn on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import catalog_items, copy_database, find_item, make_template
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import LocalFile
from modeldex.hub import store
from modeldex.hub.serve import create_app
from modeldex.hub.serve.readonly import read_only_session_factory
from modeldex.hub.serve.server import serve_in_thread

NOW = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
UNICODE_NAME = 'Café ünïcode "quoted".safetensors'

# Models added to the catalogue for cases it does not hold.
EXTRA_MODELS: list[dict[str, Any]] = [
    {  # published today (period filters), no file at all (404 Missing model file), non-ASCII file elsewhere
        "id": 70,
        "name": "Fresh Empty",
        "type": "LORA",
        "nsfw": False,
        "nsfwLevel": 1,
        "tags": ["fresh"],
        "creator": {"username": "pixelsmith"},
        "stats": {"thumbsUpCount": 1, "downloadCount": 1},
        "modelVersions": [
            {"id": 71, "name": "v1", "baseModel": "SD 1.5", "publishedAt": NOW, "files": [], "images": []},
        ],
    },
    {  # only a draft: invisible everywhere
        "id": 80,
        "name": "Draft Only",
        "type": "LORA",
        "nsfw": False,
        "nsfwLevel": 1,
        "tags": [],
        "modelVersions": [
            {
                "id": 81,
                "name": "draft",
                "status": "Draft",
                "baseModel": "SD 1.5",
                "files": [
                    {
                        "id": 82,
                        "name": "draft.safetensors",
                        "type": "Model",
                        "primary": True,
                        "hashes": {"SHA256": "DD" * 32},
                    }
                ],
            }
        ],
    },
    {
        "id": 90,
        "name": "Unicode Names",
        "type": "VAE",
        "nsfw": False,
        "nsfwLevel": 1,
        "tags": ["Ünïcode Tag"],
        "modelVersions": [
            {
                "id": 91,
                "name": "v1",
                "baseModel": "Brand New Base",
                "publishedAt": "2024-01-01T00:00:00.000Z",
                "files": [
                    {
                        "id": 92,
                        "name": UNICODE_NAME,
                        "type": "Model",
                        "primary": True,
                        "metadata": {"format": "SafeTensor"},
                        "hashes": {"SHA256": "EE" * 32},
                    }
                ],
            }
        ],
    },
]


class Served:
    """The running server, its HTTP client, the read-only sessions it uses and the local files it serves."""

    def __init__(self, client: httpx.Client, base: str, factory: sessionmaker[Session], files: dict[int, bytes]):
        self.client = client
        self.base = base
        self.factory = factory
        self.files = files

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def ok(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        return response.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    factory = copy_database(make_template(root / "template", with_catalog=True), root / "db")
    payloads = {96417: os.urandom(300_001), 96418: os.urandom(4096), 92: b"unicode-named file body"}
    with factory() as session:
        store.upsert_models(session, EXTRA_MODELS)
        for file_id, body in payloads.items():
            path = root / "library" / f"file-{file_id}.bin"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(body)
            session.add(LocalFile(path=str(path), size=len(body), mtime_ns=1, inode=file_id, version_file_id=file_id))
        # A stale link first: its file is gone, the server must fall through to the one on disk.
        session.add(LocalFile(path=str(root / "gone.bin"), size=1, mtime_ns=1, inode=1, version_file_id=96418))
        session.commit()
    read_only = read_only_session_factory(factory.kw["bind"])
    with serve_in_thread(create_app(read_only)) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Served(client, base, read_only, payloads)


def all_pages(served: Served, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item, following `metadata.nextPage` the way clients are told to."""
    body = served.ok(path, **params)
    items = list(body["items"])
    seen_pages = 1
    while "nextPage" in body["metadata"]:
        assert "nextCursor" in body["metadata"] or "currentPage" in body["metadata"]
        response = served.client.get(body["metadata"]["nextPage"])
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        seen_pages += 1
        assert seen_pages < 100
    return items


def public_catalogue() -> list[dict[str, Any]]:
    """Models a default (nsfw=false) listing shows: a public level bit, at least one published version."""
    models = catalog_items() + EXTRA_MODELS
    return [
        m
        for m in models
        if m["nsfwLevel"] & 1 and any(v.get("status", "Published") == "Published" for v in m["modelVersions"])
    ]


# --- /models ------------------------------------------------------------------------------------------------------


def test_cursor_paging_visits_every_model_once_in_rating_order(served: Served) -> None:
    items = all_pages(served, "/api/v1/models", limit=4)
    ids = [m["id"] for m in items]
    assert sorted(ids) == sorted(m["id"] for m in public_catalogue())
    ratings = [m.get("stats", {}).get("thumbsUpCount", 0) for m in items]
    assert ratings == sorted(ratings, reverse=True)


def test_first_page_metadata_and_last_page(served: Served) -> None:
    first = served.ok("/api/v1/models", limit=3)
    meta = first["metadata"]
    assert set(meta) == {"nextCursor", "nextPage"}
    assert meta["nextPage"].startswith(served.base + "/api/v1/models?")
    assert "limit=3" in meta["nextPage"] and "cursor=" in meta["nextPage"]
    last = served.ok("/api/v1/models", limit=100)
    assert last["metadata"] == {}
    assert served.ok("/api/v1/models", ids="123456") == {"items": [], "metadata": {}}


@pytest.mark.parametrize(
    ("sort", "key"),
    [("Most Downloaded", "downloadCount"), ("Most Discussed", "commentCount"), ("Highest Rated", "thumbsUpCount")],
)
def test_metric_sorts_page_without_gaps(served: Served, sort: str, key: str) -> None:
    items = all_pages(served, "/api/v1/models", limit=5, sort=sort)
    values = [m.get("stats", {}).get(key, 0) for m in items]
    assert values == sorted(values, reverse=True)
    assert len({m["id"] for m in items}) == len(items) == len(public_catalogue())


def test_newest_and_oldest(served: Served) -> None:
    newest = [m["id"] for m in all_pages(served, "/api/v1/models", limit=6, sort="Newest")]
    oldest = [m["id"] for m in all_pages(served, "/api/v1/models", limit=6, sort="Oldest")]
    assert newest == sorted(newest, reverse=True)
    assert oldest == list(reversed(newest))


def test_page_mode(served: Served) -> None:
    body = served.ok("/api/v1/models", limit=5, page=2)
    meta = body["metadata"]
    total = len(public_catalogue())
    assert (meta["currentPage"], meta["pageSize"], meta["totalItems"]) == (2, 5, total)
    assert meta["totalPages"] == -(-total // 5)
    assert "page=3" in meta["nextPage"] and "page=1" in meta["prevPage"]
    first_two = served.ok("/api/v1/models", limit=10, page=1)["items"]
    assert [m["id"] for m in body["items"]] == [m["id"] for m in first_two[5:10]]
    assert "nextPage" not in served.ok("/api/v1/models", limit=100, page=1)["metadata"]


def test_civitai_paging_errors(served: Served) -> None:
    deep = served.get("/api/v1/models", limit=100, page=11)
    assert deep.status_code == 429
    assert deep.json() == {"error": "You've requested too many pages, please use cursors instead"}
    both = served.get("/api/v1/models", query="flux", page=1)
    assert both.status_code == 400
    assert both.json() == {"error": "Cannot use page param with query search. Use cursor-based pagination."}
    assert served.get("/api/v1/models", cursor="garbage").status_code == 400


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"page": 0}, "page"),
        ({"types": "Lora"}, "types"),
        ({"sort": "Best"}, "sort"),
        ({"period": "Decade"}, "period"),
        ({"nsfw": "maybe"}, "nsfw"),
        ({"ids": "1,x"}, "ids"),
    ],
)
def test_invalid_parameters_are_zod_400s(served: Served, params: dict[str, Any], path: str) -> None:
    response = served.get("/api/v1/models", **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["name"] == "ZodError"
    assert [issue["path"] for issue in error["issues"]] == [[path]]


def test_unknown_parameters_are_ignored_and_auth_only_ones_refused(served: Served) -> None:
    assert len(served.ok("/api/v1/models", limit=2, somethingNew="1")["items"]) == 2
    refused = served.get("/api/v1/models", favorites="true")
    assert refused.status_code == 401 and refused.json() == {"error": "Unauthorized"}


def ids_of(served: Served, **params: Any) -> set[int]:
    return {m["id"] for m in all_pages(served, "/api/v1/models", limit=100, **params)}


def test_filters(served: Served) -> None:
    catalogue = public_catalogue()
    assert ids_of(served, types="LORA") == {m["id"] for m in catalogue if m["type"] == "LORA"}
    assert ids_of(served, types="VAE,Upscaler") == ids_of(served, types=["VAE", "Upscaler"]) == {9404, 9202, 90}
    assert ids_of(served, baseModels="Illustrious") == {6402, 8509}
    assert ids_of(served, baseModels=["Flux.1 D", "Pony"], nsfw="true") == {7001, 8307, 9707, 6101}
    assert ids_of(served, tag="FLUX") == {7001, 8307, 9707}
    assert ids_of(served, tag="flu") == set()  # whole tags only
    assert ids_of(served, tag="ünïcode tag") == {90}
    assert ids_of(served, username="PixelSmith") == {
        m["id"] for m in catalogue if m.get("creator", {}).get("username") == "pixelsmith"
    }
    assert ids_of(served, ids="4201,5301,80,6101") == {4201, 5301}
    assert ids_of(served, earlyAccess="true") == {8307}
    assert ids_of(served, supportsGeneration="true") >= {4201, 7001}
    assert ids_of(served, period="Day") == {70}


def test_nsfw_models_and_images(served: Served) -> None:
    assert 6101 not in ids_of(served)
    assert 6101 in ids_of(served, nsfw="true")
    public = served.ok("/api/v1/models", ids="4201")["items"][0]
    everything = served.ok("/api/v1/models", ids="4201", nsfw="true")["items"][0]
    assert [i["id"] for i in public["modelVersions"][0]["images"]] == [1716342, 1716343]
    assert [i["id"] for i in everything["modelVersions"][0]["images"]] == [1716342, 1716343, 1716344]


def test_query_search_pages_by_cursor(served: Served) -> None:
    items = all_pages(served, "/api/v1/models", query="style", limit=1)
    ids = [m["id"] for m in items]
    assert ids == sorted(ids, reverse=True)
    assert set(ids) >= {4201, 8105}  # the trained word "rdemo style", the tag "style"
    assert served.ok("/api/v1/models", query="zzzzqqq") == {"items": [], "metadata": {}}


def test_primary_file_only(served: Served) -> None:
    item = served.ok("/api/v1/models", ids="4201", primaryFileOnly="true")["items"][0]
    assert [f["id"] for f in item["modelVersions"][0]["files"]] == [96417]


def test_list_items_have_civitai_shape(served: Served) -> None:
    item = served.ok("/api/v1/models", ids="4201")["items"][0]
    assert {"id", "name", "description", "type", "nsfw", "creator", "tags", "stats", "modelVersions"} <= set(item)
    version = item["modelVersions"][0]
    assert "status" not in version and "modelId" not in version
    assert version["downloadUrl"] == f"{served.base}/api/download/models/130072"
    file = version["files"][0]
    assert file["hashes"]["SHA256"] == file["hashes"]["SHA256"].upper()
    assert file["downloadUrl"] == f"{served.base}/api/download/models/130072"


# --- one model, one version, by hash --------------------------------------------------------------------------------


def test_get_model(served: Served) -> None:
    body = served.ok("/api/v1/models/4201")
    assert body["name"] == "Realistic Demo" and [v["id"] for v in body["modelVersions"]] == [130072, 110001]
    # Single-model answers are not NSFW-filtered (the caller asked for this model).
    assert len(body["modelVersions"][0]["images"]) == 3
    missing = served.get("/api/v1/models/12345")
    assert missing.status_code == 404 and missing.json() == {"error": "No model with id 12345"}
    assert served.get("/api/v1/models/80").status_code == 404  # drafts only
    bad = served.get("/api/v1/models/abc")
    assert bad.status_code == 400 and "error" in bad.json()


def test_get_version(served: Served) -> None:
    body = served.ok("/api/v1/model-versions/130072")
    assert body["modelId"] == 4201
    assert body["model"]["name"] == "Realistic Demo" and body["model"]["type"] == "Checkpoint"
    assert body["air"] == "urn:air:sd1:checkpoint:civitai:4201@130072"
    assert body["files"][1]["downloadUrl"] == f"{served.base}/api/download/models/130072?type=Model&format=PickleTensor"
    archived = served.ok("/api/v1/model-versions/511006")
    assert archived["files"] == [] and "downloadUrl" not in archived and archived["model"]["mode"] == "Archived"
    early = served.ok("/api/v1/model-versions/521007")
    assert early["earlyAccessEndsAt"] == "2099-01-01T00:00:00.000Z" and early["availability"] == "EarlyAccess"
    for missing, message in ((999, "Model not found"), (81, "Model not found"), (71, "Missing model file")):
        response = served.get(f"/api/v1/model-versions/{missing}")
        assert response.status_code == 404 and response.json() == {"error": message}


@pytest.mark.parametrize("algo", ["SHA256", "AutoV1", "AutoV2", "AutoV3", "CRC32", "BLAKE3"])
def test_by_hash_any_type_any_case(served: Served, algo: str) -> None:
    value = find_item(catalog_items(), 5301)["modelVersions"][0]["files"][1]["hashes"][algo]
    for spelled in (value, value.lower()):
        body = served.ok(f"/api/v1/model-versions/by-hash/{spelled}")
        assert body["id"] == 240001 and body["modelId"] == 5301


def test_by_hash_misses(served: Served) -> None:
    for value in ("0" * 64, "DD" * 32):  # unknown; a draft's file
        response = served.get(f"/api/v1/model-versions/by-hash/{value}")
        assert response.status_code == 404 and response.json() == {"error": "Model not found"}


def test_post_by_hash(served: Served) -> None:
    sha = {m["id"]: m["modelVersions"][0]["files"][0]["hashes"]["SHA256"] for m in catalog_items() if m["id"] != 8206}
    second_file = find_item(catalog_items(), 4201)["modelVersions"][0]["files"][1]["hashes"]["SHA256"]
    wanted = [sha[4201].lower(), second_file, "0" * 64, sha[7001], "DD" * 32]
    response = served.client.post("/api/v1/model-versions/by-hash", json=wanted)
    assert response.status_code == 200
    body = response.json()
    assert sorted(v["id"] for v in body) == [130072, 401001]  # one entry per version, misses omitted
    assert all("modelId" in v and "model" in v and "files" in v for v in body)
    assert served.client.post("/api/v1/model-versions/by-hash", json=[]).json() == []
    autov2 = find_item(catalog_items(), 4201)["modelVersions"][0]["files"][0]["hashes"]["AutoV2"]
    assert served.client.post("/api/v1/model-versions/by-hash", json=[autov2.ljust(64, "0")]).json() == []


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"hashes": []}', b'["abc"]', b"[1]", ("[" + ",".join(['"' + "A" * 64 + '"'] * 101) + "]").encode()],
)
def test_post_by_hash_bad_bodies(served: Served, body: bytes) -> None:
    response = served.client.post("/api/v1/model-versions/by-hash", content=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Request must include an array of SHA256 Hashes.")


# --- images -------------------------------------------------------------------------------------------------------


def test_images_of_a_version_with_and_without_meta(served: Served) -> None:
    bare = served.ok("/api/v1/images", modelVersionId=130072, nsfw="X")
    assert [i["id"] for i in bare["items"]] == [1716344, 1716343, 1716342]
    assert all("meta" not in i for i in bare["items"])
    rich = served.ok("/api/v1/images", modelVersionId=130072, nsfw="X", withMeta="true")["items"]
    by_id = {i["id"]: i for i in rich}
    assert by_id[1716344]["meta"] is None
    assert by_id[1716342]["meta"]["Model hash"] == by_id[1716342]["meta"]["hashes"]["model"]
    assert by_id[1716342]["modelVersionIds"] == [130072, 62833]
    assert (by_id[1716344]["nsfwLevel"], by_id[1716344]["browsingLevel"], by_id[1716344]["nsfw"]) == ("Soft", 2, False)
    assert by_id[1716342]["baseModel"] == "SD 1.5"


@pytest.mark.parametrize(
    ("params", "levels"),
    [
        ({}, {1}),
        ({"nsfw": "None"}, {1}),
        ({"nsfw": "Soft"}, {1, 2}),
        ({"nsfw": "Mature"}, {1, 2, 4}),
        ({"nsfw": "X"}, {1, 2, 4, 8, 16}),
        ({"nsfw": "true"}, {4, 8, 16}),
        ({"nsfw": "false"}, {1}),
        ({"browsingLevel": 8, "nsfw": "None"}, {8}),
    ],
)
def test_image_nsfw_filters(served: Served, params: dict[str, Any], levels: set[int]) -> None:
    items = all_pages(served, "/api/v1/images", limit=200, **params)
    assert {i["browsingLevel"] for i in items} == levels


def test_image_cursor_paging_and_filters(served: Served) -> None:
    everything = all_pages(served, "/api/v1/images", limit=200, nsfw="X")
    paged = all_pages(served, "/api/v1/images", limit=7, nsfw="X")
    assert [i["id"] for i in paged] == [i["id"] for i in everything]
    assert [i["id"] for i in paged] == sorted((i["id"] for i in paged), reverse=True)
    oldest = all_pages(served, "/api/v1/images", limit=7, nsfw="X", sort="Oldest")
    assert [i["id"] for i in oldest] == sorted(i["id"] for i in paged)
    videos = all_pages(served, "/api/v1/images", type="video", nsfw="X")
    assert videos and all(i["type"] == "video" and i["url"].endswith(".mp4") for i in videos)
    of_model = {i["id"] for i in all_pages(served, "/api/v1/images", modelId=4201, nsfw="X")}
    assert of_model == {1716342, 1716343, 1716344, 1400001}
    assert [i["id"] for i in served.ok("/api/v1/images", imageId=1716343)["items"]] == [1716343]
    flux = {i["baseModel"] for i in all_pages(served, "/api/v1/images", baseModels="Flux.1 D", nsfw="X")}
    assert flux == {"Flux.1 D"}
    # The index keeps no posts or uploaders: filtering on them finds nothing rather than everything.
    assert served.ok("/api/v1/images", postId=1981754) == {"items": [], "metadata": {}}


def test_image_parameter_errors(served: Served) -> None:
    assert served.get("/api/v1/images", limit=201).status_code == 400
    assert served.get("/api/v1/images", type="gif").status_code == 400
    assert served.get("/api/v1/images", cursor="1|2").status_code == 400
    assert served.get("/api/v1/images", page=6, limit=200).status_code == 429


# --- creators, tags, enums ------------------------------------------------------------------------------------------


def test_creators(served: Served) -> None:
    body = served.ok("/api/v1/creators", limit=2)
    first, second = body["items"]
    assert first["modelCount"] >= second["modelCount"]
    assert set(first) == {"username", "modelCount", "link", "image"}
    assert first["link"] == f"{served.base}/api/v1/models?username={first['username']}"
    assert body["metadata"]["totalItems"] == 6 and body["metadata"]["currentPage"] == 1
    every = all_pages(served, "/api/v1/creators", limit=2)
    assert len(every) == 6 and len({c["username"] for c in every}) == 6
    counts = {c["username"]: c["modelCount"] for c in every}
    assert counts["pixelsmith"] == 5  # four in the catalogue, one extra
    assert [c["username"] for c in served.ok("/api/v1/creators", query="TENS")["items"]] == ["tiny_tensor"]
    assert served.ok("/api/v1/creators", query="100%")["items"] == []


def test_tags(served: Served) -> None:
    body = served.ok("/api/v1/tags", limit=1)
    assert body["items"] == [{"name": "style", "link": f"{served.base}/api/v1/models?tag=style"}]
    names = [t["name"] for t in all_pages(served, "/api/v1/tags", limit=10)]
    assert len(names) == len(set(names)) == body["metadata"]["totalItems"]
    assert [t["name"] for t in served.ok("/api/v1/tags", query="FLU")["items"]] == ["flux"]


def test_enums(served: Served) -> None:
    body = served.ok("/api/v1/enums")
    assert set(body) == {"ModelType", "ModelFileType", "ActiveBaseModel", "BaseModel", "BaseModelType"}
    assert "LoCon" in body["ModelType"] and "Training Data" in body["ModelFileType"]
    assert {"SD 1.5", "Pony", "Illustrious", "Brand New Base"} <= set(body["BaseModel"])


# --- downloads ----------------------------------------------------------------------------------------------------


def test_download_whole_file(served: Served) -> None:
    response = served.get("/api/download/models/130072")
    assert response.status_code == 200
    assert response.content == served.files[96417]
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="realisticDemo_v51.safetensors"'
    assert response.headers["accept-ranges"] == "bytes"


def test_download_picks_the_file_by_type_and_format(served: Served) -> None:
    response = served.get("/api/download/models/130072", type="Model", format="PickleTensor")
    assert response.content == served.files[96418]
    assert "realisticDemo_v51.ckpt" in response.headers["content-disposition"]
    assert served.get("/api/download/models/130072", fp="FP32").content == served.files[96418]
    assert served.get("/api/download/models/130072", format="SafeTensor").content == served.files[96417]


def test_download_ranges(served: Served) -> None:
    body = served.files[96417]
    size = len(body)
    part = served.client.get("/api/download/models/130072", headers={"Range": "bytes=1000-"})
    assert part.status_code == 206
    assert part.content == body[1000:]
    assert part.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    middle = served.client.get("/api/download/models/130072", headers={"Range": "bytes=10-19"})
    assert (middle.status_code, middle.content) == (206, body[10:20])
    beyond = served.client.get("/api/download/models/130072", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    head = served.client.head("/api/download/models/130072")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == size
    assert hashlib.sha256(served.get("/api/download/models/130072").content).digest() == hashlib.sha256(body).digest()


def test_download_non_ascii_name(served: Served) -> None:
    response = served.get("/api/download/models/91")
    assert response.content == served.files[92]
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename*=utf-8''")
    assert "Caf%C3%A9" in disposition and '"' not in disposition


def test_download_failures_are_json(served: Served) -> None:
    cases = [
        ("/api/download/models/999999", {}, 404, "Model not found"),
        ("/api/download/models/81", {}, 404, "Model not found"),  # a draft
        ("/api/download/models/71", {}, 404, "Model file not found"),  # no file at all
        ("/api/download/models/130072", {"type": "VAE"}, 404, "Model file not found"),
        ("/api/download/models/240001", {}, 404, "Model file not found"),  # no local copy
        ("/api/download/models/130072", {"type": "Weights"}, 400, None),
        ("/api/download/models/x", {}, 400, None),
    ]
    for path, params, status, error in cases:
        response = served.get(path, **params)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("application/json")
        if error is not None:
            assert response.json()["error"] == error


# --- the server as a whole ----------------------------------------------------------------------------------------


def test_unknown_paths_and_methods_answer_civitai_errors(served: Served) -> None:
    missing = served.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = served.client.delete("/api/v1/models")
    assert wrong.status_code == 405 and "error" in wrong.json()
    root = served.ok("/")
    assert root["api"] == f"{served.base}/api/v1"


def test_sessions_cannot_write(served: Served) -> None:
    with served.factory() as session, pytest.raises(OperationalError, match="readonly|read-only|query_only"):
        session.execute(text("DELETE FROM model"))
    assert served.ok("/api/v1/models/4201")["id"] == 4201


def test_public_url_rewrites_links(tmp_path: Path) -> None:
    factory = copy_database(make_template(tmp_path / "t", with_catalog=True), tmp_path / "db")
    app = create_app(factory, public_url="http://mirror.lan:9000/")
    with serve_in_thread(app) as base, httpx.Client(base_url=base) as client:
        body = client.get("/api/v1/models", params={"limit": 1}).json()
    assert body["metadata"]["nextPage"].startswith("http://mirror.lan:9000/api/v1/models?")
    assert body["items"][0]["modelVersions"][0]["downloadUrl"].startswith("http://mirror.lan:9000/api/download/")
