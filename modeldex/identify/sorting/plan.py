"""What a sort will do, decided before anything is touched: frozen dataclasses that dry-run prints and apply runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modeldex.identify.layouts import LayoutOptions

Mode = Literal["move", "copy", "link", "hardlink"]
MODES: tuple[Mode, ...] = ("move", "copy", "link", "hardlink")

Action = Literal["move", "copy", "link", "hardlink", "dedupe", "quarantine", "duplicate", "skip"]
"""`move`/`copy`/`link` (symlink)/`hardlink` place a file in the library; `dedupe` moves a duplicate source into the
trash; `quarantine` moves an unsafe file into the quarantine folder; `duplicate` and `skip` leave the file alone."""

FILE_ACTIONS: frozenset[str] = frozenset({"move", "copy", "link", "hardlink", "dedupe", "quarantine"})
"""Actions that change the file system (and so are journalled as pending work)."""


def operation_of(action: str) -> str:
    """The file-system operation behind an action: `move`, `copy`, `link` or `hardlink`."""
    if action in ("dedupe", "quarantine"):
        return "move"
    if action not in FILE_ACTIONS:
        raise ValueError(f"{action!r} changes no file")
    return action


@dataclass(frozen=True, slots=True)
class SortOptions:
    """Everything that shapes a plan besides the files themselves."""

    layout: LayoutOptions = field(default_factory=LayoutOptions)
    mode: Mode = "move"
    dedupe: bool = False
    """Move sources whose content is already in the library into `trash` (undo brings them back)."""
    quarantine: Path | None = None
    """Where unsafe pickles go; None leaves them where they are."""
    trash: Path | None = None
    """The trash folder for `dedupe` (inside the data folder); required when `dedupe` is set."""

    def to_json(self) -> dict[str, Any]:
        """The options as plain JSON values (stored with a journalled run)."""
        return {
            "layout": self.layout.layout,
            "by_base": self.layout.by_base,
            "lycoris_dir": self.layout.lycoris_dir,
            "mode": self.mode,
            "dedupe": self.dedupe,
            "quarantine": str(self.quarantine) if self.quarantine else None,
            "trash": str(self.trash) if self.trash else None,
        }


@dataclass(frozen=True, slots=True)
class SortAction:
    """One file and what happens to it."""

    source: Path
    destination: Path | None
    """Where it goes; for `duplicate`, the library file it duplicates; None when it stays and has no counterpart."""
    action: Action
    reason: str
    kind: str | None = None
    base: str | None = None
    usage: str | None = None
    """How to use the file once it is in place (`<lora:NAME:0.8>`...)."""
    sha256: str | None = None
    sidecar_of: Path | None = None
    """For a sidecar: the model file it travels with."""

    @property
    def changes_files(self) -> bool:
        return self.action in FILE_ACTIONS

    def to_json(self) -> dict[str, Any]:
        """The JSON Lines record of `sort --dry-run --json`."""
        return {
            "source": str(self.source),
            "destination": str(self.destination) if self.destination is not None else None,
            "action": self.action,
            "reason": self.reason,
            "kind": self.kind,
            "base": self.base,
            "usage": self.usage,
            "sha256": self.sha256,
            "sidecar_of": str(self.sidecar_of) if self.sidecar_of is not None else None,
        }


@dataclass(frozen=True, slots=True)
class SortPlan:
    """The complete decision for one `modeldex sort SOURCE --into ROOT`."""

    source: Path
    root: Path
    options: SortOptions
    actions: tuple[SortAction, ...]

    def counts(self) -> Counter[str]:
        """How many actions of each kind (sidecars included)."""
        return Counter(a.action for a in self.actions)

    def parents(self) -> dict[int, int]:
        """Index of each sidecar action -> index of its model's action."""
        index_of = {a.source: i for i, a in enumerate(self.actions) if a.sidecar_of is None}
        return {i: index_of[a.sidecar_of] for i, a in enumerate(self.actions) if a.sidecar_of is not None}
