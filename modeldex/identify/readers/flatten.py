"""From an unpickled object to flat tensor keys, the wrapper it came in, and the plain values beside it.

Nested dicts are joined with "." (`image_proj.proj.weight`), list and tuple items by index (a hypernetwork's
`768.0.linear.0.weight`), a bare tensor is the key "". Lightning's `state_dict` and the usual wrappers are unwrapped
(spandrel `canonicalize` does the same) and a `module.` prefix on every key (DataParallel) is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldex.errors import ReadError
from modeldex.identify.readers.unpickler import Inert, NumpyArray
from modeldex.identify.records import TensorInfo

WRAPPERS = ("state_dict", "params_ema", "params-ema", "params", "model", "net", "module", "model_state_dict")
"""Keys whose dict holds the real weights, in order of preference (EMA weights before raw ones)."""

MAX_OBJECTS = 2_000_000
"""Objects visited per file. Pickles share references, so a small file can describe an exponentially large tree."""
MAX_DEPTH = 64
_PLAIN_ITEMS = 256
_PLAIN_DEPTH = 4


class _NotPlain(Exception):
    """A value is not a small tree of str/int/float/bool/None."""


@dataclass(slots=True)
class Flattened:
    """What `flatten` found in a pickled object."""

    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    wrapper: str | None = None
    skipped: list[str] = field(default_factory=list)
    """Top-level keys that were neither weights nor plain values (optimizer states, callbacks...)."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_OBJECTS

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ReadError(f"the pickle describes more than {MAX_OBJECTS:,} objects; not a model file")


def _as_tensor(obj: Any) -> TensorInfo | None:
    if isinstance(obj, TensorInfo):
        return obj
    if isinstance(obj, NumpyArray):
        return obj.as_tensor()
    return None


def _parameters_of(obj: Inert) -> Mapping[Any, Any] | None:
    # A pickled torch.nn.ParameterDict (old textual-inversion embeddings) keeps its entries in `_parameters`.
    state = obj.state
    if isinstance(state, dict) and isinstance(state.get("_parameters"), dict):
        params: Mapping[Any, Any] = state["_parameters"]
        return params
    return None


def _children(obj: Any) -> Iterator[tuple[Any, Any]] | None:
    if isinstance(obj, dict):
        return iter(list(obj.items()))
    if isinstance(obj, list | tuple):
        return enumerate(obj)
    if isinstance(obj, Inert):
        params = _parameters_of(obj)
        if params is not None:
            return iter(list(params.items()))
    return None


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, bool | int | float) or key is None:
        return str(key)
    return type(key).__name__


def _walk(obj: Any, prefix: str, out: dict[str, TensorInfo], budget: _Budget, path: set[int]) -> None:
    budget.spend()
    tensor = _as_tensor(obj)
    if tensor is not None:
        out[prefix] = tensor
        return
    children = _children(obj)
    if children is None or id(obj) in path:
        return
    if len(path) >= MAX_DEPTH:
        raise ReadError(f"the pickle nests containers more than {MAX_DEPTH} deep; not a model file")
    path.add(id(obj))
    for key, value in children:
        name = _key(key)
        if type(value) is TensorInfo:  # what the call below would do for it, without the call
            budget.spend()
            out[f"{prefix}.{name}" if prefix else name] = value
        else:
            _walk(value, f"{prefix}.{name}" if prefix else name, out, budget, path)
    path.discard(id(obj))


def _tensors_in(obj: Any, budget: _Budget) -> dict[str, TensorInfo]:
    out: dict[str, TensorInfo] = {}
    _walk(obj, "", out, budget, set())
    return out


def _plain(value: Any, budget: _Budget, depth: int = 0) -> Any:
    budget.spend()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= _PLAIN_DEPTH:
        raise _NotPlain
    if isinstance(value, list | tuple):
        if len(value) > _PLAIN_ITEMS:
            raise _NotPlain
        return [_plain(v, budget, depth + 1) for v in value]
    if isinstance(value, dict):
        if len(value) > _PLAIN_ITEMS or not all(isinstance(k, str | int) for k in value):
            raise _NotPlain
        return {str(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    raise _NotPlain


def _mapping(obj: Any) -> Mapping[Any, Any] | None:
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, Inert):
        return _parameters_of(obj)
    return None


def _strip_module_prefix(tensors: dict[str, TensorInfo]) -> dict[str, TensorInfo]:
    if tensors and all(k.startswith("module.") for k in tensors):
        return {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def flatten(obj: Any) -> Flattened:
    """Flatten an unpickled object: see the module docstring for the rules."""
    budget = _Budget()
    result = Flattened()
    root = _mapping(obj)
    if root is None:
        try:
            result.values[""] = _plain(obj, budget)
        except _NotPlain:
            result.tensors = _strip_module_prefix(_tensors_in(obj, budget))
        return result

    for wrapper in WRAPPERS:
        if wrapper in root and _mapping(root[wrapper]) is not None:
            inner = _tensors_in(root[wrapper], budget)
            if inner:
                result.tensors, result.wrapper = inner, wrapper
                break

    for key, value in list(root.items()):
        name = _key(key)
        if name == result.wrapper:
            continue
        if type(value) is TensorInfo:  # a flat state dict: what `_plain` and `_tensors_in` would do, without them
            budget.spend()
            if result.wrapper is not None:
                result.skipped.append(name)
            else:
                budget.spend()
                result.tensors[name] = value
            continue
        try:
            result.values[name] = _plain(value, budget)
            continue
        except _NotPlain:
            pass
        if result.wrapper is not None:
            result.skipped.append(name)
            continue
        found = _tensors_in(value, budget)
        if not found:
            result.skipped.append(name)
        for sub, tensor in found.items():
            result.tensors[f"{name}.{sub}" if sub else name] = tensor
    result.tensors = _strip_module_prefix(result.tensors)
    return result
