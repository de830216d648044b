"""Where each kind of model goes inside an A1111/Forge or ComfyUI folder (taxonomy.md, "Destination folders").

ROOT is the WebUI folder for the A1111 layout (it holds `models/` and `embeddings/`) and the ComfyUI folder for the
ComfyUI layout (it holds `models/`). Every folder here is relative to ROOT, in POSIX spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

Layout = Literal["a1111", "comfyui"]
LAYOUTS: tuple[Layout, ...] = ("a1111", "comfyui")

LYCORIS_ALGOS = frozenset({"loha", "lokr", "ia3", "oft", "boft", "glora", "full", "norm"})
"""The LoRA algos that `--lycoris-dir` sends to `models/LyCORIS` (LoRA, LoCon and DoRA stay in `models/Lora`)."""

_FOLDERS: dict[Layout, dict[str, str | None]] = {
    "a1111": {
        "checkpoint": "models/Stable-diffusion",
        "diffusion_model": "models/Stable-diffusion",
        "lora": "models/Lora",
        "embedding": "embeddings",
        "hypernetwork": "models/hypernetworks",
        "vae": "models/VAE",
        "controlnet": "models/ControlNet",
        "ip_adapter": "models/ControlNet",
        "clip_vision": "models/clip_vision",
        "text_encoder": "models/text_encoder",
        "upscaler": "models/ESRGAN",
        "motion_module": "extensions/sd-webui-animatediff/model",
        "aesthetic_gradient": "extensions/stable-diffusion-webui-aesthetic-gradients/aesthetic_embeddings",
        "unknown": None,
    },
    "comfyui": {
        "checkpoint": "models/checkpoints",
        "diffusion_model": "models/diffusion_models",
        "lora": "models/loras",
        "embedding": "models/embeddings",
        "hypernetwork": "models/hypernetworks",
        "vae": "models/vae",
        "controlnet": "models/controlnet",
        "ip_adapter": "models/ipadapter",
        "clip_vision": "models/clip_vision",
        "text_encoder": "models/text_encoders",
        "upscaler": "models/upscale_models",
        "motion_module": "models/animatediff_models",
        "aesthetic_gradient": None,
        "unknown": None,
    },
}
_A1111_LYCORIS = "models/LyCORIS"
_NO_SUBFOLDER_BASES = frozenset({"any", "unknown"})


@dataclass(frozen=True, slots=True)
class LayoutOptions:
    """How a library is organised."""

    layout: Layout = "a1111"
    by_base: bool = False
    """Per-base sub-folders (`models/Lora/sdxl/`); files whose base is `any` or `unknown` stay at the top."""
    lycoris_dir: bool = False
    """A1111 only: LyCORIS algos go to `models/LyCORIS` (ComfyUI has one `loras` folder for all)."""


def check_layout(name: str) -> Layout:
    """`name` as a `Layout`; raises ValueError for anything else."""
    for layout in LAYOUTS:
        if name == layout:
            return layout
    raise ValueError(f"unknown layout {name!r}: use one of {', '.join(LAYOUTS)}")


def kind_folder(kind: str, algo: str | None, options: LayoutOptions) -> PurePosixPath | None:
    """The folder (relative to ROOT) a WebUI scans for `kind`, without any per-base sub-folder; None: none exists."""
    folders = _FOLDERS[options.layout]
    if kind not in folders:
        raise ValueError(f"unknown kind {kind!r}")
    if kind == "lora" and options.layout == "a1111" and options.lycoris_dir and algo in LYCORIS_ALGOS:
        return PurePosixPath(_A1111_LYCORIS)
    folder = folders[kind]
    return PurePosixPath(folder) if folder is not None else None


def destination_folder(kind: str, base: str, algo: str | None, options: LayoutOptions) -> PurePosixPath | None:
    """Where a file of this kind/base/algo belongs, relative to ROOT; None when the layout has no place for it."""
    folder = kind_folder(kind, algo, options)
    if folder is None:
        return None
    if options.by_base and base not in _NO_SUBFOLDER_BASES:
        return folder / base
    return folder
