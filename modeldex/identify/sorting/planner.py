"""Building a sort plan: walk SOURCE, leave partial downloads, identify and hash each file, pick its destination.

Nothing here changes a file. Names are chosen so that nothing is overwritten: a destination taken by other content
gets a numbered suffix (`name-1.safetensors`, with its sidecars renamed alike); the same content already in the
destination folder makes the file a duplicate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from pathlib import Path

from modeldex.errors import ModeldexError, SortError
from modeldex.identify.layouts import destination_folder, kind_folder
from modeldex.identify.records import Identification
from modeldex.identify.sorting.partial import growing_files, partial_reason
from modeldex.identify.sorting.plan import Action, SortAction, SortOptions, SortPlan
from modeldex.identify.sorting.sidecars import SIDECAR_SUFFIXES, attach_sidecars, looks_like_sidecar, model_stem
from modeldex.identify.sorting.usage import usage_hint

Identifier = Callable[[Path], Identification]
Hasher = Callable[[Path], str]


def _default_identify(path: Path) -> Identification:
    from modeldex.identify.identify import identify_path

    return identify_path(path)


def _default_sha256(path: Path) -> str:
    from modeldex.identify.hashing import hash_file

    return hash_file(path).sha256


@dataclass
class _Walk:
    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    """Diffusers folders: one unit each, never descended into."""
    links: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    """Folders that could not be listed, and why."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1  # gone since hashed: matches nothing in the library


def _utf8(path: Path) -> bool:
    """Whether a path has a faithful UTF-8 spelling (names with undecodable bytes carry surrogate escapes)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(source: Path, excluded: list[Path]) -> _Walk:
    found = _Walk()
    if not source.is_dir():
        if source.is_symlink():
            found.links.append(source)
            return found
        found.files.append(source)
        # A single file travels with its sidecars as it would in a folder sort; os.path.isfile, not Path.is_file:
        # a name at the length limit has no room for a suffix (ENAMETOOLONG).
        stem = model_stem(source)
        for suffix in SIDECAR_SUFFIXES:
            beside = source.with_name(stem + suffix)
            if beside != source and os.path.isfile(beside) and not os.path.islink(beside):
                found.files.append(beside)
        return found

    def unreadable(exc: OSError) -> None:
        found.unreadable.append((Path(exc.filename or source), exc.strerror or str(exc)))

    for top, dirs, files in os.walk(source, onerror=unreadable):
        here = Path(top)
        kept = []
        for name in sorted(dirs):
            sub = here / name
            if name.startswith(".") or any(_within(sub, ex) for ex in excluded):
                continue
            if sub.is_symlink():
                found.links.append(sub)
            elif (sub / "model_index.json").is_file() or (sub / "config.json").is_file():
                found.folders.append(sub)
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            (found.links if path.is_symlink() else found.files).append(path)
    return found


class _Names:
    """Destination names claimed by this plan or already on disk."""

    def __init__(self) -> None:
        self.claimed: set[Path] = set()

    def taken(self, path: Path) -> bool:
        return path in self.claimed or os.path.lexists(path)

    def claim_free(self, folder: Path, stem: str, suffix: str, extra_suffixes: list[str]) -> str:
        """The first of `stem`, `stem-1`, `stem-2`... under which the file and all its sidecars are free."""
        for n in count():
            candidate = stem if n == 0 else f"{stem}-{n}"
            names = [folder / (candidate + suffix)] + [folder / (candidate + s) for s in extra_suffixes]
            if not any(self.taken(p) for p in names):
                self.claimed.update(names)
                return candidate
        raise AssertionError("unreachable")


class _Library:
    """Finds content already in a destination folder: same size first, then SHA256 (each file hashed once)."""

    def __init__(self, sha256_of: Hasher) -> None:
        self.sha256_of = sha256_of
        self.by_size: dict[Path, dict[int, list[Path]]] = {}
        self.hashes: dict[Path, str] = {}
        self.planned: dict[tuple[Path, str], Path] = {}

    def _listing(self, folder: Path) -> dict[int, list[Path]]:
        if folder not in self.by_size:
            sizes: dict[int, list[Path]] = {}
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.name.startswith(".") or not entry.is_file() or not _utf8(Path(entry.path)):
                            continue
                        sizes.setdefault(entry.stat().st_size, []).append(Path(entry.path))
            except (FileNotFoundError, NotADirectoryError):
                pass
            self.by_size[folder] = {size: sorted(paths) for size, paths in sizes.items()}
        return self.by_size[folder]

    def same_content(self, folder: Path, size: int, sha256: str) -> Path | None:
        """A file in `folder` (or planned into it) with this content."""
        planned = self.planned.get((folder, sha256))
        if planned is not None:
            return planned
        for candidate in self._listing(folder).get(size, []):
            if candidate not in self.hashes:
                try:
                    self.hashes[candidate] = self.sha256_of(candidate)
                except (OSError, ModeldexError):
                    continue  # unreadable: it cannot be shown to hold this content
            if self.hashes[candidate] == sha256:
                return candidate
        return None


@dataclass
class _Planner:
    source: Path
    root: Path
    options: SortOptions
    identify: Identifier
    sha256_of: Hasher
    trash_run: Path | None
    names: _Names = field(default_factory=_Names)
    actions: list[SortAction] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.library = _Library(self.sha256_of)
        self.digests: dict[Path, str] = {}

    def readable(self, path: Path, ident: Identification, sidecars: list[Path]) -> bool:
        """Hash the file and its sidecars now; one that cannot be read keeps the whole group where it is."""
        try:
            for item in (path, *sidecars):
                if item not in self.digests:
                    self.digests[item] = self.sha256_of(item)
        except (OSError, ModeldexError) as exc:
            message = exc.message if isinstance(exc, ModeldexError) else f"{exc.strerror or exc}"
            self.skip(path, f"could not be read ({message}): left in place", ident, sidecars)
            return False
        return True

    def skip(self, path: Path, reason: str, ident: Identification | None = None, sidecars: Iterable[Path] = ()) -> None:
        kind = ident.kind if ident else None
        base = ident.base if ident else None
        self.actions.append(SortAction(path, None, "skip", reason, kind=kind, base=base))
        for sidecar in sidecars:
            self.actions.append(
                SortAction(sidecar, None, "skip", "sidecar: stays with its model", kind, base, sidecar_of=path)
            )

    def model(self, path: Path, ident: Identification, sidecars: list[Path]) -> None:
        if ident.error:
            self.skip(path, f"not readable as a model: {ident.error}", ident, sidecars)
        elif ident.unsafe:
            globals_ = ", ".join(ident.unsafe_globals) or "globals outside the allow-list"
            if self.options.quarantine is None:
                self.skip(
                    path, f"unsafe pickle ({globals_}): left in place (--quarantine DIR moves it)", ident, sidecars
                )
            else:
                self.relocate(
                    path, ident, sidecars, self.options.quarantine, "quarantine", f"unsafe pickle ({globals_})"
                )
        elif ident.kind == "unknown":
            self.skip(path, "not recognised as a model: left in place", ident, sidecars)
        else:
            self.place(path, ident, sidecars)

    def place(self, path: Path, ident: Identification, sidecars: list[Path]) -> None:
        layout = self.options.layout
        relative = destination_folder(ident.kind, ident.base, ident.algo, layout)
        if relative is None:
            self.skip(
                path, f"the {layout.layout} layout has no folder for {ident.kind}: left in place", ident, sidecars
            )
            return
        folder = self.root / relative
        # Inside its kind's folder (any sub-folder the user made) is in place; with --by-base, inside its base's.
        home = folder if layout.by_base else self.root / (kind_folder(ident.kind, ident.algo, layout) or relative)
        if _within(path.parent, home):
            self.skip(path, "already in place", ident, sidecars)
            return
        if not self.readable(path, ident, sidecars):
            return
        sha256 = self.digests[path]
        existing = self.library.same_content(folder, _size(path), sha256)
        if existing is not None:
            self.duplicate(path, ident, sidecars, existing, sha256)
            return
        stem = self.claim(folder, path, sidecars)
        destination = folder / (stem + path.suffix)
        self.library.planned[(folder, sha256)] = destination
        reason = f"{ident.kind} ({ident.base})"
        usage = self.usage(ident, destination)
        self.add(path, destination, self.options.mode, reason, ident, usage, sha256, sidecars, stem)

    def duplicate(self, path: Path, ident: Identification, sidecars: list[Path], existing: Path, sha256: str) -> None:
        usage = self.usage(ident, existing)
        if not self.options.dedupe or self.trash_run is None:
            reason = f"duplicate: same SHA256 as {existing}; the source is kept (--dedupe moves it to the trash)"
            self.actions.append(SortAction(path, existing, "duplicate", reason, ident.kind, ident.base, usage, sha256))
            for sidecar in sidecars:
                self.actions.append(
                    SortAction(sidecar, None, "skip", "sidecar of a duplicate: stays with it", sidecar_of=path)
                )
            return
        stem = self.claim(self.trash_run, path, sidecars)
        destination = self.trash_run / (stem + path.suffix)
        reason = f"duplicate of {existing}: moved to the trash (undo brings it back)"
        self.actions.append(SortAction(path, destination, "dedupe", reason, ident.kind, ident.base, usage, sha256))
        for sidecar in sidecars:
            suffix = sidecar.name[len(model_stem(path)) :]
            beside = existing.parent / (model_stem(existing) + suffix)
            if not self.names.taken(beside):
                self.names.claimed.add(beside)  # (its trash name stays claimed too: harmless)
                reason = f"sidecar of a duplicate: joins {existing.name}"
                self.actions.append(
                    SortAction(sidecar, beside, "move", reason, sha256=self.digests[sidecar], sidecar_of=path)
                )
            else:
                target = self.trash_run / (stem + suffix)
                reason = "sidecar of a duplicate: to the trash with it"
                self.actions.append(
                    SortAction(sidecar, target, "dedupe", reason, sha256=self.digests[sidecar], sidecar_of=path)
                )

    def relocate(
        self, path: Path, ident: Identification, sidecars: list[Path], folder: Path, action: Action, reason: str
    ) -> None:
        if not self.readable(path, ident, sidecars):
            return
        stem = self.claim(folder, path, sidecars)
        destination = folder / (stem + path.suffix)
        self.add(path, destination, action, reason, ident, None, self.digests[path], sidecars, stem)

    def claim(self, folder: Path, path: Path, sidecars: list[Path]) -> str:
        suffixes = [s.name[len(model_stem(path)) :] for s in sidecars]
        return self.names.claim_free(folder, model_stem(path), path.suffix, suffixes)

    def add(
        self,
        path: Path,
        destination: Path,
        action: Action,
        reason: str,
        ident: Identification,
        usage: str | None,
        sha256: str,
        sidecars: list[Path],
        stem: str,
    ) -> None:
        self.actions.append(SortAction(path, destination, action, reason, ident.kind, ident.base, usage, sha256))
        for sidecar in sidecars:
            target = destination.parent / (stem + sidecar.name[len(model_stem(path)) :])
            self.actions.append(
                SortAction(
                    sidecar, target, action, f"sidecar of {path.name}", sha256=self.digests[sidecar], sidecar_of=path
                )
            )

    def usage(self, ident: Identification, placed: Path) -> str | None:
        layout = self.options.layout
        top = kind_folder(ident.kind, ident.algo, layout)
        listed = None
        if top is not None and _within(placed, self.root / top):
            listed = placed.relative_to(self.root / top).as_posix()
        return usage_hint(ident.kind, placed, variant=ident.variant, layout=layout.layout, listed_as=listed)


def plan_sort(
    source: Path,
    root: Path,
    options: SortOptions,
    *,
    identify: Identifier | None = None,
    sha256_of: Hasher | None = None,
    settle: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SortPlan:
    """Decide what `sort SOURCE --into ROOT` does with every file under SOURCE; changes nothing.

    `settle` is how long recently modified files are watched for growth (downloads still being written).
    Raises `SortError` when SOURCE or ROOT is missing or the options contradict each other.
    """
    source, root = Path(os.path.abspath(source)), Path(os.path.abspath(root))
    if not os.path.lexists(source):
        raise SortError(f"{source} does not exist")
    if not root.is_dir():
        what = "is not a folder" if os.path.lexists(root) else "does not exist"
        raise SortError(f"the library folder {root} {what} (it must be the WebUI or ComfyUI folder)")
    for folder in (source, root, options.quarantine, options.trash):
        if folder is not None and not _utf8(folder):
            raise SortError(f"{folder!s:.200} has a name that is not valid UTF-8; the sort journal cannot record it")
    if options.dedupe and (options.mode != "move" or options.trash is None):
        raise SortError("--dedupe moves duplicate sources to the trash: it works only when moving files")
    trash_run = None
    if options.dedupe and options.trash is not None:
        trash_run = Path(os.path.abspath(options.trash)) / datetime.now().strftime("sort-%Y%m%d-%H%M%S-%f")
    excluded = [p for p in (root, options.quarantine, options.trash) if p is not None]
    excluded = [Path(os.path.abspath(p)) for p in excluded if Path(os.path.abspath(p)) != source]
    walk = _walk(source, [p for p in excluded if _within(p, source)])
    planner = _Planner(source, root, options, identify or _default_identify, sha256_of or _default_sha256, trash_run)

    # (path, what to do, reason): decided first, then carried out in path order so names are claimed stably.
    entries: list[tuple[Path, str, str]] = [(p, "skip", "a symbolic link: left in place") for p in walk.links]
    entries += [(p, "skip", "a diffusers folder: WebUIs load single files; left in place") for p in walk.folders]
    entries += [(p, "skip", f"folder could not be read ({why})") for p, why in walk.unreadable]
    candidates: list[Path] = []
    loose: list[Path] = []
    for path in walk.files:
        why = "hidden file" if path.name.startswith(".") and path != source else partial_reason(path)
        if why is None and not _utf8(path):
            why = "its name is not valid UTF-8, which the journal cannot record (rename it)"
        if why is not None:
            entries.append((path, "skip", f"{why}: left in place"))
        elif looks_like_sidecar(path):
            loose.append(path)
        else:
            candidates.append(path)
    owned = attach_sidecars(candidates, loose)
    claimed = {s for group in owned.values() for s in group}
    lone = "no model file with this name beside it: left in place"
    if not source.is_dir():
        lone = "a sidecar file: left in place (sort its model file and the sidecar travels with it)"
    entries += [(p, "skip", lone) for p in loose if p not in claimed]
    growing = growing_files(candidates, settle, sleep=sleep)
    for path in candidates:
        if path in growing:
            entries.append((path, "growing", "still being written (its size changed while watched): left in place"))
        else:
            entries.append((path, "model", ""))
    for path, what, reason in sorted(entries, key=lambda e: str(e[0])):
        if what == "model":
            planner.model(path, planner.identify(path), owned[path])
        else:
            planner.skip(path, reason, sidecars=owned.get(path, ()))
    return SortPlan(source, root, options, tuple(planner.actions))
