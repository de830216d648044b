"""The tolerant API models: CivitAI's documented shapes, its quirks, and fields it has not invented yet."""

from __future__ import annotations

from typing import Any

import pytest

from modeldex.hub.api_models import Enums, Image, Model, ModelVersion, Page, VersionFile


def documented_example() -> dict[str, Any]:
    """The example of docs/civitai-api.md section 1.7 (one model, version, file and image with meta)."""
    return {
        "id": 4201,
        "name": "Realistic Demo",
        "description": "<p>demo</p>",
        "type": "Checkpoint",
        "nsfw": False,
        "nsfwLevel": 1,
        "allowCommercialUse": ["Image", "RentCivit"],
        "stats": {"downloadCount": 1200, "thumbsUpCount": 310},
        "creator": {"username": "demo_user", "image": None},
        "tags": ["base model", "photorealistic"],
        "modelVersions": [
            {
                "id": 130072,
                "index": 0,
                "name": "v5.1",
                "baseModel": "SD 1.5",
                "baseModelType": "Standard",
                "publishedAt": "2023-07-25T10:05:00.000Z",
                "availability": "Public",
                "trainedWords": ["rdemo style"],
                "earlyAccessEndsAt": None,
                "files": [
                    {
                        "id": 96417,
                        "name": "realisticDemo_v51.safetensors",
                        "type": "Model",
                        "sizeKB": 2082642.42,
                        "primary": True,
                        "metadata": {"fp": "fp16", "size": "pruned", "format": "SafeTensor"},
                        "pickleScanResult": "Success",
                        "scannedAt": "2023-07-25T10:02:00.000Z",
                        "hashes": {
                            "AutoV2": "15012C538F",
                            "SHA256": "15012C538F503CE2EBFC2C8547B268C75CCDAFF7A281DB55399940FF1D70E21D",
                        },
                        "downloadUrl": "https://civitai.com/api/download/models/130072?type=Model&format=SafeTensor",
                    }
                ],
                "images": [
                    {
                        "id": 1716342,
                        "url": "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/0f6c/width=512/1716342.jpeg",
                        "nsfwLevel": 1,
                        "width": 512,
                        "height": 768,
                        "type": "image",
                        "meta": {
                            "prompt": "rdemo style, portrait photo of an old fisherman, 85mm",
                            "sampler": "DPM++ 2M Karras",
                            "cfgScale": 7,
                            "seed": 3754869890,
                            "Size": "512x768",
                            "Model hash": "15012c538f",
                            "civitaiResources": [{"type": "checkpoint", "modelVersionId": 130072}],
                        },
                    }
                ],
                "downloadUrl": "https://civitai.com/api/download/models/130072",
            }
        ],
    }


def test_documented_example_parses() -> None:
    model = Model.model_validate(documented_example())
    assert (model.id, model.type, model.allow_commercial_use) == (4201, "Checkpoint", ["Image", "RentCivit"])
    assert model.creator is not None and model.creator.username == "demo_user"
    assert model.stats is not None and model.stats.download_count == 1200
    version = model.model_versions[0]
    assert version.base_model == "SD 1.5" and version.trained_words == ["rdemo style"]
    assert version.published_at is not None and (version.published_at.year, version.published_at.minute) == (2023, 5)
    assert version.early_access_ends_at is None
    file = version.primary_file()
    assert file is not None and file.name == "realisticDemo_v51.safetensors"
    assert file.sha256 == "15012C538F503CE2EBFC2C8547B268C75CCDAFF7A281DB55399940FF1D70E21D"
    assert file.size_bytes == round(2082642.42 * 1024)
    assert version.images[0].meta is not None and version.images[0].meta["seed"] == 3754869890


def test_raw_round_trips_the_wire_shape() -> None:
    data = documented_example()
    again = Model.model_validate(data).raw()
    assert again["modelVersions"][0]["files"][0]["sizeKB"] == data["modelVersions"][0]["files"][0]["sizeKB"]
    assert again["modelVersions"][0]["images"][0]["meta"] == data["modelVersions"][0]["images"][0]["meta"]
    assert Model.model_validate(again) == Model.model_validate(data)


def test_unknown_fields_are_kept_at_every_level() -> None:
    data = documented_example()
    data["fresh"] = 1
    data["modelVersions"][0]["fresh"] = 2
    data["modelVersions"][0]["files"][0]["fresh"] = 3
    data["modelVersions"][0]["files"][0]["metadata"]["fresh"] = 4
    data["modelVersions"][0]["images"][0]["fresh"] = 5
    raw = Model.model_validate(data).raw()
    version = raw["modelVersions"][0]
    assert (raw["fresh"], version["fresh"], version["files"][0]["fresh"]) == (1, 2, 3)
    assert (version["files"][0]["metadata"]["fresh"], version["images"][0]["fresh"]) == (4, 5)


def test_quirks_nulls_and_absences() -> None:
    archived = {"id": 3, "name": "old", "mode": "Archived", "files": [], "downloadUrl": None}
    no_images = {"id": 4, "name": "no images key", "files": None, "trainedWords": None, "images": None}
    version = ModelVersion.model_validate(archived)
    assert version.files == [] and version.primary_file() is None and version.pick_file(fp="fp16") is None
    assert version.model_extra == {"mode": "Archived"}
    bare = ModelVersion.model_validate(no_images)
    assert bare.images == [] and bare.trained_words == [] and bare.files == []
    file = VersionFile.model_validate({"name": "x", "metadata": None, "hashes": None, "sizeKB": None})
    assert file.metadata.fp is None and file.hashes == {} and file.sha256 is None and file.size_bytes is None


def test_images_null_meta_video_and_both_nsfw_forms() -> None:
    video = Image.model_validate({"id": 1, "url": "https://x/y.mp4", "type": "video", "meta": None, "nsfwLevel": 4})
    listed = Image.model_validate({"id": 2, "url": "u", "nsfwLevel": "Mature", "nsfw": True, "createdAt": "nope"})
    assert video.is_video and video.meta is None and video.nsfw_level == 4
    assert not listed.is_video and listed.nsfw_level == "Mature" and listed.created_at is None


def test_hash_lookup_ignores_case_and_empty_values() -> None:
    file = VersionFile.model_validate({"hashes": {"sha256": "ab" * 32, "AutoV3": "", "BLAKE3": "cd" * 32}})
    assert file.sha256 == "AB" * 32 and file.hash("blake3") == "CD" * 32 and file.hash("AutoV3") is None


def test_pick_file_filters_and_prefers_primary() -> None:
    files = [
        {"id": 1, "type": "Model", "metadata": {"fp": "fp32", "format": "PickleTensor", "size": "full"}},
        {
            "id": 2,
            "type": "Model",
            "primary": True,
            "metadata": {"fp": "fp16", "format": "SafeTensor", "size": "pruned"},
        },
        {"id": 3, "type": "Model", "metadata": {"fp": "fp16", "format": "SafeTensor", "size": "full"}},
        {"id": 4, "type": "Training Data", "metadata": {"format": "Other"}},
        {"id": 5, "type": "VAE", "metadata": {"fp": "fp16", "format": "SafeTensor"}},
    ]
    version = ModelVersion.model_validate({"id": 9, "files": files})
    pick = version.pick_file
    assert (pick() or VersionFile()).id == 2
    assert (pick(format="safetensor", fp="FP16") or VersionFile()).id == 2
    assert (pick(size="full", format="SafeTensor") or VersionFile()).id == 3
    assert (pick(format="PickleTensor") or VersionFile()).id == 1
    assert (pick(type="training data") or VersionFile()).id == 4
    assert (pick(type="VAE") or VersionFile()).id == 5
    assert pick(fp="bf16") is None


def test_primary_file_falls_back_to_the_first_model_file() -> None:
    version = ModelVersion.model_validate({"id": 1, "files": [{"id": 7, "type": "Config"}, {"id": 8, "type": "Model"}]})
    assert (version.primary_file() or VersionFile()).id == 8


def test_latest_version_skips_unpublished() -> None:
    model = Model.model_validate(
        {"id": 1, "modelVersions": [{"id": 3, "status": "Draft"}, {"id": 2, "status": "Published"}, {"id": 1}]}
    )
    assert (model.latest_version() or ModelVersion(id=0)).id == 2
    assert Model.model_validate({"id": 2}).latest_version() is None


@pytest.mark.parametrize(
    ("metadata", "cursor"),
    [({"nextCursor": 1700000000}, "1700000000"), ({"nextCursor": "75363|932023"}, "75363|932023"), (None, None)],
)
def test_page_metadata(metadata: dict[str, Any] | None, cursor: str | None) -> None:
    page = Page[Image].model_validate({"items": [{"id": 1, "url": "u"}], "metadata": metadata})
    assert page.metadata.next_cursor == cursor and page.items[0].url == "u"


def test_enums_keep_their_spelling() -> None:
    enums = Enums.model_validate({"ModelType": ["Checkpoint"], "BaseModel": ["SD 1.5", "Pony"], "Other": ["x"]})
    assert enums.base_model == ["SD 1.5", "Pony"] and enums.model_file_type == []
    assert enums.raw() == {"ModelType": ["Checkpoint"], "BaseModel": ["SD 1.5", "Pony"], "Other": ["x"]}
