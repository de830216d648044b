"""The restricted unpickler on hand-made pickles: legacy view storages, malformed rebuild calls, unresolvable globals."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

from modeldex.errors import ReadError
from modeldex.identify.readers import read_header
from modeldex.identify.readers.unpickler import load_pickle_bytes


class _Storage:
    """Stands for a storage in the pickle: its persistent id is whatever the test says."""

    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class _Rebuild:
    """Pickles as a call of a real torch rebuild function with the given arguments."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, _Storage) else None


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def rebuild(storage: _Storage, offset: Any, size: Any, stride: Any) -> _Rebuild:
    return _Rebuild(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, OrderedDict())


def test_legacy_view_storage() -> None:
    # Pre-1.0 legacy files name a view of a root storage: ('storage', type, root, location, size, (view, offset, n)).
    root = _Storage(("storage", torch.FloatStorage, "root", "cuda:0", 100, None))
    view = _Storage(("storage", torch.FloatStorage, "root", "cuda:0", 100, ("view", 10, 20)))
    contents = load_pickle_bytes(
        dumps({"whole": rebuild(root, 0, (100,), (1,)), "part": rebuild(view, 2, (4, 5), (5, 1))})
    )

    assert contents.unsafe_globals == []
    part, whole = contents.obj["part"], contents.obj["whole"]
    assert (part.storage_key, part.storage_offset, part.shape) == ("root", 12, (4, 5))
    assert (whole.storage_key, whole.storage_offset) == ("root", 0)
    assert contents.storages["root"].numel == 100
    assert contents.storages["root"].location == "cuda:0"


@pytest.mark.parametrize(
    "obj",
    [
        rebuild(_Storage(("storage", torch.FloatStorage, "0", "cpu", 4)), -1, (2,), (1,)),  # negative offset
        rebuild(_Storage(("storage", torch.FloatStorage, "0", "cpu", 4)), 0, (2, -3), (1,)),  # negative dim
        rebuild(_Storage(("storage", torch.FloatStorage, "0", "cpu", 4)), 0, (True,), (1,)),  # bool is no dim
        rebuild(_Storage(("storage", torch.FloatStorage, "0", "cpu", 4)), 0, (2,), "x"),  # stride
        _Rebuild(torch._utils._rebuild_tensor_v2, "not a storage", 0, (2,), (1,), False, OrderedDict()),
        rebuild(_Storage(("module", torch.FloatStorage, "0", "cpu", 4)), 0, (2,), (1,)),  # not a storage id
        rebuild(_Storage(("storage", torch.float16, "0", "cpu", 4)), 0, (2,), (1,)),  # a dtype, not a storage type
        rebuild(_Storage(("storage", torch.FloatStorage, "0", "cpu", -4)), 0, (2,), (1,)),  # negative size
        _Rebuild(torch._utils._rebuild_parameter, "not a tensor", False, OrderedDict()),
        _Rebuild(torch.Size, "abc"),
        _Rebuild(bytearray, 10**12),  # would allocate a terabyte if the stub passed it through
        _Rebuild(bytes, 10**12),
    ],
    ids=[
        "offset",
        "dim",
        "bool-dim",
        "stride",
        "storage",
        "pid-kind",
        "pid-type",
        "numel",
        "parameter",
        "size",
        "bytearray",
        "bytes",
    ],
)
def test_malformed_calls_are_read_errors(tmp_path: Path, obj: Any) -> None:
    path = tmp_path / "crafted.pkl"
    path.write_bytes(dumps({"x": obj}))
    with pytest.raises(ReadError, match="damaged or truncated"):
        read_header(path)


def test_unresolvable_stack_global_is_unsafe(tmp_path: Path) -> None:
    # STACK_GLOBAL on two lists: nothing names a global, so the scan cannot say what it would have loaded.
    path = tmp_path / "odd.pkl"
    path.write_bytes(b"\x80\x04]]\x93.")
    assert read_header(path).unsafe_globals == ["unknown.unknown"]


def test_extension_registry_opcode_is_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "ext.pkl"
    path.write_bytes(b"\x80\x02\x82\x01.")  # EXT1 1: a global named by number through copyreg
    assert read_header(path).unsafe_globals == ["unknown.unknown"]


def test_codecs_encode_only_plain_encodings(tmp_path: Path) -> None:
    import codecs

    path = tmp_path / "codec.pkl"
    path.write_bytes(dumps({"x": _Rebuild(codecs.encode, "abc", "rot13")}))
    with pytest.raises(ReadError, match="damaged or truncated"):
        read_header(path)
    path.write_bytes(dumps({"x": _Rebuild(codecs.encode, "abc", "latin1")}))
    assert read_header(path).extra["skipped_keys"] == ["x"]
