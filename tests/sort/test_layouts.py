"""Destination folders against taxonomy.md's table, and the usage hints that follow from them."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from modeldex.identify.layouts import LYCORIS_ALGOS, LayoutOptions, check_layout, destination_folder, kind_folder
from modeldex.identify.records import ALGOS, KINDS
from modeldex.identify.sorting.usage import usage_hint

# taxonomy.md, "Destination folders", copied row by row (None: left in place).
TABLE = {
    "checkpoint": ("models/Stable-diffusion", "models/checkpoints"),
    "diffusion_model": ("models/Stable-diffusion", "models/diffusion_models"),
    "lora": ("models/Lora", "models/loras"),
    "embedding": ("embeddings", "models/embeddings"),
    "hypernetwork": ("models/hypernetworks", "models/hypernetworks"),
    "vae": ("models/VAE", "models/vae"),
    "controlnet": ("models/ControlNet", "models/controlnet"),
    "ip_adapter": ("models/ControlNet", "models/ipadapter"),
    "clip_vision": ("models/clip_vision", "models/clip_vision"),
    "text_encoder": ("models/text_encoder", "models/text_encoders"),
    "upscaler": ("models/ESRGAN", "models/upscale_models"),
    "motion_module": ("extensions/sd-webui-animatediff/model", "models/animatediff_models"),
    "aesthetic_gradient": ("extensions/stable-diffusion-webui-aesthetic-gradients/aesthetic_embeddings", None),
    "unknown": (None, None),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_its_taxonomy_folder(kind: str) -> None:
    a1111, comfyui = TABLE[kind]
    got_a = kind_folder(kind, None, LayoutOptions("a1111"))
    got_c = kind_folder(kind, None, LayoutOptions("comfyui"))
    assert (str(got_a) if got_a else None) == a1111
    assert (str(got_c) if got_c else None) == comfyui


@pytest.mark.parametrize("algo", ALGOS)
def test_lycoris_dir_takes_exactly_the_lycoris_algos_in_a1111(algo: str) -> None:
    on = kind_folder("lora", algo, LayoutOptions("a1111", lycoris_dir=True))
    off = kind_folder("lora", algo, LayoutOptions("a1111"))
    comfy = kind_folder("lora", algo, LayoutOptions("comfyui", lycoris_dir=True))
    assert off == PurePosixPath("models/Lora")
    assert comfy == PurePosixPath("models/loras")
    expected = (
        "models/LyCORIS" if algo in {"loha", "lokr", "ia3", "oft", "boft", "glora", "full", "norm"} else "models/Lora"
    )
    assert on == PurePosixPath(expected)
    assert (algo in LYCORIS_ALGOS) == (expected == "models/LyCORIS")


def test_by_base_adds_the_base_folder_except_for_any_and_unknown() -> None:
    opts = LayoutOptions("a1111", by_base=True)
    assert destination_folder("lora", "sdxl", "lora", opts) == PurePosixPath("models/Lora/sdxl")
    assert destination_folder("checkpoint", "flux1", None, LayoutOptions("comfyui", by_base=True)) == PurePosixPath(
        "models/checkpoints/flux1"
    )
    assert destination_folder("upscaler", "any", None, opts) == PurePosixPath("models/ESRGAN")
    assert destination_folder("vae", "unknown", None, opts) == PurePosixPath("models/VAE")
    assert destination_folder("lora", "sdxl", "lora", LayoutOptions("a1111")) == PurePosixPath("models/Lora")
    assert destination_folder("unknown", "sd1", None, opts) is None


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        check_layout("invokeai")
    assert check_layout("comfyui") == "comfyui"
    with pytest.raises(ValueError, match="unknown kind"):
        kind_folder("wildcard", None, LayoutOptions())


@pytest.mark.parametrize(
    ("kind", "variant", "layout", "listed", "expected"),
    [
        ("lora", None, "a1111", None, "<lora:My LoRA v2:0.8>"),
        ("hypernetwork", None, "a1111", None, "<hypernet:My LoRA v2:1>"),
        ("embedding", None, "a1111", None, "My LoRA v2 (in the prompt)"),
        ("embedding", "negative", "a1111", None, "My LoRA v2 (in the negative prompt)"),
        (
            "checkpoint",
            None,
            "a1111",
            "sdxl/My LoRA v2.safetensors",
            "Stable Diffusion checkpoint: sdxl/My LoRA v2.safetensors",
        ),
        (
            "checkpoint",
            "inpaint",
            "a1111",
            None,
            "Stable Diffusion checkpoint: My LoRA v2.safetensors (img2img > Inpaint)",
        ),
        ("vae", None, "a1111", None, "SD VAE: My LoRA v2.safetensors"),
        ("upscaler", None, "a1111", None, "Upscaler (Extras, Hires. fix): My LoRA v2"),
        ("lora", None, "comfyui", "sdxl/My LoRA v2.safetensors", "Load LoRA, lora_name: sdxl/My LoRA v2.safetensors"),
        ("embedding", None, "comfyui", "sd1/My LoRA v2.safetensors", "embedding:sd1/My LoRA v2 (in the prompt)"),
        ("checkpoint", None, "comfyui", None, "Load Checkpoint, ckpt_name: My LoRA v2.safetensors"),
        ("unknown", None, "a1111", None, None),
        ("aesthetic_gradient", None, "comfyui", None, None),
    ],
)
def test_usage_hints(kind: str, variant: str | None, layout: str, listed: str | None, expected: str | None) -> None:
    path = PurePosixPath("/lib/models/x/My LoRA v2.safetensors")
    assert usage_hint(kind, path, variant=variant, layout=check_layout(layout), listed_as=listed) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_known_kind_has_an_a1111_hint_naming_the_file(kind: str) -> None:
    hint = usage_hint(kind, PurePosixPath("dreamy.safetensors"))
    if kind == "unknown":
        assert hint is None
    else:
        assert hint is not None and "dreamy" in hint
