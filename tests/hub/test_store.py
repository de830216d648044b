"""modeldex.hub.store: CivitAI objects into index rows and back, and the shipped fixture catalogue."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import catalog_source
import pytest
from serve_helpers import catalog_items, copy_database, find_item, make_template
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import Creator, FileHash, Image, LocalFile, Model, ModelVersion, VersionFile
from modeldex.errors import HubError
from modeldex.hub import api_models, store
from modeldex.hub.serve.catalog import builtin_catalog_path


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("store-templates")
    return make_template(root / "empty", with_catalog=False), make_template(root / "loaded", with_catalog=True)


@pytest.fixture
def db(tmp_path: Path, templates: tuple[Path, Path]) -> sessionmaker[Session]:
    return copy_database(templates[0], tmp_path / "data")


@pytest.fixture
def loaded(tmp_path: Path, templates: tuple[Path, Path]) -> sessionmaker[Session]:
    return copy_database(templates[1], tmp_path / "data")


# --- the catalogue ------------------------------------------------------------------------------------------------


def test_shipped_catalogue_is_its_generator_output() -> None:
    assert builtin_catalog_path().read_text(encoding="utf-8") == catalog_source.render()


def test_catalogue_covers_what_the_issue_asks_for() -> None:
    items = catalog_items()
    versions = [v for m in items for v in m["modelVersions"]]
    images = [i for v in versions for i in v.get("images") or []]
    files = [f for v in versions for f in v["files"]]
    assert len(items) >= 20
    assert {m["type"] for m in items} == set(catalog_source_types())
    assert len({v["baseModel"] for v in versions}) >= 6
    assert len({m["id"] for m in items}) == len(items)
    assert all(set(f["hashes"]) == set(store.HASH_ALGOS) for f in files)
    assert all(f["hashes"]["AutoV2"] == f["hashes"]["SHA256"][:10] for f in files)
    assert {f["type"] for f in files} >= {"Model", "VAE", "Negative", "Archive"}
    assert {f["metadata"]["format"] for f in files} >= {"SafeTensor", "PickleTensor", "GGUF", "Other"}
    assert any(i["type"] == "video" for i in images)
    assert any(i["meta"] is None for i in images)
    assert any(i["meta"] and "Model hash" in i["meta"] and "negativePrompt" in i["meta"] for i in images)
    assert any(i["meta"] and "comfy" in i["meta"] for i in images)
    assert any(i["meta"] and "civitaiResources" in i["meta"] and "hashes" not in i["meta"] for i in images)
    archived = [m for m in items if m.get("mode") == "Archived"]
    assert archived and all(not v["files"] and "downloadUrl" not in v for m in archived for v in m["modelVersions"])
    assert any(v.get("earlyAccessEndsAt") and v["availability"] == "EarlyAccess" for v in versions)
    assert any("images" not in v for v in versions)
    assert any("creator" not in m for m in items)
    assert any(m["nsfw"] for m in items) and any(i["nsfwLevel"] >= 4 for i in images)


def catalog_source_types() -> list[str]:
    from modeldex.hub.serve.enums import MODEL_TYPES

    return list(MODEL_TYPES)


# --- round trip ---------------------------------------------------------------------------------------------------


def test_every_catalogue_model_renders_back_as_received(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        for item in catalog_items():
            rendered = store.model_to_api(session.get(Model, item["id"]))
            assert rendered == item, item["name"]


def test_rows_hold_the_columns(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        model = session.get(Model, 4201)
        assert model.name == "Realistic Demo" and model.type == "Checkpoint" and model.nsfw is False
        assert model.tags == ["base model", "photorealistic", "portraits"]
        assert model.creator is not None and model.creator.username == "pixelsmith"
        version = session.get(ModelVersion, 130072)
        assert version.base_model == "SD 1.5" and version.trained_words == ["rdemo style"]
        assert version.published_at is not None and version.published_at.isoformat() == "2023-07-25T10:05:00+00:00"
        file = session.get(VersionFile, 96418)
        assert (file.type, file.format, file.fp, file.size, file.primary) == (
            "Model",
            "PickleTensor",
            "fp32",
            "full",
            False,
        )
        assert file.size_kb == pytest.approx(4165284.8)
        image = session.get(Image, 1716342)
        assert image.version_id == 130072 and image.nsfw_level == 1 and image.meta["seed"] == 3754869890
        assert session.get(Model, 8206).mode == "Archived"
        assert session.get(ModelVersion, 521007).early_access_ends_at is not None


def test_unknown_fields_survive(db: sessionmaker[Session]) -> None:
    item = find_item(catalog_items(), 7001)
    item["futureField"] = {"nested": [1, 2]}
    item["modelVersions"][0]["brandNew"] = "yes"
    item["modelVersions"][0]["files"][0]["shard"] = 3
    with db() as session:
        store.upsert_model(session, item)
        session.commit()
        rendered = store.model_to_api(session.get(Model, 7001))
    assert rendered["futureField"] == {"nested": [1, 2]}
    assert rendered["modelVersions"][0]["brandNew"] == "yes"
    assert rendered["modelVersions"][0]["files"][0]["shard"] == 3


def test_api_model_objects_store_like_dicts(tmp_path: Path, templates: tuple[Path, Path]) -> None:
    item = find_item(catalog_items(), 4201)
    from_dict = copy_database(templates[0], tmp_path / "a")
    from_object = copy_database(templates[0], tmp_path / "b")
    with from_dict() as session:
        store.upsert_model(session, item)
        session.commit()
        expected = store.model_to_api(session.get(Model, 4201))
    with from_object() as session:
        store.upsert_model(session, api_models.Model.model_validate(item))
        session.commit()
        got = store.model_to_api(session.get(Model, 4201))
    # api_models writes timestamps its own way (`...:00Z` for `...:00.000Z`): the same instants.
    assert _same_instants(got) == _same_instants(expected)


def _same_instants(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _same_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_instants(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


# --- hashes, order, presence --------------------------------------------------------------------------------------


def test_hashes_are_upper_case_with_civitai_algo_names(db: sessionmaker[Session]) -> None:
    version = _standalone_version()
    version["files"][0]["hashes"] = {"sha256": "ab" * 32, "autov2": "abababab12", "Blake3": "cd" * 32, "CRC32": ""}
    with db() as session:
        store.upsert_version(session, version)
        session.commit()
        rows = {h.algo: h.value for h in session.scalars(select(FileHash))}
        rendered = store.version_to_api(session.get(ModelVersion, 900))
    assert rows == {"SHA256": "AB" * 32, "AutoV2": "ABABABAB12", "BLAKE3": "CD" * 32}
    assert list(rendered["files"][0]["hashes"]) == ["SHA256", "AutoV2", "BLAKE3"]


def test_image_and_file_order_is_kept(db: sessionmaker[Session]) -> None:
    version = _standalone_version()
    urls = "https://image.civitai.com/x/{}.jpeg"
    version["images"] = [{"id": i, "url": urls.format(i), "nsfwLevel": 1} for i in (50, 30, 40)]
    version["files"].insert(0, {**version["files"][0], "id": 5, "primary": False, "type": "VAE"})
    with db() as session:
        store.upsert_version(session, version)
        session.commit()
        rendered = store.version_to_api(session.get(ModelVersion, 900))
    assert [i["id"] for i in rendered["images"]] == [50, 30, 40]
    assert [f["id"] for f in rendered["files"]] == [5, 901]


def test_absent_images_key_stays_absent_and_empty_list_stays_empty(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        no_key = store.version_to_api(session.get(ModelVersion, 651015))
        empty = store.version_to_api(session.get(ModelVersion, 431004))
    assert "images" not in no_key
    assert empty["images"] == []


def test_deleted_creator(loaded: sessionmaker[Session]) -> None:
    item = find_item(catalog_items(), 4201)
    item["creator"] = None
    with loaded() as session:
        store.upsert_model(session, item)
        session.commit()
        model = session.get(Model, 4201)
        assert model.creator_id is None
        assert store.model_to_api(model)["creator"] is None
        assert session.get(Model, 9909).creator_id is None


def test_tag_objects_become_names(db: sessionmaker[Session]) -> None:
    item = find_item(catalog_items(), 9404)
    item["tags"] = [{"name": "vae", "id": 3}, "sdxl", {"id": 4}, None]
    with db() as session:
        model = store.upsert_model(session, item)
        assert model.tags == ["vae", "sdxl"]


# --- merging ------------------------------------------------------------------------------------------------------


def test_standalone_version_makes_a_stub_model_that_the_full_model_completes(db: sessionmaker[Session]) -> None:
    with db() as session:
        store.upsert_version(session, _standalone_version())
        session.commit()
        stub = session.get(Model, 800)
        assert (stub.name, stub.type, stub.nsfw) == ("Stub Source", "LORA", False)
        store.upsert_model(
            session,
            {"id": 800, "name": "Stub Source", "type": "LORA", "tags": ["x"], "creator": {"username": "someone"}},
        )
        session.commit()
        model = session.get(Model, 800)
        assert model.tags == ["x"] and model.creator is not None
        assert [v.id for v in model.versions] == [900]


def test_later_partial_answers_keep_what_they_lack(loaded: sessionmaker[Session]) -> None:
    standalone = {
        "id": 130072,
        "modelId": 4201,
        "name": "v5.1",
        "description": "<p>The long version notes only /model-versions/{id} sends.</p>",
        "model": {"name": "Realistic Demo", "type": "Checkpoint", "nsfw": False, "poi": False},
        "files": [],
    }
    with loaded() as session:
        store.upsert_version(session, standalone)
        session.commit()
        listed = find_item(catalog_items(), 4201)
        for version in listed["modelVersions"]:
            del version["description"]  # a /models answer without the key
        store.upsert_model(session, listed)
        session.commit()
        version = session.get(ModelVersion, 130072)
        assert version.description == standalone["description"]
        assert version.model.description == find_item(catalog_items(), 4201)["description"]
        assert {f.id for f in version.files} == {96417, 96418}


def test_archiving_keeps_file_rows_and_local_links_but_renders_no_files(loaded: sessionmaker[Session]) -> None:
    item = find_item(catalog_items(), 4201)
    with loaded() as session:
        session.add(
            LocalFile(path="/lib/realisticDemo_v51.safetensors", size=1, mtime_ns=1, inode=1, version_file_id=96417)
        )
        session.commit()
        archived = copy.deepcopy(item)
        archived["mode"] = "Archived"
        for version in archived["modelVersions"]:
            version["files"] = []
            version.pop("downloadUrl")
        store.upsert_model(session, archived)
        session.commit()
        link = session.scalars(select(LocalFile.version_file_id)).one()
        rendered = store.model_to_api(session.get(Model, 4201), origin="http://127.0.0.1:1")
    assert link == 96417
    assert rendered["mode"] == "Archived"
    assert all(v["files"] == [] and "downloadUrl" not in v for v in rendered["modelVersions"])


def test_images_from_the_images_endpoint(loaded: sessionmaker[Session]) -> None:
    items = [
        {
            "id": 1716342,
            "url": "https://image.civitai.com/x/new.jpeg",
            "nsfw": False,
            "nsfwLevel": "Soft",
            "browsingLevel": 2,
            "meta": None,  # /images without withMeta=true
            "modelVersionIds": [130072],
        },
        {
            "id": 77,
            "url": "https://image.civitai.com/x/77.mp4",
            "type": "video",
            "nsfwLevel": "Mature",
            "modelVersionIds": [1, 62833],
            "meta": {"prompt": "p"},
        },
        {"id": 78, "url": "https://image.civitai.com/x/78.jpeg", "nsfw": True},
        {"url": "no id"},
        {"id": 79},
    ]
    with loaded() as session:
        stored = store.upsert_images(session, items)
        session.commit()
        assert [i.id for i in stored] == [1716342, 77, 78]
        kept = session.get(Image, 1716342)
        assert kept.meta is not None and kept.meta["seed"] == 3754869890  # a null meta never replaces one
        assert (kept.nsfw_level, kept.version_id, kept.url) == (2, 130072, "https://image.civitai.com/x/new.jpeg")
        video = session.get(Image, 77)
        assert (video.nsfw_level, video.version_id, video.type) == (4, 62833, "video")
        assert session.get(Image, 78).nsfw_level == 4
        assert session.get(Image, 78).version_id is None


def _images_item(embedded: dict[str, Any]) -> dict[str, Any]:
    """The same image as an item of `/images` without withMeta: the fields an embedded image lacks."""
    return {
        "id": embedded["id"],
        "url": embedded["url"],
        "hash": embedded["hash"],
        "width": embedded["width"],
        "height": embedded["height"],
        "type": "image",
        "nsfwLevel": "None",
        "nsfw": False,
        "browsingLevel": 1,
        "createdAt": "2023-07-25T10:12:31.408Z",
        "postId": 1981754,
        "stats": {
            "cryCount": 0,
            "laughCount": 1,
            "likeCount": 42,
            "dislikeCount": 0,
            "heartCount": 7,
            "commentCount": 2,
        },
        "meta": None,
        "username": "pixelsmith",
        "baseModel": "SD 1.5",
        "modelVersionIds": [130072, 555001],
    }


IMAGES_ONLY_FIELDS = ("createdAt", "postId", "stats", "username")


def test_an_image_from_images_then_embedded_keeps_both_answers_fields(db: sessionmaker[Session]) -> None:
    item = find_item(catalog_items(), 4201)
    embedded = item["modelVersions"][0]["images"][0]
    listed = _images_item(embedded)
    with db() as session:
        store.upsert_images(session, [listed])
        session.commit()
        store.upsert_model(session, item)
        session.commit()
        image = session.get(Image, embedded["id"])
        assert image.version_id == 130072 and image.meta == embedded["meta"]
        assert "meta" not in image.raw  # its own column is the one copy
        as_embedded = store.image_to_api(image)
        as_item = store.images_item_to_api(image, with_meta=True)
    # Every field of each answer comes back, /images-only ones in the embedded shape and the other way round.
    assert {k: as_embedded[k] for k in embedded} == embedded
    assert {k: as_embedded[k] for k in IMAGES_ONLY_FIELDS} == {k: listed[k] for k in IMAGES_ONLY_FIELDS}
    assert {k: as_item[k] for k in ("metadata", "onSite", "minor", "poi", "remixOfId")} == {
        k: embedded[k] for k in ("metadata", "onSite", "minor", "poi", "remixOfId")
    }
    assert {k: as_item[k] for k in listed if k not in ("meta", "modelVersionIds")} == {
        k: v for k, v in listed.items() if k not in ("meta", "modelVersionIds")
    }
    assert as_item["meta"] == embedded["meta"]
    # The row's version and its meta's civitaiResources first, then what CivitAI listed that they do not reach.
    assert as_item["modelVersionIds"] == [130072, 62833, 555001]


def test_each_image_shape_takes_nsfw_and_meta_from_the_columns_whatever_came_last(
    loaded: sessionmaker[Session],
) -> None:
    item = find_item(catalog_items(), 4201)
    embedded = item["modelVersions"][0]["images"][2]
    listed = _images_item(embedded) | {"nsfwLevel": "Soft", "browsingLevel": 2}
    with loaded() as session:
        store.upsert_images(session, [listed])  # after the embedded answer: raw now holds the legacy string
        session.commit()
        image = session.get(Image, embedded["id"])
        assert image.raw["nsfwLevel"] == "Soft"
        as_embedded = store.image_to_api(image)
        bare = store.images_item_to_api(image, with_meta=False)
    assert as_embedded["nsfwLevel"] == 2 and as_embedded["browsingLevel"] == 2 and as_embedded["nsfw"] is False
    assert as_embedded["hasMeta"] is (embedded["meta"] is not None) and as_embedded["meta"] == embedded["meta"]
    assert (bare["nsfwLevel"], bare["browsingLevel"]) == ("Soft", 2)
    assert "meta" not in bare and bare["postId"] == 1981754


# --- rendering ----------------------------------------------------------------------------------------------------


def test_standalone_version_shape_and_local_download_urls(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        rendered = store.version_to_api(session.get(ModelVersion, 130072), origin="http://10.0.0.5:8765/")
    assert rendered["modelId"] == 4201
    assert rendered["model"] == {
        "name": "Realistic Demo",
        "type": "Checkpoint",
        "nsfw": False,
        "poi": False,
        "minor": False,
    }
    assert rendered["air"] == "urn:air:sd1:checkpoint:civitai:4201@130072"
    assert rendered["downloadUrl"] == "http://10.0.0.5:8765/api/download/models/130072"
    primary, pickle = rendered["files"]
    assert primary["primary"] is True and primary["downloadUrl"] == "http://10.0.0.5:8765/api/download/models/130072"
    assert pickle["downloadUrl"] == "http://10.0.0.5:8765/api/download/models/130072?type=Model&format=PickleTensor"
    assert [i["id"] for i in rendered["images"]] == [1716342, 1716343, 1716344]


def test_without_origin_the_civitai_urls_stay(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        rendered = store.version_to_api(session.get(ModelVersion, 130072))
    assert rendered["downloadUrl"] == "https://civitai.com/api/download/models/130072"


@pytest.mark.parametrize(
    ("version_id", "urn"),
    [
        (240001, "urn:air:sdxl:checkpoint:civitai:5301@240001"),
        (320001, "urn:air:sdxl:checkpoint:civitai:6101@320001"),
        (531008, "urn:air:sdxl:lycoris:civitai:8408@531008"),
        (411002, "urn:air:sd1:embedding:civitai:7102@411002"),
        (521006, "urn:air:flux1:lora:civitai:8307@521006"),
        (651015, "urn:air:other:unknown:civitai:9606@651015"),
    ],
)
def test_air_urns(loaded: sessionmaker[Session], version_id: int, urn: str) -> None:
    with loaded() as session:
        assert store.version_to_api(session.get(ModelVersion, version_id))["air"] == urn


def test_taken_down_model_renders_no_images(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        session.add(Image(id=1, version_id=691019, url="https://image.civitai.com/x/1.jpeg", nsfw_level=1))
        session.commit()
        rendered = store.model_to_api(session.get(Model, 10010))
    assert rendered["modelVersions"][0]["images"] == []


def test_rows_made_without_raw_render(db: sessionmaker[Session]) -> None:
    with db() as session:
        session.add(Creator(id=1, username="hand"))
        session.add(Model(id=1, name="Hand Made", type="LORA", creator_id=1, tags=["t"]))
        session.add(ModelVersion(id=2, model_id=1, name="v1", base_model="SDXL 1.0"))
        session.add(VersionFile(id=3, version_id=2, name="hand.safetensors", primary=True, format="SafeTensor"))
        session.add(FileHash(file_id=3, algo="SHA256", value="ab" * 32))
        session.commit()
        rendered = store.model_to_api(session.get(Model, 1), origin="http://h:1")
    version = rendered["modelVersions"][0]
    assert rendered["creator"] == {"username": "hand", "image": None}
    assert version["files"][0]["hashes"] == {"SHA256": "AB" * 32}
    assert version["files"][0]["metadata"] == {"format": "SafeTensor"}
    assert version["downloadUrl"] == "http://h:1/api/download/models/2"
    assert "images" not in version


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"name": "no id"}, {"id": "x1"}, {"id": True}, ["not", "an", "object"], 3])
def test_models_without_a_usable_id_are_refused(db: sessionmaker[Session], bad: Any) -> None:
    with db() as session, pytest.raises(HubError, match="CivitAI sent a model"):
        store.upsert_model(session, bad)


def test_a_version_nobody_can_place_is_refused(db: sessionmaker[Session]) -> None:
    with db() as session, pytest.raises(HubError, match="without the id of its model"):
        store.upsert_version(session, {"id": 5, "name": "orphan"})


def test_catalogue_images_carry_fields_that_have_no_column() -> None:
    # Guards the round-trip test above: it proves that image raw keeps fields only while the catalogue has some.
    columns = {"id", "url", "nsfwLevel", "width", "height", "hash", "type", "meta", "hasMeta", "hasPositivePrompt"}
    assert set(catalog_source.image(1, 1, 1, 1, None)) - columns >= {"metadata", "onSite", "minor", "poi", "remixOfId"}


def _standalone_version() -> dict[str, Any]:
    return {
        "id": 900,
        "modelId": 800,
        "name": "v1",
        "baseModel": "SD 1.5",
        "model": {"name": "Stub Source", "type": "LORA", "nsfw": False, "poi": False},
        "files": [
            {
                "id": 901,
                "name": "stub.safetensors",
                "type": "Model",
                "primary": True,
                "sizeKB": 1.5,
                "metadata": {"format": "SafeTensor"},
                "hashes": {"SHA256": "12" * 32},
            }
        ],
    }


def test_storing_the_same_batch_twice_changes_nothing(loaded: sessionmaker[Session]) -> None:
    with loaded() as session:
        before = {m.id: store.model_to_api(m) for m in session.scalars(select(Model))}
        counts = [session.query(cls).count() for cls in (Creator, Model, ModelVersion, VersionFile, FileHash, Image)]
        store.upsert_models(session, catalog_items())
        session.commit()
        after = {m.id: store.model_to_api(m) for m in session.scalars(select(Model))}
        again = [session.query(cls).count() for cls in (Creator, Model, ModelVersion, VersionFile, FileHash, Image)]
    assert after == before
    assert again == counts


def test_one_batch_with_shared_creators_and_a_repeated_image(db: sessionmaker[Session]) -> None:
    first, second = copy.deepcopy(find_item(catalog_items(), 4201)), copy.deepcopy(find_item(catalog_items(), 7203))
    second["creator"] = {"username": "pixelsmith", "image": "https://image.civitai.com/x/new-avatar.jpeg"}
    shared = first["modelVersions"][0]["images"][0]
    second["modelVersions"][0]["images"].append(shared)
    with db() as session:
        store.upsert_models(session, [first, second])
        session.commit()
        creators = list(session.scalars(select(Creator)))
        assert [(c.username, c.image_url) for c in creators] == [
            ("pixelsmith", "https://image.civitai.com/x/new-avatar.jpeg")
        ]
        assert session.get(Model, 7203).creator_id == session.get(Model, 4201).creator_id == creators[0].id
        assert session.get(Image, shared["id"]).version_id == 421003  # the later answer places it
