"""How to use a model once it sits in a WebUI library: the prompt tag or the menu that lists it.

A1111 names LoRAs, hypernetworks, embeddings, ControlNets and upscalers by the file name without its extension, and
lists checkpoints and VAEs by their path inside their folder. ComfyUI loaders list every file by its path inside its
folder; embeddings are written `embedding:NAME` in the prompt.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath

from modeldex.identify.layouts import Layout, LayoutOptions, kind_folder
from modeldex.identify.records import Identification

LORA_WEIGHT = 0.8


def _stem(name: str) -> str:
    path = PurePosixPath(name)
    return str(path.with_suffix("")) if path.suffix else name


def _a1111_hint(kind: str, variant: str | None, name: str, listed: str) -> str | None:
    stem = PurePosixPath(name).stem
    if kind == "lora":
        return f"<lora:{stem}:{LORA_WEIGHT}>"
    if kind == "hypernetwork":
        return f"<hypernet:{stem}:1>"
    if kind == "embedding":
        if variant == "negative":
            return f"{stem} (in the negative prompt)"
        return f"{stem} (in the prompt)"
    if kind == "checkpoint":
        extra = " (img2img > Inpaint)" if variant == "inpaint" else ""
        return f"Stable Diffusion checkpoint: {listed}{extra}"
    if kind == "diffusion_model":
        return f"Stable Diffusion checkpoint (Forge): {listed}"
    if kind == "vae":
        return f"SD VAE: {listed}"
    if kind == "text_encoder":
        return f"VAE / Text Encoder (Forge): {listed}"
    if kind == "controlnet":
        return f"ControlNet unit model: {stem}"
    if kind == "ip_adapter":
        return f"ControlNet unit model (IP-Adapter): {stem}"
    if kind == "clip_vision":
        return f"CLIP vision model for IP-Adapter units: {name}"
    if kind == "upscaler":
        return f"Upscaler (Extras, Hires. fix): {stem}"
    if kind == "motion_module":
        return f"AnimateDiff motion module: {name}"
    if kind == "aesthetic_gradient":
        return f"Aesthetic embedding: {stem}"
    return None


_COMFY_LOADERS = {
    "checkpoint": "Load Checkpoint, ckpt_name",
    "diffusion_model": "Load Diffusion Model, unet_name",
    "lora": "Load LoRA, lora_name",
    "hypernetwork": "Load Hypernetwork, hypernetwork_name",
    "vae": "Load VAE, vae_name",
    "controlnet": "Load ControlNet Model, control_net_name",
    "ip_adapter": "IPAdapter Model Loader, ipadapter_file",
    "clip_vision": "Load CLIP Vision, clip_name",
    "text_encoder": "Load CLIP, clip_name",
    "upscaler": "Load Upscale Model, model_name",
    "motion_module": "AnimateDiff Loader, model_name",
}


def _comfyui_hint(kind: str, variant: str | None, listed: str) -> str | None:
    if kind == "embedding":
        where = "negative prompt" if variant == "negative" else "prompt"
        return f"embedding:{_stem(listed)} (in the {where})"
    loader = _COMFY_LOADERS.get(kind)
    return f"{loader}: {listed}" if loader else None


def usage_hint(
    kind: str,
    file: PurePath,
    *,
    variant: str | None = None,
    layout: Layout = "a1111",
    listed_as: str | None = None,
) -> str | None:
    """How to use `file` (a model of `kind`) in the WebUI of `layout`; None when there is nothing to say.

    `listed_as` is the file's path inside the folder its UI scans (`sdxl/name.safetensors` in a per-base
    sub-folder), POSIX-spelled; by default the file name. For a LoRA this is the A1111 tag `<lora:NAME:0.8>`.
    """
    name = file.name
    listed = listed_as if listed_as is not None else name
    if layout == "comfyui":
        return _comfyui_hint(kind, variant, listed)
    return _a1111_hint(kind, variant, name, listed)


def identify_hint(ident: Identification, layout: Layout = "a1111") -> str | None:
    """For `modeldex identify`: how to use the file, and the library folder it belongs in (`[models/Lora]`).

    None for unknown, unreadable or unsafe files, diffusers folders (WebUIs load single files), and kinds the
    layout has no folder for.
    """
    if ident.error or ident.unsafe or ident.kind == "unknown" or ident.format == "diffusers":
        return None
    folder = kind_folder(ident.kind, ident.algo, LayoutOptions(layout))
    hint = usage_hint(ident.kind, PurePath(ident.path), variant=ident.variant, layout=layout)
    if folder is None or hint is None:
        return None
    return f"{hint} [{folder}]"
