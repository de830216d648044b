"""Turn unpickled contents into a `Header` (format "pickle"): flattened tensors, values, storages."""

from __future__ import annotations

from typing import Any

from modeldex.identify.readers.flatten import flatten
from modeldex.identify.readers.unpickler import PickleContents, StorageRef
from modeldex.identify.records import Header


def storage_table(storages: dict[str, StorageRef]) -> dict[str, dict[str, Any]]:
    """`Header.extra["storages"]`: storage key -> dtype, element count and the device it was saved from."""
    return {key: {"dtype": s.dtype, "numel": s.numel, "location": s.location} for key, s in storages.items()}


def unsafe_header(globals_: list[str], extra: dict[str, Any]) -> Header:
    """The header of a pickle that was not unpickled because of the globals it names."""
    return Header(format="pickle", unsafe_globals=sorted(set(globals_)), extra=extra)


def pickle_header(contents: PickleContents, extra: dict[str, Any]) -> Header:
    """The header for unpickled contents (or the unsafe header when they were refused)."""
    if contents.unsafe_globals:
        return unsafe_header(contents.unsafe_globals, extra)
    flat = flatten(contents.obj)
    extra = {**extra, "values": flat.values, "storages": storage_table(contents.storages)}
    if flat.skipped:
        extra["skipped_keys"] = flat.skipped
    return Header(format="pickle", tensors=flat.tensors, wrapper=flat.wrapper, extra=extra)
