"""CivitaiClient against `modeldex serve` (uvicorn in a thread on 127.0.0.1) over the shipped fixture catalogue.

Every catalogue item must come back through the client, typed, with nothing lost; paging, filters, hash lookups and
errors must agree with what CivitAI does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modeldex.errors import HubError, NotFoundError, UsageError
from modeldex.hub.client import CivitaiClient
from modeldex.hub.serve.app import create_app
from modeldex.hub.serve.catalog import builtin_catalog_path, load_catalog, read_catalog
from modeldex.hub.serve.server import serve_in_thread


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    return read_catalog(builtin_catalog_path())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, catalog: list[dict[str, Any]]) -> Iterator[str]:
    factory = load_catalog(catalog, tmp_path_factory.mktemp("serve") / "catalog.db")
    with serve_in_thread(create_app(factory)) as url:
        yield url


@pytest.fixture
def client(served: str) -> Iterator[CivitaiClient]:
    with CivitaiClient(served, "serve-test-key", requests_per_second=1000, max_retries=0, trust_env=False) as made:
        yield made


def _versions(catalog: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [version for model in catalog for version in model.get("modelVersions") or []]


def test_every_model_comes_back_through_cursor_paging(client: CivitaiClient, catalog: list[dict[str, Any]]) -> None:
    models = list(client.iter_models(limit=3, nsfw=True))
    assert sorted(m.id for m in models) == sorted(item["id"] for item in catalog)
    by_id = {item["id"]: item for item in catalog}
    for model in models:
        source = by_id[model.id]
        assert (model.name, model.type) == (source["name"], source["type"])
        assert [v.id for v in model.model_versions] == [v["id"] for v in source.get("modelVersions") or []]


def test_filters_reach_the_server(client: CivitaiClient, catalog: list[dict[str, Any]]) -> None:
    loras = list(client.iter_models(types=["LORA", "LoCon"], nsfw=True))
    expected = {item["id"] for item in catalog if item["type"] in ("LORA", "LoCon")}
    assert {m.id for m in loras} == expected and expected
    creator = catalog[0]["creator"]["username"]
    mine = list(client.iter_models(username=creator, nsfw=True))
    assert mine and all(m.creator is not None and m.creator.username == creator for m in mine)
    wanted = [catalog[3]["id"], catalog[7]["id"], 999_999_999]
    assert sorted(m.id for m in client.iter_models(ids=wanted, nsfw=True)) == sorted(wanted[:2])


def test_query_with_page_is_refused_like_civitai(client: CivitaiClient) -> None:
    with pytest.raises(HubError, match="HTTP 400"):
        list(client.iter_models(query="demo", page=2))


def test_model_and_version_round_trip(client: CivitaiClient, catalog: list[dict[str, Any]]) -> None:
    source = catalog[0]
    model = client.get_model(source["id"])
    assert model.raw()["modelVersions"][0]["files"][0]["hashes"] == source["modelVersions"][0]["files"][0]["hashes"]
    version = client.get_version(source["modelVersions"][0]["id"])
    assert version.model_id == source["id"] and version.model is not None and version.model.name == source["name"]
    with pytest.raises(NotFoundError) as caught:
        client.get_model(999_999_999)
    assert caught.value.exit_code == 4


def test_hash_lookups_single_and_batch(client: CivitaiClient, catalog: list[dict[str, Any]]) -> None:
    files = [
        (v["id"], f) for v in _versions(catalog) for f in v.get("files") or [] if (f.get("hashes") or {}).get("SHA256")
    ]
    assert len(files) >= 3
    version_id, file = files[0]
    assert client.get_version_by_hash(file["hashes"]["SHA256"].lower()).id == version_id
    if "AutoV2" in file["hashes"]:
        assert client.get_version_by_hash(file["hashes"]["AutoV2"]).id == version_id
    wanted = [f["hashes"]["SHA256"] for _, f in files] + ["0" * 64]
    found = client.versions_by_hashes(wanted)
    assert {v.id for v in found} == {vid for vid, _ in files}
    with pytest.raises(NotFoundError):
        client.get_version_by_hash("0" * 64)
    with pytest.raises(UsageError):
        client.versions_by_hashes(["nothex"])


def test_images_keep_meta_whole_including_null_and_video(client: CivitaiClient, catalog: list[dict[str, Any]]) -> None:
    version = next(v for v in _versions(catalog) if len(v.get("images") or []) >= 2)
    images = list(client.iter_images(model_version_id=version["id"], nsfw="X", limit=1))
    expected = {image["id"]: image for image in version["images"]}
    assert {i.id for i in images} == set(expected)
    for image in images:
        assert image.id is not None and image.meta == expected[image.id].get("meta")
    every = [i for v in _versions(catalog) for i in v.get("images") or []]
    assert any(i.get("meta") is None for i in every) and any(i.get("type") == "video" for i in every)


def test_creators_tags_and_enums(client: CivitaiClient, catalog: list[dict[str, Any]]) -> None:
    creators = {c.username for c in client.iter_creators(limit=2)}
    assert creators >= {item["creator"]["username"] for item in catalog if item.get("creator")}
    tags = {t.name for t in client.iter_tags(limit=5)}
    assert tags >= {tag for item in catalog for tag in item.get("tags") or []}
    enums = client.enums()
    assert "Checkpoint" in enums.model_type and "SD 1.5" in enums.base_model


def test_download_of_a_version_with_no_local_file_is_a_clear_404(
    client: CivitaiClient, catalog: list[dict[str, Any]]
) -> None:
    from modeldex.hub.api_errors import describe_failure

    version_id = catalog[0]["modelVersions"][0]["id"]
    with client.http.stream("GET", client.download_url(version_id, type="Model")) as response:
        response.read()
        failure = describe_failure(response, what=f"version {version_id}", has_key=client.has_key)
    assert isinstance(failure.error, NotFoundError) and not failure.retryable
