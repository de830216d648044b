"""Read-only helpers over a Header's keys and shapes, shared by every family's detector."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from modeldex.identify.records import Header, TensorInfo


def fmt_shape(shape: Iterable[int]) -> str:
    """`[320, 768]`: the shape spelling used in evidence strings."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


class Probe:
    """Key and shape look-ups over one header (or one component of a diffusers folder).

    Keys are kept in a sorted list so that prefix questions cost a binary search, not a scan:
    a full checkpoint has over a thousand keys and a classification asks dozens of questions.
    """

    def __init__(
        self,
        tensors: dict[str, TensorInfo],
        metadata: dict[str, str] | None = None,
        values: dict[str, object] | None = None,
        fmt: str = "other",
    ) -> None:
        self.tensors = tensors
        self.metadata = metadata or {}
        self.values = values or {}
        self.format = fmt
        self.sorted_keys = sorted(tensors)

    @classmethod
    def from_header(cls, header: Header) -> Probe:
        """A probe over a whole file's header."""
        values = header.extra.get("values")
        return cls(header.tensors, header.metadata, values if isinstance(values, dict) else {}, header.format)

    def __len__(self) -> int:
        return len(self.tensors)

    def has(self, key: str) -> bool:
        return key in self.tensors

    def shape(self, key: str) -> tuple[int, ...] | None:
        info = self.tensors.get(key)
        return info.shape if info is not None else None

    def dim(self, key: str, index: int) -> int | None:
        """One dimension of a tensor's shape, or None when the key or the dimension is missing."""
        shape = self.shape(key)
        if shape is None or not -len(shape) <= index < len(shape):
            return None
        return shape[index]

    def ev(self, key: str) -> str:
        """Evidence string for a key: the key and its shape."""
        shape = self.shape(key)
        return key if shape is None else f"{key} {fmt_shape(shape)}"

    def with_prefix(self, prefix: str) -> Iterator[str]:
        """Keys starting with `prefix`, in sorted order."""
        start = bisect.bisect_left(self.sorted_keys, prefix)
        for key in self.sorted_keys[start:]:
            if not key.startswith(prefix):
                return
            yield key

    def has_prefix(self, prefix: str) -> bool:
        return next(self.with_prefix(prefix), None) is not None

    def first_present(self, keys: Iterable[str]) -> str | None:
        """The first of `keys` that exists."""
        return next((k for k in keys if k in self.tensors), None)

    def max_index(self, prefix: str, suffix: str, limit: int = 128) -> int:
        """Highest N such that `prefix + N + suffix` exists, or -1 (for layer and block counts)."""
        found = -1
        for i in range(limit):
            if f"{prefix}{i}{suffix}" in self.tensors:
                found = i
        return found
