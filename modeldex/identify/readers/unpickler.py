"""A restricted unpickler that turns a torch pickle into tensor descriptions, never running anything from the file.

`find_class` is the only way a pickle can name a callable, so mapping every allowed global to an inert stub and
refusing the rest means a file can at most build plain containers and call our stubs. Tensors come back as
`TensorInfo` (shape, dtype, storage key, offset, stride) and storages as `StorageRef`; no tensor data is read.

This is the C `pickle.Unpickler` (about 2 ms for an SD 1.x checkpoint's 1,100 tensors), so it doubles as the
globals check on the common path: if it finishes, every global it met was allowed. Only when it stops do we walk
the opcodes (`pickle_scan`) to list every offending global. Before it runs, `pickle_bounds` walks the opcodes
once (about 1 ms for that checkpoint) to refuse memo indices the C unpickler would turn into gigabytes.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import re
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from modeldex.errors import ReadError
from modeldex.identify.readers.allowlist import global_name, is_allowed, is_rebuilder
from modeldex.identify.readers.dtypes import NUMPY_CODES, TORCH_DTYPES, TORCH_STORAGES
from modeldex.identify.readers.pickle_bounds import Bounds, walk_pickle
from modeldex.identify.readers.pickle_scan import ScanResult, scan_globals
from modeldex.identify.records import TensorInfo

UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    OverflowError,
    MemoryError,
    RecursionError,
    struct.error,
)
"""What the C unpickler (or one of our stubs) raises on a malformed pickle."""


class ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; unpickling stops before it is resolved."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"forbidden global {module}.{name}")
        self.name = global_name(module, name)


@dataclass(slots=True)
class StorageRef:
    """A storage a pickle's persistent id points at: a zip member `data/<key>` or a legacy-format record."""

    key: str
    dtype: str
    numel: int
    location: str
    offset: int = 0
    """Elements into the root storage (legacy view storages only)."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True, slots=True)
class _Dtype:
    dtype: str


class Inert:
    """Stands in for any allowed class: records its arguments and state, does nothing else."""

    qualname: ClassVar[str] = "inert"
    args: tuple[Any, ...] = ()
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class NumpyDtype(Inert):
    """`numpy.dtype(code, align, copy)` plus its pickled state (byte order)."""

    qualname = "numpy.dtype"

    @property
    def code(self) -> str:
        return self.args[0] if self.args and isinstance(self.args[0], str) else ""

    @property
    def byteorder(self) -> str:
        state = self.state
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            return str(state[1])
        return "<"


class NumpyArray(Inert):
    """`numpy.core.multiarray._reconstruct(...)` then `__setstate__((version, shape, dtype, fortran, data))`."""

    qualname = "numpy.ndarray"

    def as_tensor(self) -> TensorInfo | None:
        state = self.state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            return None
        shape, dtype = (state[1], state[2]) if len(state) == 5 else (state[0], state[1])
        if not isinstance(dtype, NumpyDtype) or not _is_int_tuple(shape):
            return None
        return TensorInfo(shape=tuple(shape), dtype=NUMPY_CODES.get(dtype.code, dtype.code.upper() or "UNKNOWN"))


_INT_ONLY = frozenset({int})


def _is_int_tuple(value: Any) -> bool:
    # Built from C-level calls: this runs once per tensor, thousands of times per checkpoint.
    return type(value) in (tuple, list) and _INT_ONLY.issuperset(map(type, value)) and (not value or min(value) >= 0)


def _bad(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"malformed {what}")


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> TensorInfo:
    # Once per tensor, thousands of times per checkpoint: the checks are inlined C-level calls.
    if type(storage) is not StorageRef or type(offset) is not int or offset < 0:
        raise _bad("tensor storage")
    if type(size) not in (tuple, list) or not _INT_ONLY.issuperset(map(type, size)) or (size and min(size) < 0):
        raise _bad("tensor shape")
    if type(stride) not in (tuple, list) or not _INT_ONLY.issuperset(map(type, stride)):
        raise _bad("tensor stride")
    return TensorInfo(tuple(size), storage.dtype, storage.key, storage.offset + offset, tuple(stride))


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, _grad: Any = None, _hooks: Any = None, dtype: Any = None, *_: Any
) -> TensorInfo:
    if not isinstance(dtype, _Dtype):
        raise _bad("tensor dtype")
    return dataclasses.replace(_rebuild_tensor_v2(storage, offset, size, stride), dtype=dtype.dtype or storage.dtype)


def _rebuild_parameter(data: Any, *_rest: Any) -> TensorInfo:
    if not isinstance(data, TensorInfo):
        raise _bad("parameter")
    return data


_REBUILD_STUBS = {
    "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_tensor_v3": _rebuild_tensor_v3,
    "_rebuild_parameter": _rebuild_parameter,
    "_rebuild_parameter_with_state": _rebuild_parameter,
}


def _rebuild_from_type_v2(func: Any, _new_type: Any, args: Any, _state: Any = None) -> TensorInfo:
    if func not in _REBUILD_STUBS.values() or not isinstance(args, tuple):
        raise _bad("tensor subclass")
    result: TensorInfo = func(*args)
    return result


def _size(*args: Any) -> tuple[int, ...]:
    if len(args) != 1 or not _is_int_tuple(args[0]):
        raise _bad("torch.Size")
    return tuple(args[0])


_SAFE_ENCODINGS = frozenset({"latin1", "latin-1", "utf-8", "utf8", "ascii"})


def _encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Only the plain encodings numpy's pickles use: looking up any other codec name imports modules.
    if not isinstance(obj, str) or encoding not in _SAFE_ENCODINGS or errors != "strict":
        raise _bad("_codecs.encode call")
    return obj.encode(encoding)


def _bytes_from(*args: Any) -> bytes:
    # bytes(10**12) would allocate: only accept the () / (text, encoding) / (bytes or list) forms pickles use.
    if len(args) == 2 and isinstance(args[0], str) and args[1] in _SAFE_ENCODINGS:
        return bytes(args[0], args[1])
    if len(args) == 1 and isinstance(args[0], bytes | bytearray | list):
        return bytes(args[0])
    if not args:
        return b""
    raise _bad("bytes call")


def _bytearray(*args: Any) -> bytearray:
    return bytearray(_bytes_from(*args))


_NUMPY_SCALAR_CODE = re.compile(r"^[biufc][0-9]{1,2}$")


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar decoded to a Python number when it is a plain numeric type; an inert value otherwise."""
    if isinstance(dtype, NumpyDtype) and isinstance(data, bytes) and _NUMPY_SCALAR_CODE.match(dtype.code):
        import numpy  # numpy scalars are rare in model files; keep it off the import path

        try:
            np_dtype = numpy.dtype(dtype.byteorder.replace("|", "<") + dtype.code)
            return numpy.frombuffer(data, dtype=np_dtype, count=1).item()
        except (TypeError, ValueError):
            pass
    return Inert(dtype, data)


_BUILTINS: dict[str, Any] = {
    "set": set,
    "frozenset": frozenset,
    "slice": slice,
    "complex": complex,
    "bytes": _bytes_from,
    "bytearray": _bytearray,
}


_STUBS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _encode,
    ("numpy", "dtype"): NumpyDtype,
    ("numpy", "ndarray"): NumpyArray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): NumpyArray,
    ("numpy._core.multiarray", "_reconstruct"): NumpyArray,
}
"""Allowed globals with a working stand-in; every other allowed class becomes an `Inert` placeholder."""


class RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler with every global replaced by a stub and persistent ids read as storage references."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, StorageRef] = {}
        self._classes: dict[tuple[str, str], type[Inert]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if not is_allowed(module, name):
            raise ForbiddenGlobal(module, name)
        if is_rebuilder(module, name):
            return _REBUILD_STUBS.get(name, _rebuild_from_type_v2)
        if module in ("torch", "torch.cuda", "torch.storage"):
            if name in TORCH_STORAGES:
                return _StorageType(TORCH_STORAGES[name])
            if name in TORCH_DTYPES:
                return _Dtype(TORCH_DTYPES[name])
            if name == "Size":
                return _size
        if module in ("builtins", "__builtin__"):
            return _BUILTINS[name]
        stub = _STUBS.get((module, name))
        return stub if stub is not None else self._inert_class(module, name)

    def _inert_class(self, module: str, name: str) -> type[Inert]:
        key = (module, name)
        cls = self._classes.get(key)
        if cls is None:
            cls = type(name if name.isidentifier() else "Inert", (Inert,), {"qualname": global_name(module, name)})
            self._classes[key] = cls
        return cls

    def persistent_load(self, pid: Any) -> StorageRef:
        # zip format: ('storage', type, key, location, numel); legacy adds view_metadata (view_key, offset, size).
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise _bad("persistent id")
        _, storage_type, key, location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType) or type(numel) is not int or numel < 0:
            raise _bad("storage reference")
        key = str(key) if isinstance(key, str | int) else None
        if key is None or not isinstance(location, str):
            raise _bad("storage reference")
        root = self.storages.get(key)
        if root is None:  # the first reference to a storage defines it
            root = self.storages[key] = StorageRef(key, storage_type.dtype, numel, location)
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and type(view[1]) is int and type(view[2]) is int):
            raise _bad("storage view")
        return StorageRef(root.key, root.dtype, view[2], root.location, offset=view[1])


@dataclass(slots=True)
class PickleContents:
    """One unpickled object, or the reason it was not unpickled."""

    obj: Any = None
    storages: dict[str, StorageRef] = field(default_factory=dict)
    unsafe_globals: list[str] = field(default_factory=list)


def _unsafe_or_damaged(rescan: ScanResult, culprit: str | None, problem: str, *, what: str) -> PickleContents:
    found = set(rescan.unsafe)
    if culprit:
        found.add(culprit)
    if found:
        return PickleContents(unsafe_globals=sorted(found))
    raise ReadError(f"{what} is damaged or truncated ({problem})")


def _memo_overflow(data: bytes, bounds: Bounds, what: str) -> PickleContents:
    problem = f"memo index {bounds.max_memo:,} beyond the end of its {bounds.end:,} bytes"
    return _unsafe_or_damaged(scan_globals(data[: bounds.end]), None, problem, what=what)


def _unpickle(data: bytes, what: str) -> PickleContents:
    # Buffered: the C unpickler reads a plain BytesIO a few bytes at a time, three times slower.
    unpickler = RestrictedUnpickler(io.BufferedReader(io.BytesIO(data), buffer_size=1 << 20))
    try:
        obj = unpickler.load()
    except ForbiddenGlobal as exc:
        return _unsafe_or_damaged(scan_globals(data), exc.name, str(exc), what=what)
    except UNPICKLE_ERRORS as exc:
        return _unsafe_or_damaged(scan_globals(data), None, str(exc) or type(exc).__name__, what=what)
    return PickleContents(obj=obj, storages=unpickler.storages)


def load_pickle_bytes(data: bytes, *, what: str = "the pickle") -> PickleContents:
    """Unpickle `data` with stubs; an unsafe pickle comes back with `unsafe_globals` and no object.

    A memo index past the pickle's end (which would make the C unpickler allocate 16 bytes per unit of the index)
    is refused first, as damage, or listed as unsafe if the pickle names a forbidden global.
    """
    bounds = walk_pickle(data)
    if bounds.memo_overflow:
        return _memo_overflow(data, bounds, what)
    return _unpickle(data, what)


MAX_STREAM_PICKLE = 256 << 20
"""A pickle inside a stream is read whole before unpickling; a legacy torch object pickle is a few MB at most."""


def load_pickle_stream(stream: BinaryIO, *, what: str = "the pickle") -> PickleContents:
    """Like `load_pickle_bytes` for the pickle that starts at the stream's position (legacy torch files).

    On success the stream is left just past the pickle's STOP, ready for the next one.
    """
    start = stream.tell()
    data = stream.read(1 << 20)
    while True:
        bounds = walk_pickle(data)
        if bounds.complete or bounds.needs <= len(data):
            break  # STOP, or an opcode the unpickler will refuse
        want = max(bounds.needs, 2 * len(data))
        if want > MAX_STREAM_PICKLE:
            raise ReadError(f"{what} is more than {MAX_STREAM_PICKLE >> 20} MB long: not a model file's pickle")
        more = stream.read(want - len(data))
        if not more:
            break  # truncated: the unpickler says where
        data += more
    if bounds.memo_overflow:
        return _memo_overflow(data, bounds, what)
    contents = _unpickle(data[: bounds.end] if bounds.complete else data, what)
    stream.seek(start + bounds.end)
    return contents


__all__ = [
    "ForbiddenGlobal",
    "Inert",
    "NumpyArray",
    "PickleContents",
    "RestrictedUnpickler",
    "StorageRef",
    "load_pickle_bytes",
    "load_pickle_stream",
]
