"""What happens to a verified download: identify it, sort it into the library, index it, write its sidecars.

The sort is the sorter's own plan and journalled apply (so `modeldex sort --undo` reverts it like any sort), run on
the one downloaded file with the SHA256 the download already verified. A file the sorter will not place (unknown
kind, an unsafe pickle, no folder for its kind in the layout) stays where it was downloaded and the reason is
reported; a file whose content is already in the library is not placed twice: the download is dropped and the
library's copy is the result.

Every step can run again after a kill: a file already moved is found through the journal (and an interrupted sort
run finished), the rows are upserts, the index is a scan, and sidecars are written only where none exist.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.models import LocalFile, VersionFile
from modeldex.errors import ModeldexError, SortError
from modeldex.identify.identify import identify_path
from modeldex.identify.layouts import LayoutOptions
from modeldex.identify.records import Identification
from modeldex.identify.sorting.fsops import place_noreplace, sha256_file
from modeldex.identify.sorting.journal import INTERRUPTED_STATES, Journal
from modeldex.identify.sorting.plan import SortOptions
from modeldex.identify.sorting.sidecars import model_stem

INFO_SUFFIX = ".civitai.info"
PREVIEW_SUFFIX = ".preview.png"
PREVIEW_MAX_BYTES = 32 << 20
"""A preview larger than this is not fetched (CivitAI's full-size images are a few MB)."""
_RUNS_SEARCHED = 50
"""Sort runs looked through for a download moved by a killed process (newest first)."""

SortLock = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a download ended up and why."""

    path: Path
    action: str
    """`move` (sorted into the library), `duplicate` (the library had it; the download was dropped), `kept`
    (left where it was downloaded: see `reason`), `saved` (no library: placed in the target folder)."""
    reason: str
    kind: str
    base: str
    usage: str | None = None
    sort_run: int | None = None
    sidecars: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Best-effort steps that did not work out (a preview that could not be fetched...)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "action": self.action,
            "reason": self.reason,
            "kind": self.kind,
            "base": self.base,
            "usage": self.usage,
            "sort_run": self.sort_run,
            "sidecars": [str(p) for p in self.sidecars],
            "notes": list(self.notes),
        }


# --- sorting ----------------------------------------------------------------------------------------------------------


def sort_download(
    path: Path,
    sha256: str,
    library: Path,
    layout: LayoutOptions,
    journal: Journal,
    *,
    identification: Identification | None = None,
    sort_lock: SortLock = nullcontext,
) -> Placement:
    """Move the verified file at `path` into `library` with the sorter (journalled); see the module doc."""
    from modeldex.identify.sorting.apply import apply_plan
    from modeldex.identify.sorting.planner import plan_sort

    ident = identification or identify_path(path)
    options = SortOptions(layout=layout, mode="move")

    def known_sha256(candidate: Path) -> str:
        return sha256 if candidate == path else sha256_file(candidate)

    with sort_lock():
        plan = plan_sort(path, library, options, identify=lambda _p: ident, sha256_of=known_sha256, settle=0.0)
        action = plan.actions[0]
        if action.action == "skip":
            return Placement(path, "kept", action.reason, ident.kind, ident.base)
        if action.action == "duplicate":
            assert action.destination is not None
            os.unlink(path)  # the library holds this very content (same SHA256): nothing is lost
            reason = f"already in the library as {action.destination}"
            return Placement(action.destination, "duplicate", reason, ident.kind, ident.base, action.usage)
        result = apply_plan(plan, journal)
    outcome = result.outcomes[0]
    if outcome.state != "done" or action.destination is None:
        raise SortError(f"{path.name} was verified but could not be sorted: {outcome.error}")
    return Placement(action.destination, "move", action.reason, ident.kind, ident.base, action.usage, result.run_id)


def find_sorted(path: Path, sha256: str, journal: Journal, *, sort_lock: SortLock = nullcontext) -> Path | None:
    """Where an earlier sort of the download at `path` put it (finishing that run if it was killed), or None."""
    from modeldex.identify.sorting.apply import resume_run

    for summary in journal.summaries(limit=_RUNS_SEARCHED):
        if summary.source != path:
            continue
        run = journal.load(summary.id)
        if run.state in INTERRUPTED_STATES:
            with sort_lock():
                resume_run(run.id, journal)
            run = journal.load(summary.id)
        for op in run.ops:
            if op.source == path and op.destination is not None and op.state == "done":
                if op.destination.is_file() and sha256_file(op.destination) == sha256:
                    return op.destination
    return None


def save_plain(path: Path, folder: Path) -> Path:
    """Move the file into `folder` under its name, or `NAME-1.ext`... when that is taken; never replaces."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = model_stem(path), path.suffix
    n = 0
    while True:
        target = folder / (f"{stem}-{n}{suffix}" if n else path.name)
        try:
            place_noreplace(path, target)
        except FileExistsError:
            n += 1
            continue
        return target


# --- the index --------------------------------------------------------------------------------------------------------


def store_rows(sessions: sessionmaker[Session], version: Mapping[str, Any]) -> None:
    """Upsert the version (its model stub, files, hashes and images) into the index."""
    from modeldex.hub.store import upsert_version

    with sessions() as session:
        upsert_version(session, dict(version))
        session.commit()


def index_file(sessions: sessionmaker[Session], path: Path, file_id: int | None) -> None:
    """Scan the placed file into `local_file` (identify and every hash) and link it to its CivitAI file row."""
    from modeldex.db.scanning import scan

    scan([path], sessions)
    if file_id is None:
        return
    with sessions() as session:
        if session.get(VersionFile, file_id) is None:
            return
        session.execute(
            update(LocalFile).where(LocalFile.path == os.path.abspath(path)).values(version_file_id=file_id)
        )
        session.commit()


def linked_file_id(sessions: sessionmaker[Session], path: Path) -> int | None:
    """The CivitAI file row `path` is linked to in the index (tests and `modeldex jobs` use it)."""
    with sessions() as session:
        return session.scalar(select(LocalFile.version_file_id).where(LocalFile.path == os.path.abspath(path)))


# --- sidecars ---------------------------------------------------------------------------------------------------------


def write_sidecars(
    model_path: Path,
    version: Mapping[str, Any],
    *,
    http: httpx.Client | None = None,
    headers_for: Callable[[str], Mapping[str, str]] = lambda _url: {},
) -> tuple[list[Path], list[str]]:
    """Write `NAME.civitai.info` (the version as CivitAI sent it) and `NAME.preview.png` beside the model.

    Existing sidecars are left alone. The preview is best-effort: the first still image (videos are skipped), the
    safest NSFW level first; a failure is returned as a note, never raised. Returns (written files, notes).
    """
    stem = model_stem(model_path)
    written: list[Path] = []
    notes: list[str] = []
    info = model_path.with_name(stem + INFO_SUFFIX)
    if not info.exists():
        _write_atomic(info, json.dumps(version, ensure_ascii=False, indent=2).encode("utf-8"))
        written.append(info)
    preview = model_path.with_name(stem + PREVIEW_SUFFIX)
    if http is not None and not preview.exists():
        url = preview_url(version)
        if url is None:
            notes.append("no still preview image on CivitAI")
        else:
            problem = _fetch_preview(http, url, preview, headers_for)
            if problem is None:
                written.append(preview)
            else:
                notes.append(f"preview not saved: {problem}")
    return written, notes


def preview_url(version: Mapping[str, Any]) -> str | None:
    """The URL of the preview to save: the first still image of the safest NSFW level, or None."""
    stills = []
    for index, image in enumerate(version.get("images") or []):
        if not isinstance(image, Mapping) or not image.get("url"):
            continue
        if str(image.get("type") or "image").lower() != "image" or _is_video_url(str(image["url"])):
            continue
        level = image.get("nsfwLevel")
        rank = level if isinstance(level, int) and not isinstance(level, bool) else 99
        stills.append((rank, index, str(image["url"])))
    return min(stills)[2] if stills else None


def _is_video_url(url: str) -> bool:
    return url.lower().split("?")[0].endswith((".mp4", ".webm", ".mov", ".gif"))


def _fetch_preview(
    http: httpx.Client, url: str, target: Path, headers_for: Callable[[str], Mapping[str, str]]
) -> str | None:
    """Download and convert a preview to PNG; the problem in words, or None when it was saved."""
    from PIL import Image, UnidentifiedImageError

    try:
        with http.stream("GET", url, headers=dict(headers_for(url)), follow_redirects=True) as response:
            if response.status_code != 200:
                return f"HTTP {response.status_code} from {response.url.host}"
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > PREVIEW_MAX_BYTES:
                    return f"larger than {PREVIEW_MAX_BYTES >> 20} MiB"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} fetching {httpx.URL(url).host}"
    try:
        with Image.open(io.BytesIO(bytes(body))) as image:
            image.seek(0)  # the first frame of an animated image
            converted = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            out = io.BytesIO()
            converted.save(out, format="PNG")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return f"not a readable image ({exc})"
    _write_atomic(target, out.getvalue())
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def describe(exc: ModeldexError) -> str:
    """A note for a step that failed without failing the download."""
    return f"{exc.title}: {exc.message}"
