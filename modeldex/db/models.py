"""SQLAlchemy 2.x models: local files, the sort journal, the CivitAI side and the job queue.

Schema changes go through a new Alembic revision in `modeldex/db/migrations/versions/`; a test checks that
autogenerate finds no difference between these models and `upgrade head`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so migrations are deterministic on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that comes back timezone-aware in UTC on every backend.

    SQLite has no timezone type: SQLAlchemy's DateTime(timezone=True) there drops the offset (14:00+02:00 is stored
    as 14:00) and returns naive values that cannot be compared with `datetime.now(UTC)`. Values are converted to
    UTC before storing; a naive value is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# --- CivitAI side -------------------------------------------------------------------------------------------------


class Creator(Base):
    __tablename__ = "creator"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    image_url: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Model(Base):
    """A CivitAI model (the page that holds versions)."""

    __tablename__ = "model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    nsfw: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("creator.id", ondelete="SET NULL"), index=True)
    mode: Mapped[str | None] = mapped_column(String(32))
    """CivitAI `mode`: null, `Archived` or `TakenDown`."""
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The API object as received, unknown fields included."""
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    creator: Mapped[Creator | None] = relationship()
    versions: Mapped[list[ModelVersion]] = relationship(back_populates="model", cascade="all, delete-orphan")


class ModelVersion(Base):
    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str | None] = mapped_column(String(64), index=True)
    """CivitAI `baseModel` as given ("SD 1.5", "Pony", "Illustrious"...): lineage, kept apart from `base`."""
    base_model_type: Mapped[str | None] = mapped_column(String(64))
    trained_words: Mapped[list[Any]] = mapped_column(JSON, default=list)
    description: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    early_access_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str | None] = mapped_column(String(32))
    download_url: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    model: Mapped[Model] = relationship(back_populates="versions")
    files: Mapped[list[VersionFile]] = relationship(back_populates="version", cascade="all, delete-orphan")
    images: Mapped[list[Image]] = relationship(back_populates="version", cascade="all, delete-orphan")


class VersionFile(Base):
    __tablename__ = "version_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(64))
    """`Model`, `Training Data`, `Pruned Model`, `Config`, `VAE`..."""
    size_kb: Mapped[float | None] = mapped_column(Float)
    format: Mapped[str | None] = mapped_column(String(32))
    fp: Mapped[str | None] = mapped_column(String(16))
    size: Mapped[str | None] = mapped_column(String(16))
    """metadata.size: `full` or `pruned`."""
    primary: Mapped[bool] = mapped_column(Boolean, default=False)
    download_url: Mapped[str | None] = mapped_column(Text)
    pickle_scan_result: Mapped[str | None] = mapped_column(String(32))
    virus_scan_result: Mapped[str | None] = mapped_column(String(32))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    version: Mapped[ModelVersion] = relationship(back_populates="files")
    hashes: Mapped[list[FileHash]] = relationship(back_populates="file", cascade="all, delete-orphan")


class FileHash(Base):
    __tablename__ = "file_hash"
    __table_args__ = (UniqueConstraint("file_id", "algo", name="uq_file_hash_file_algo"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("version_file.id", ondelete="CASCADE"), index=True)
    algo: Mapped[str] = mapped_column(String(16))
    """CivitAI's spelling: SHA256, AutoV1, AutoV2, AutoV3, CRC32, BLAKE3."""
    value: Mapped[str] = mapped_column(String(128), index=True)
    """Upper-case hex, as CivitAI writes it."""

    file: Mapped[VersionFile] = relationship(back_populates="hashes")


class Image(Base):
    __tablename__ = "image"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    nsfw_level: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str | None] = mapped_column(String(16))
    """`image` or `video`."""
    hash: Mapped[str | None] = mapped_column(String(64))
    """The blurhash CivitAI sends."""
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The generation parameters as CivitAI sent them (null for many images)."""
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The API object as received, unknown fields included, merged over the answers seen (embedded in a version and
    `/images` items carry different fields); `meta` lives in its own column. Null for rows stored before 0003."""
    cached_path: Mapped[str | None] = mapped_column(Text)

    version: Mapped[ModelVersion | None] = relationship(back_populates="images")


# --- local side -----------------------------------------------------------------------------------------------------


class LocalFile(Base):
    """A file on the user's disk, with identify results and hashes (the hash cache key is path+size+mtime+inode)."""

    __tablename__ = "local_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    autov1: Mapped[str | None] = mapped_column(String(8))
    autov2: Mapped[str | None] = mapped_column(String(10), index=True)
    autov3: Mapped[str | None] = mapped_column(String(64), index=True)
    crc32: Mapped[str | None] = mapped_column(String(8))
    blake3: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="unknown", index=True)
    base: Mapped[str] = mapped_column(String(32), default="unknown")
    variant: Mapped[str | None] = mapped_column(String(32))
    prediction: Mapped[str | None] = mapped_column(String(8))
    algo: Mapped[str | None] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16), default="other")
    unsafe: Mapped[bool] = mapped_column(Boolean, default=False)
    unsafe_globals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    version_file_id: Mapped[int | None] = mapped_column(ForeignKey("version_file.id", ondelete="SET NULL"), index=True)
    user_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """What the user set by hand (kind, base, version link...); sync never writes here."""
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    version_file: Mapped[VersionFile | None] = relationship()


class SortRun(Base):
    """One `modeldex sort` apply: its plan and progress, so a killed run can be finished or undone."""

    __tablename__ = "sort_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(Text)
    root: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="planned")
    """planned, applying, done, undoing, undone, failed."""

    ops: Mapped[list[SortOp]] = relationship(back_populates="run", cascade="all, delete-orphan", order_by="SortOp.seq")


class SortOp(Base):
    __tablename__ = "sort_op"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_sort_op_run_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sort_run.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    """move, copy, link, hardlink, dedupe, quarantine, skip."""
    source: Mapped[str] = mapped_column(Text)
    destination: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, started, done, undone, failed."""
    error: Mapped[str | None] = mapped_column(Text)

    run: Mapped[SortRun] = relationship(back_populates="ops")


class Job(Base):
    """A durable unit of background work (downloads first); claimed with a lease so a dead worker's job is retaken."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_state_lease", "state", "lease_until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    """queued, running, done, failed, cancelled."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SyncState(Base):
    """Key/value bookkeeping for the sync daemon (cursors, last run times)."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
