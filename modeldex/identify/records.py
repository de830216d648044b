"""The dataclasses that the readers, the classifier, the hasher and the sorter exchange.

`Identification` is the `identify` contract of taxonomy.md: its `to_json()` emits exactly those fields in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["safetensors", "pickle", "gguf", "diffusers", "other"]


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor as a header describes it; no data is read."""

    shape: tuple[int, ...]
    dtype: str
    """safetensors spelling (`F16`, `BF16`, `F32`, `I64`...), whatever the container."""
    # Where the bytes live, for converters: byte offsets into the safetensors buffer, or the zip storage key.
    storage_key: str | None = None
    storage_offset: int = 0
    """Offset in elements into the storage (pickles) or in bytes into the data buffer (safetensors)."""
    stride: tuple[int, ...] | None = None


@dataclass(slots=True)
class Header:
    """Everything a reader learned about one file without loading its tensors.

    `tensors` is flat: keys joined with "." after unwrapping containers such as Lightning's `state_dict`. It is
    read-only: a plain dict, or for safetensors a mapping that builds each `TensorInfo` when it is looked up.
    `extra` holds non-tensor values that classification needs (A1111 embedding / hypernetwork fields, a bare
    tensor saved on its own under the key "" , GGUF key/values).
    """

    format: Format
    tensors: Mapping[str, TensorInfo] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    unsafe_globals: list[str] = field(default_factory=list)
    wrapper: str | None = None
    """The container key the tensors were unwrapped from (`state_dict`, `model`...), if any."""
    data_start: int | None = None
    """safetensors: absolute byte offset where the tensor buffer begins (for AutoV3)."""


KINDS = (
    "checkpoint",
    "diffusion_model",
    "vae",
    "text_encoder",
    "clip_vision",
    "lora",
    "embedding",
    "hypernetwork",
    "controlnet",
    "ip_adapter",
    "upscaler",
    "motion_module",
    "aesthetic_gradient",
    "unknown",
)
BASES = (
    "sd1",
    "sd2",
    "sdxl",
    "sdxl_refiner",
    "sd3",
    "sd35_medium",
    "sd35_large",
    "flux1",
    "flux2",
    "pixart",
    "cascade",
    "svd",
    "any",
    "unknown",
)
ALGOS = ("lora", "locon", "loha", "lokr", "ia3", "oft", "boft", "glora", "full", "norm", "dora")

CIVITAI_TYPES = {
    "checkpoint": "Checkpoint",
    "diffusion_model": "Checkpoint",
    "embedding": "TextualInversion",
    "hypernetwork": "Hypernetwork",
    "vae": "VAE",
    "controlnet": "Controlnet",
    "ip_adapter": "Controlnet",
    "upscaler": "Upscaler",
    "motion_module": "MotionModule",
    "aesthetic_gradient": "AestheticGradient",
    "text_encoder": "Other",
    "clip_vision": "Other",
    "unknown": "Other",
}


def civitai_type(kind: str, algo: str | None) -> str:
    """The CivitAI `type` for a kind (and, for LoRAs, an algo), per taxonomy.md."""
    if kind == "lora":
        if algo == "dora":
            return "DoRA"
        return "LORA" if algo in (None, "lora") else "LoCon"
    return CIVITAI_TYPES[kind]


@dataclass(slots=True)
class Identification:
    """The answer `identify` gives for one path (taxonomy.md)."""

    path: str
    kind: str = "unknown"
    base: str = "unknown"
    variant: str | None = None
    prediction: str | None = None
    algo: str | None = None
    format: Format = "other"
    unsafe: bool = False
    unsafe_globals: list[str] = field(default_factory=list)
    error: str | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def civitai_type(self) -> str:
        return civitai_type(self.kind, self.algo)

    def to_json(self) -> dict[str, Any]:
        """The taxonomy.md record, fields in contract order."""
        return {
            "path": self.path,
            "kind": self.kind,
            "base": self.base,
            "variant": self.variant,
            "prediction": self.prediction,
            "algo": self.algo,
            "format": self.format,
            "unsafe": self.unsafe,
            "unsafe_globals": list(self.unsafe_globals),
            "error": self.error,
            "civitai_type": self.civitai_type,
            "evidence": list(self.evidence),
        }
