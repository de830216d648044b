"""Read-only helpers over a Header's keys and shapes, shared by every family's detector."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping

from modeldex.identify.readers.safetensors_reader import LazyTensors
from modeldex.identify.records import Header, TensorInfo


def fmt_shape(shape: Iterable[int]) -> str:
    """`[320, 768]`: the shape spelling used in evidence strings."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


class Probe:
    """Key and shape look-ups over one header (or one component of a diffusers folder).

    A file has up to thousands of keys and a library thousands of files, so no question costs a Python-level pass
    over the keys: prefix questions bisect a sorted list, substring questions search all keys joined into one
    string (both built on first use), and shapes come from the header without building `TensorInfo`s.
    """

    def __init__(
        self,
        tensors: Mapping[str, TensorInfo],
        metadata: dict[str, str] | None = None,
        values: dict[str, object] | None = None,
        fmt: str = "other",
    ) -> None:
        self.tensors = tensors
        self.metadata = metadata or {}
        self.values = values or {}
        self.format = fmt
        self._sorted: list[str] | None = None
        self._joined: str | None = None
        self._lazy = tensors if isinstance(tensors, LazyTensors) else None

    @classmethod
    def from_header(cls, header: Header) -> Probe:
        """A probe over a whole file's header."""
        values = header.extra.get("values")
        return cls(header.tensors, header.metadata, values if isinstance(values, dict) else {}, header.format)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def sorted_keys(self) -> list[str]:
        """Every key, sorted."""
        if self._sorted is None:
            self._sorted = sorted(self.tensors)
        return self._sorted

    @property
    def joined(self) -> str:
        """Every key, in header order, joined by newlines: a text without one is in a key iff it is in this."""
        if self._joined is None:
            self._joined = "\n".join(self.tensors)
        return self._joined

    def has(self, key: str) -> bool:
        return key in self.tensors

    def shape(self, key: str) -> tuple[int, ...] | None:
        if self._lazy is not None:
            return self._lazy.shape(key)
        info = self.tensors.get(key)
        return info.shape if info is not None else None

    def shapes(self, keys: Iterable[str]) -> Iterator[tuple[int, ...]]:
        """The shapes of `keys`, which must all exist, in order."""
        if self._lazy is not None:
            return self._lazy.shapes(keys)
        return (self.tensors[k].shape for k in keys)

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
        keys = self.sorted_keys
        start = bisect.bisect_left(keys, prefix)
        for key in keys[start:]:
            if not key.startswith(prefix):
                return
            yield key

    def has_prefix(self, prefix: str) -> bool:
        return next(self.with_prefix(prefix), None) is not None

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        keys = self.sorted_keys
        start = bisect.bisect_left(keys, prefix)
        if not prefix or ord(prefix[-1]) == 0x10FFFF:
            return start, start + sum(1 for _ in self.with_prefix(prefix))
        # The keys starting with a prefix lie before the prefix with its last character incremented.
        return start, bisect.bisect_left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1), start)

    def prefixed(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, in sorted order."""
        start, stop = self._prefix_range(prefix)
        return self.sorted_keys[start:stop]

    def count_prefixed(self, prefix: str) -> int:
        """How many keys start with `prefix` (two binary searches)."""
        start, stop = self._prefix_range(prefix)
        return stop - start

    def first_prefixed_containing(self, prefix: str, text: str) -> str | None:
        """The first key (sorted order) that starts with `prefix` and contains `text` (which holds no newline)."""
        keys = self.prefixed(prefix)
        if text not in "\n".join(keys):
            return None
        return next((k for k in keys if text in k), None)

    def first_containing(self, *texts: str) -> str | None:
        """The first key, in header order, that contains every one of `texts` (which hold no newline)."""
        # Longest first: the longer the text, the faster a search that fails.
        if not all(t in self.joined for t in sorted(texts, key=len, reverse=True)):
            return None
        return next((k for k in self.tensors if all(t in k for t in texts)), None)

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
