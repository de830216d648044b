"""What a detector answers: the classification part of an Identification."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Classification:
    """kind/base/variant/prediction/algo plus the evidence that decided them (taxonomy.md values)."""

    kind: str = "unknown"
    base: str = "unknown"
    variant: str | None = None
    prediction: str | None = None
    algo: str | None = None
    evidence: list[str] = field(default_factory=list)
