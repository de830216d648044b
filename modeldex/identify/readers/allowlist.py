"""Which pickle globals a model file may reference, A1111 `modules/safe.py`-strict.

Every allowed global is replaced by an inert stub when unpickling (see `unpickler.py`), so "allowed" is a statement
about what honest `torch.save` files contain, not about what would be safe to import: anything else makes the file
unsafe, and such a file is never unpickled.
"""

from __future__ import annotations

from modeldex.identify.readers.dtypes import TORCH_DTYPES, TORCH_STORAGES

_REBUILDERS = frozenset(
    {
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"),
    }
)

_EXACT = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch", "Size"),
        # Only ever the `new_type` argument of `_rebuild_from_type_v2`.
        ("torch", "Tensor"),
        ("torch.nn.parameter", "Parameter"),
        # Embeddings from the original textual-inversion code pickle `string_to_param` as a ParameterDict; A1111
        # allows exactly this one module class for them.
        ("torch.nn.modules.container", "ParameterDict"),
        ("torch.storage", "UntypedStorage"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
        ("argparse", "Namespace"),
    }
)

_HARMLESS_BUILTINS = frozenset({"set", "frozenset", "slice", "complex", "bytes", "bytearray"})
"""Constructors of plain values. Never eval, exec, getattr, open, compile, __import__, apply, breakpoint..."""

_INERT_PACKAGES = ("pytorch_lightning.callbacks", "lightning")
"""SD 1.x `.ckpt` files pickle Lightning's ModelCheckpoint under `callbacks`; they become inert objects."""


def is_rebuilder(module: str, name: str) -> bool:
    """A torch function that rebuilds a tensor or parameter from a storage reference."""
    return (module, name) in _REBUILDERS


def is_inert_package(module: str) -> bool:
    """A module whose classes may be reconstructed as inert placeholders (Lightning callbacks)."""
    return any(module == pkg or module.startswith(pkg + ".") for pkg in _INERT_PACKAGES)


def is_allowed(module: str, name: str) -> bool:
    """True when a model pickle may reference the global `module.name`."""
    if (module, name) in _EXACT or (module, name) in _REBUILDERS:
        return True
    if module == "torch":
        return name in TORCH_DTYPES or name in TORCH_STORAGES
    if module == "torch.cuda":
        return name in TORCH_STORAGES and name != "UntypedStorage"
    if module in ("builtins", "__builtin__"):
        return name in _HARMLESS_BUILTINS
    return is_inert_package(module)


def global_name(module: str, name: str) -> str:
    """The `module.name` spelling that reports use (Python 2's `__builtin__`, which protocol 2 writes, as `builtins`)."""
    return f"{'builtins' if module == '__builtin__' else module}.{name}"
