"""The `download` job: what is stored in the queue for one CivitAI file, and the handler that carries it out.

A job's payload holds everything needed to finish it in another process (the daemon, a later `modeldex download`):
the download URL on the configured CivitAI host, the expected name, size and SHA256, the version as CivitAI sent it
(for the index and the `.civitai.info` sidecar), where to stage the bytes and where the library is. Never the API key:
the process that runs the job brings its own.

The handler records each finished step in the payload (`downloaded`, then `placed`), so a job killed after the
download but before the sort does not download again, and one killed during the sort finds its file through the
sort journal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from modeldex.errors import AuthRequiredError, EarlyAccessError, HubError
from modeldex.hub.after_download import (
    Placement,
    SortLock,
    find_sorted,
    index_file,
    save_plain,
    sort_download,
    store_rows,
    write_sidecars,
)
from modeldex.hub.api_models import ModelVersion, VersionFile
from modeldex.hub.download import Downloaded, Expected, download_file
from modeldex.hub.filenames import safe_filename
from modeldex.hub.job_runner import JobContext
from modeldex.hub.retry import RetryPolicy
from modeldex.identify.identify import identify_path
from modeldex.identify.layouts import LayoutOptions, check_layout
from modeldex.identify.sorting.fsops import same_file, sha256_file
from modeldex.identify.sorting.journal import Journal

KIND = "download"
STAGING_DIR = ".modeldex-downloads"
"""Hidden folder inside the library where downloads are written (same filesystem: sorting is a rename)."""
UNSORTED_DIR = "downloads"
"""Folder inside the library for verified files the sorter has no place for (workflows, archives, unknown kinds)."""


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """One file of one CivitAI version to fetch, verify and sort; the job payload."""

    version_id: int
    file_id: int | None
    model_id: int | None
    url: str
    file_name: str
    size_kb: float | None
    sha256: str | None
    destination: str
    """The library (sorted into) or, without one, the folder the file is saved in."""
    sort: bool
    """True when `destination` is a WebUI/ComfyUI library to sort into."""
    layout: str = "a1111"
    by_base: bool = False
    lycoris_dir: bool = False
    file_type: str | None = None
    early_access_ends_at: str | None = None
    version: dict[str, Any] | None = None
    """The version as CivitAI sent it (`/model-versions/{id}`)."""

    @property
    def key(self) -> str:
        """Identifies the download in the queue: the same file into the same place is one job."""
        return f"civitai:{self.version_id}:{self.file_id}:{os.path.abspath(self.destination)}"

    @property
    def staging(self) -> Path:
        return Path(self.destination) / STAGING_DIR / f"{self.version_id}-{self.file_id or 0}"

    @property
    def layout_options(self) -> LayoutOptions:
        return LayoutOptions(check_layout(self.layout), by_base=self.by_base, lycoris_dir=self.lycoris_dir)

    def describe(self) -> str:
        """Words for progress bars and messages."""
        return self.file_name or f"version {self.version_id}"

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> DownloadRequest:
        """The request in a job's payload (extra keys, such as recorded steps, are ignored)."""
        names = cls.__dataclass_fields__.keys()
        try:
            return cls(**{k: v for k, v in payload.items() if k in names})
        except TypeError as exc:
            raise HubError(f"a download job's payload is incomplete ({exc}); cancel it and download again") from exc


def request_for(
    version: ModelVersion,
    file: VersionFile,
    url: str,
    destination: Path,
    *,
    sort: bool,
    layout: LayoutOptions,
) -> DownloadRequest:
    """The request to download `file` of `version` from `url` into `destination` (a library when `sort`)."""
    early = version.early_access_ends_at
    return DownloadRequest(
        version_id=version.id,
        file_id=file.id,
        model_id=version.model_id,
        url=url,
        file_name=safe_filename(file.name, fallback=f"civitai-{version.id}"),
        size_kb=file.size_kb,
        sha256=file.sha256,
        destination=os.path.abspath(destination),
        sort=sort,
        layout=layout.layout,
        by_base=layout.by_base,
        lycoris_dir=layout.lycoris_dir,
        file_type=file.type,
        early_access_ends_at=early.isoformat() if early else None,
        version=version.raw(),
    )


class DownloadHandler:
    """Runs `download` jobs: fetch and verify, sort (or save), index, sidecars."""

    def __init__(
        self,
        http: httpx.Client,
        sessions: sessionmaker[Session],
        journal: Journal,
        *,
        headers_for: Callable[[str], Mapping[str, str]] = lambda _url: {},
        redact: Callable[[str], str] = lambda text: text,
        retry: RetryPolicy | None = None,
        sort_lock: SortLock = nullcontext,
        previews: bool = True,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.http = http
        self.sessions = sessions
        self.journal = journal
        self.headers_for = headers_for
        self.redact = redact
        self.retry = retry
        self.sort_lock = sort_lock
        self.previews = previews
        self.sleep = sleep

    def __call__(self, ctx: JobContext) -> dict[str, Any]:
        request = DownloadRequest.from_payload(ctx.payload)
        payload = ctx.payload
        placement = _placement_from(payload.get("placed"))
        got: dict[str, Any] = payload.get("downloaded") or {}
        if placement is None:
            if not got:
                got = self._download(ctx, request)
                payload["downloaded"] = got
                ctx.save_payload(payload)
            ctx.set_phase("sorting" if request.sort else "saving")
            placement = self._place(Path(got["path"]), got["sha256"], request)
            if placement is None:  # the file vanished after its download was recorded: fetch it again
                got = self._download(ctx, request)
                payload["downloaded"] = got
                ctx.save_payload(payload)
                placement = self._place(Path(got["path"]), got["sha256"], request)
                if placement is None:
                    raise HubError(f"{request.describe()} disappeared right after it was downloaded")
            payload["placed"] = placement.to_json()
            ctx.save_payload(payload)
        ctx.set_phase("indexing")
        if request.version:
            store_rows(self.sessions, request.version)
        index_file(self.sessions, placement.path, request.file_id)
        notes = list(placement.notes)
        sidecars: list[Path] = []
        if request.version:
            ctx.set_phase("sidecars")
            written, more = write_sidecars(
                placement.path,
                request.version,
                http=self.http if self.previews else None,
                headers_for=self.headers_for,
            )
            sidecars, notes = written, notes + more
        _remove_empty(request.staging)
        return dict(
            placement.to_json(),
            sidecars=[str(p) for p in sidecars],
            notes=notes,
            sha256=got.get("sha256"),
            size=got.get("size"),
            fetched=got.get("fetched", 0),
            resumed_from=got.get("resumed_from", 0),
            verified=got.get("verified", False),
            version_id=request.version_id,
            file_id=request.file_id,
            name=request.file_name,
        )

    def _download(self, ctx: JobContext, request: DownloadRequest) -> dict[str, Any]:
        ctx.set_phase("downloading")
        expected = Expected.from_api(request.size_kb, request.sha256)
        kwargs: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        try:
            got: Downloaded = download_file(
                self.http,
                request.url,
                request.staging,
                expected=expected,
                name_hint=request.file_name,
                headers_for=self.headers_for,
                on_progress=lambda done, total: ctx.progress(done, total, "downloading"),
                retry=self.retry,
                redact=self.redact,
                **kwargs,
            )
        except AuthRequiredError as exc:
            raise _early_access(exc, request) from exc
        return {
            "path": str(got.path),
            "sha256": got.sha256,
            "size": got.size,
            "fetched": got.fetched,
            "resumed_from": got.resumed_from,
            "verified": got.verified,
        }

    def _place(self, path: Path, sha256: str, request: DownloadRequest) -> Placement | None:
        destination = Path(request.destination)
        if request.sort:
            # A sort of this very file by an earlier run that was killed: finished here, never left half-done
            # (an interrupted run would also make `modeldex sort` refuse to start).
            found = find_sorted(path, sha256, self.journal, sort_lock=self.sort_lock)
            if found is not None:
                if path.exists() and not same_file(path, found):
                    os.unlink(path)  # verified to hold the same content as the sorted copy
                ident = identify_path(found)
                return Placement(found, "move", "sorted by an earlier run", ident.kind, ident.base)
        if not path.is_file():  # saved by an earlier run that was stopped before recording it
            folder = destination / UNSORTED_DIR if request.sort else destination
            found = _find_saved(path, sha256, [folder])
            if found is None:
                return None
            ident = identify_path(found)
            return Placement(
                found, "kept" if request.sort else "saved", "saved by an earlier run", ident.kind, ident.base
            )
        ident = identify_path(path)
        if not request.sort:
            target = save_plain(path, destination)
            return Placement(target, "saved", "no library: saved without sorting", ident.kind, ident.base)
        placement = sort_download(
            path,
            sha256,
            destination,
            request.layout_options,
            self.journal,
            identification=ident,
            sort_lock=self.sort_lock,
        )
        if placement.action == "kept":
            target = save_plain(path, destination / UNSORTED_DIR)
            return Placement(target, "kept", placement.reason, placement.kind, placement.base)
        return placement


def _early_access(exc: AuthRequiredError, request: DownloadRequest) -> AuthRequiredError:
    """A login refusal for a version still in early access says so, with the date."""
    if isinstance(exc, EarlyAccessError) or not request.early_access_ends_at:
        return exc
    try:
        ends = datetime.fromisoformat(request.early_access_ends_at)
    except ValueError:
        return exc
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=UTC)
    if ends <= datetime.now(UTC):
        return exc
    return EarlyAccessError(
        f"version {request.version_id} is in early access until {ends:%Y-%m-%d %H:%M} UTC: {exc.message}"
    )


def _find_saved(path: Path, sha256: str, folders: list[Path]) -> Path | None:
    """A file saved from `path` into one of `folders` (under its name or a numbered one) with this content."""
    stem, suffix = path.stem, path.suffix
    for folder in folders:
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.glob(f"{stem}*{suffix}")):
            if candidate.is_file() and sha256_file(candidate) == sha256:
                return candidate
    return None


def _placement_from(data: Any) -> Placement | None:
    if not isinstance(data, Mapping) or not data.get("path"):
        return None
    path = Path(data["path"])
    if not path.exists():
        return None
    return Placement(
        path=path,
        action=str(data.get("action") or "move"),
        reason=str(data.get("reason") or ""),
        kind=str(data.get("kind") or "unknown"),
        base=str(data.get("base") or "unknown"),
        usage=data.get("usage"),
        sort_run=data.get("sort_run"),
    )


def _remove_empty(staging: Path) -> None:
    """Remove the download's staging folder, and the staging root, once they hold nothing."""
    for folder in (staging, staging.parent):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (another download, or a part kept for a resume), or already gone
