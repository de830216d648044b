"""Typed, tolerant models of CivitAI API v1 objects.

CivitAI adds, renames and nulls fields without notice, so every model keeps unknown fields (`model_extra`), every
field but the ids is optional, a null list reads as an empty one, and an unreadable date reads as None instead of
failing the whole page. Field names are snake_case in Python and camelCase on the wire; `raw()` gives the wire
shape back (unknown fields included) for storing or serving.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, WrapValidator
from pydantic.alias_generators import to_camel
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

T = TypeVar("T")

_DATETIME = TypeAdapter(datetime)


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_to_empty_dict(value: Any) -> Any:
    return {} if value is None else value


def _lenient_datetime(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        result: datetime = _DATETIME.validate_python(value)
    except ValidationError:
        return None  # a date CivitAI wrote oddly must not cost the whole object
    return result


def _tag_names(value: Any) -> Any:
    # Older responses (and some endpoints) send tags as objects: {"name": "anime", ...}.
    if value is None:
        return []
    if isinstance(value, list):
        return [item.get("name", "") if isinstance(item, dict) else item for item in value]
    return value


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Datetime = Annotated[datetime | None, WrapValidator(_lenient_datetime)]
"""A timestamp, or None when absent or unreadable."""
EmptyList = BeforeValidator(_none_to_empty_list)
EmptyDict = BeforeValidator(_none_to_empty_dict)


class ApiObject(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields kept."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True, protected_namespaces=())

    def raw(self) -> dict[str, Any]:
        """The object in CivitAI's JSON shape: fields as received (unknown ones included), camelCase names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Creator(ApiObject):
    """A model's author (`creator` on a model, items of `/creators`)."""

    username: str | None = None
    image: str | None = None
    model_count: int | None = None
    link: str | None = None


class Tag(ApiObject):
    """An item of `/tags`."""

    name: str = ""
    model_count: int | None = None
    link: str | None = None


class FileMetadata(ApiObject):
    """`files[].metadata`: precision, pruned/full and file format as the uploader declared them."""

    fp: str | None = None
    size: str | None = None
    format: str | None = None


class VersionFile(ApiObject):
    """One downloadable file of a version."""

    id: int | None = None
    name: str = ""
    type: str | None = None
    """`Model`, `Pruned Model`, `Training Data`, `VAE`, `Config`, `Text Encoder`, `Negative`, `Archive`..."""
    size_kb: float | None = Field(default=None, alias="sizeKB")
    """Size in KiB, rounded: compare with a tolerance of 1 KiB."""
    primary: bool | None = None
    metadata: Annotated[FileMetadata, BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=FileMetadata
    )
    hashes: Annotated[dict[str, str], EmptyDict] = Field(default_factory=dict)
    """Algorithm (CivitAI's spelling: SHA256, AutoV1, AutoV2, AutoV3, CRC32, BLAKE3) -> upper-case hex."""
    download_url: str | None = None
    pickle_scan_result: str | None = None
    virus_scan_result: str | None = None
    scanned_at: Datetime = None

    def hash(self, algo: str) -> str | None:
        """The hash for `algo` (any case), upper-case, or None when CivitAI has none."""
        wanted = algo.lower()
        for name, value in self.hashes.items():
            if name.lower() == wanted and value:
                return value.upper()
        return None

    @property
    def sha256(self) -> str | None:
        """The full-file SHA256, upper-case, when CivitAI knows it."""
        return self.hash("SHA256")

    @property
    def size_bytes(self) -> int | None:
        """`sizeKB` in bytes (approximate: CivitAI rounds sizeKB)."""
        return round(self.size_kb * 1024) if self.size_kb is not None else None


class Image(ApiObject):
    """A preview image or video: embedded in versions, or an item of `/images`."""

    id: int | None = None
    url: str = ""
    type: str | None = None
    """`image` or `video`."""
    width: int | None = None
    height: int | None = None
    hash: str | None = None
    """A blurhash."""
    nsfw_level: int | str | None = None
    """A bit-flag number in model/version responses, a name (None/Soft/Mature/X) from `/images`."""
    nsfw: bool | str | None = None
    meta: dict[str, Any] | None = None
    """Generation parameters exactly as CivitAI sent them (free-form; null for many images)."""
    created_at: Datetime = None
    post_id: int | None = None
    username: str | None = None
    base_model: str | None = None
    has_meta: bool | None = None

    @property
    def is_video(self) -> bool:
        """True for video previews (mp4/webm)."""
        return (self.type or "").lower() == "video"


class VersionModelInfo(ApiObject):
    """`model` inside a `/model-versions/{id}` answer: a summary of the parent model."""

    name: str | None = None
    type: str | None = None
    nsfw: bool | None = None
    poi: bool | None = None
    minor: bool | None = None
    mode: str | None = None


class VersionStats(ApiObject):
    download_count: int | None = None
    rating_count: int | None = None
    rating: float | None = None
    thumbs_up_count: int | None = None
    thumbs_down_count: int | None = None


class ModelVersion(ApiObject):
    """A version of a model: files, preview images, trigger words and base model."""

    id: int
    model_id: int | None = None
    """Present in `/model-versions` answers; the caller knows it for versions nested in a model."""
    index: int | None = None
    name: str = ""
    description: str | None = None
    base_model: str | None = None
    base_model_type: str | None = None
    created_at: Datetime = None
    updated_at: Datetime = None
    published_at: Datetime = None
    status: str | None = None
    availability: str | None = None
    nsfw_level: int | None = None
    early_access_ends_at: Datetime = None
    trained_words: Annotated[list[str], EmptyList] = Field(default_factory=list)
    stats: VersionStats | None = None
    files: Annotated[list[VersionFile], EmptyList] = Field(default_factory=list)
    images: Annotated[list[Image], EmptyList] = Field(default_factory=list)
    download_url: str | None = None
    model: VersionModelInfo | None = None
    air: str | None = None

    def primary_file(self) -> VersionFile | None:
        """The file CivitAI marks primary, else the first `Model` file, else the first file."""
        for file in self.files:
            if file.primary:
                return file
        models = [f for f in self.files if (f.type or "").lower() == "model"]
        candidates = models or self.files
        return candidates[0] if candidates else None

    def pick_file(
        self,
        *,
        type: str | None = None,  # noqa: A002 - CivitAI's parameter names, as in download URLs
        format: str | None = None,  # noqa: A002
        fp: str | None = None,
        size: str | None = None,
    ) -> VersionFile | None:
        """The file matching every given filter (case-insensitive), preferring the primary one; None if none matches.

        With no filter this is `primary_file()`.
        """
        wanted = {"type": type, "format": format, "fp": fp, "size": size}
        if not any(wanted.values()):
            return self.primary_file()

        def matches(file: VersionFile) -> bool:
            have = {
                "type": file.type,
                "format": file.metadata.format,
                "fp": file.metadata.fp,
                "size": file.metadata.size,
            }
            return all(w is None or (have[k] or "").lower() == w.lower() for k, w in wanted.items())

        found = [f for f in self.files if matches(f)]
        found.sort(key=lambda f: not f.primary)
        return found[0] if found else None


class ModelStats(ApiObject):
    download_count: int | None = None
    favorite_count: int | None = None
    thumbs_up_count: int | None = None
    thumbs_down_count: int | None = None
    comment_count: int | None = None
    rating_count: int | None = None
    rating: float | None = None
    tipped_amount_count: int | None = None


class Model(ApiObject):
    """A CivitAI model: the page that holds versions (`/models/{id}` and items of `/models`)."""

    id: int
    name: str = ""
    description: str | None = None
    type: str | None = None
    """CivitAI's ModelType: Checkpoint, TextualInversion, LORA, LoCon, DoRA, Controlnet, VAE..."""
    nsfw: bool | None = None
    nsfw_level: int | None = None
    poi: bool | None = None
    minor: bool | None = None
    mode: str | None = None
    """Null, `Archived` or `TakenDown`."""
    allow_no_credit: bool | None = None
    allow_commercial_use: list[str] | str | None = None
    allow_derivatives: bool | None = None
    allow_different_license: bool | None = None
    stats: ModelStats | None = None
    creator: Creator | None = None
    tags: Annotated[list[str], BeforeValidator(_tag_names)] = Field(default_factory=list)
    model_versions: Annotated[list[ModelVersion], EmptyList] = Field(default_factory=list)

    def latest_version(self) -> ModelVersion | None:
        """The newest published version (CivitAI lists newest first); None when the model has none."""
        published = [v for v in self.model_versions if (v.status or "Published") == "Published"]
        candidates = published or self.model_versions
        return candidates[0] if candidates else None


class PageMetadata(ApiObject):
    """Paging information: cursor mode fills `next_cursor`, page mode the counts; `next_page` is a full URL."""

    total_items: int | None = None
    current_page: int | None = None
    page_size: int | None = None
    total_pages: int | None = None
    next_page: str | None = None
    prev_page: str | None = None
    next_cursor: Annotated[str | None, BeforeValidator(_to_str)] = None


class Page(ApiObject, Generic[T]):
    """One page of a list endpoint."""

    items: Annotated[list[T], EmptyList] = Field(default_factory=list)
    metadata: Annotated[PageMetadata, BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=PageMetadata
    )


class Enums(ApiObject):
    """`/enums`: the value lists CivitAI accepts (fetch them; they change)."""

    model_config = ConfigDict(extra="allow", alias_generator=None, populate_by_name=True)

    model_type: Annotated[list[str], EmptyList] = Field(default_factory=list, alias="ModelType")
    model_file_type: Annotated[list[str], EmptyList] = Field(default_factory=list, alias="ModelFileType")
    base_model: Annotated[list[str], EmptyList] = Field(default_factory=list, alias="BaseModel")
    active_base_model: Annotated[list[str], EmptyList] = Field(default_factory=list, alias="ActiveBaseModel")
    base_model_type: Annotated[list[str], EmptyList] = Field(default_factory=list, alias="BaseModelType")
