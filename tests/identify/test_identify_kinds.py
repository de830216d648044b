"""One real file per kind / base / variant / algo / prediction / format value of taxonomy.md, identified end to end.

Each case writes a realistic file with the factory, runs identify_path (real reader + classifier) and checks the
whole record: what taxonomy.md says the file is, the CivitAI type it maps to, and that evidence names why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from factory import ModelFactory

from modeldex.identify.identify import identify_path
from modeldex.identify.records import ALGOS, BASES, KINDS


class Want(NamedTuple):
    kind: str
    base: str
    variant: str | None
    prediction: str | None
    algo: str | None
    format: str
    civitai_type: str


Build = Callable[[ModelFactory], Path]
CASES: list[tuple[str, Build, Want]] = []


def case(case_id: str, want: Want) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CASES.append((case_id, build, want))
        return build

    return register


def ckpt(base: str, variant: str, prediction: str | None = None, fmt: str = "safetensors") -> Want:
    return Want("checkpoint", base, variant, prediction, None, fmt, "Checkpoint")


def unet(base: str, variant: str, fmt: str = "safetensors") -> Want:
    return Want("diffusion_model", base, variant, None, None, fmt, "Checkpoint")


def lora(base: str, algo: str, civitai: str) -> Want:
    return Want("lora", base, None, None, algo, "safetensors", civitai)


# --- full checkpoints: every base that ships as one file, every variant -------------------------------------
case("sd1", ckpt("sd1", "normal"))(lambda f: f.checkpoint("sd1"))
case("sd1-inpaint", ckpt("sd1", "inpaint"))(lambda f: f.checkpoint("sd1", "inpaint"))
case("sd1-pix2pix", ckpt("sd1", "pix2pix"))(lambda f: f.checkpoint("sd1", "pix2pix"))
case("sd1-ckpt-lightning-zip", ckpt("sd1", "normal", fmt="pickle"))(lambda f: f.checkpoint("sd1", fmt="pickle"))
case("sd1-ckpt-legacy", ckpt("sd1", "normal", fmt="pickle"))(lambda f: f.checkpoint("sd1", fmt="legacy"))
case("sd2", ckpt("sd2", "normal"))(lambda f: f.checkpoint("sd2"))
case("sd2-depth", ckpt("sd2", "depth"))(lambda f: f.checkpoint("sd2", "depth"))
case("sd2-inpaint", ckpt("sd2", "inpaint"))(lambda f: f.checkpoint("sd2", "inpaint"))
case("sd2-768-v-modelspec", ckpt("sd2", "normal", "v"))(
    lambda f: f.checkpoint("sd2", metadata={"modelspec.architecture": "stable-diffusion-v2-768-v"})
)
case("sd2-eps-modelspec", ckpt("sd2", "normal", "eps"))(
    lambda f: f.checkpoint("sd2", metadata={"modelspec.prediction_type": "epsilon"})
)
case("sd2-v-kohya-version", ckpt("sd2", "normal", "v"))(
    lambda f: f.checkpoint("sd2", metadata={"ss_base_model_version": "sd_v2_v"})
)
case("sdxl", ckpt("sdxl", "normal"))(lambda f: f.checkpoint("sdxl"))
case("sdxl-inpaint", ckpt("sdxl", "inpaint"))(lambda f: f.checkpoint("sdxl", "inpaint"))
case("sdxl-vpred-markers", ckpt("sdxl", "normal", "v"))(lambda f: f.checkpoint("sdxl", vpred="v_pred"))
case("sdxl-edm-vpred", ckpt("sdxl", "normal", "v"))(lambda f: f.checkpoint("sdxl", vpred="edm"))
case("sdxl-v-prediction-type", ckpt("sdxl", "normal", "v"))(
    lambda f: f.checkpoint("sdxl", metadata={"modelspec.prediction_type": "v"})
)
case("sdxl-refiner", ckpt("sdxl_refiner", "normal"))(lambda f: f.checkpoint("sdxl_refiner"))
case("sd3-medium", ckpt("sd3", "normal"))(lambda f: f.checkpoint("sd3"))
case("sd35-medium", ckpt("sd35_medium", "normal"))(lambda f: f.checkpoint("sd35_medium"))
case("sd35-large", ckpt("sd35_large", "normal"))(lambda f: f.checkpoint("sd35_large"))
case("flux1-dev", ckpt("flux1", "dev"))(lambda f: f.checkpoint("flux1", "dev"))
case("flux1-schnell", ckpt("flux1", "schnell"))(lambda f: f.checkpoint("flux1", "schnell"))
case("flux1-fill", ckpt("flux1", "fill"))(lambda f: f.checkpoint("flux1", "fill"))
case("flux1-control", ckpt("flux1", "control"))(lambda f: f.checkpoint("flux1", "control"))
case("flux2", ckpt("flux2", "normal"))(lambda f: f.checkpoint("flux2"))
case("svd", ckpt("svd", "normal"))(lambda f: f.checkpoint("svd"))

# --- bare denoisers ------------------------------------------------------------------------------------------
case("unet-sd1-ldm", unet("sd1", "normal"))(lambda f: f.diffusion_model("sd1", "normal"))
case("unet-sdxl-inpaint-ldm", unet("sdxl", "inpaint"))(lambda f: f.diffusion_model("sdxl", "inpaint"))
case("unet-sd1-diffusers", unet("sd1", "normal"))(lambda f: f.diffusion_model("sd1", "normal", layout="diffusers"))
case("unet-sdxl-diffusers", unet("sdxl", "normal"))(lambda f: f.diffusion_model("sdxl", "normal", layout="diffusers"))
case("unet-refiner", unet("sdxl_refiner", "normal"))(lambda f: f.diffusion_model("sdxl_refiner", "normal"))
case("unet-flux1-dev", unet("flux1", "dev"))(lambda f: f.diffusion_model("flux1", "dev"))
case("unet-flux1-schnell", unet("flux1", "schnell"))(lambda f: f.diffusion_model("flux1", "schnell"))
case("unet-flux1-fill", unet("flux1", "fill"))(lambda f: f.diffusion_model("flux1", "fill"))
case("unet-flux1-control", unet("flux1", "control"))(lambda f: f.diffusion_model("flux1", "control"))
case("unet-flux1-diffusers-dev", unet("flux1", "dev"))(lambda f: f.diffusion_model("flux1", "dev", layout="diffusers"))
case("unet-flux1-diffusers-schnell", unet("flux1", "schnell"))(
    lambda f: f.diffusion_model("flux1", "schnell", layout="diffusers")
)
case("unet-flux2", unet("flux2", "normal"))(lambda f: f.diffusion_model("flux2", "normal"))
case("unet-sd3", unet("sd3", "normal"))(lambda f: f.diffusion_model("sd3", "normal"))
case("unet-sd35-large", unet("sd35_large", "normal"))(lambda f: f.diffusion_model("sd35_large", "normal"))
case("unet-pixart", unet("pixart", "normal"))(lambda f: f.diffusion_model("pixart", "normal"))
case("unet-cascade-c", unet("cascade", "normal"))(lambda f: f.diffusion_model("cascade", "c"))
case("unet-cascade-b", unet("cascade", "normal"))(lambda f: f.diffusion_model("cascade", "b"))
case("unet-svd", unet("svd", "normal"))(lambda f: f.diffusion_model("svd", "normal"))
case("unet-sd1-pickle", unet("sd1", "normal", "pickle"))(lambda f: f.diffusion_model("sd1", "normal", fmt="pickle"))
case("gguf-flux1-dev", unet("flux1", "dev", "gguf"))(lambda f: f.gguf_model("flux1"))
case("gguf-sdxl-q8", unet("sdxl", "normal", "gguf"))(lambda f: f.gguf_model("sdxl", qtype="Q8_0"))

# --- diffusers folders -----------------------------------------------------------------------------------------
case("diffusers-sd1-eps-scheduler", ckpt("sd1", "normal", "eps", fmt="diffusers"))(
    lambda f: f.diffusers_pipeline("sd1")
)
case("diffusers-sdxl-vpred", ckpt("sdxl", "normal", "v", fmt="diffusers"))(
    lambda f: f.diffusers_pipeline("sdxl", vpred=True)
)
case("diffusers-flux1", ckpt("flux1", "dev", fmt="diffusers"))(lambda f: f.diffusers_pipeline("flux1"))
case("diffusers-unet-folder", unet("sdxl", "normal", "diffusers"))(lambda f: f.diffusers_component("unet"))
case("diffusers-controlnet-folder", Want("controlnet", "sd1", "controlnet", None, None, "diffusers", "Controlnet"))(
    lambda f: f.diffusers_component("controlnet")
)

# --- VAEs, text encoders, CLIP vision ---------------------------------------------------------------------------
case("vae-sd1", Want("vae", "sd1", None, None, None, "safetensors", "VAE"))(lambda f: f.vae("sd1"))
case("vae-sdxl-by-name", Want("vae", "sdxl", None, None, None, "safetensors", "VAE"))(lambda f: f.vae("sdxl"))
case("vae-sd1-pt", Want("vae", "sd1", None, None, None, "pickle", "VAE"))(lambda f: f.vae("sd1", fmt="pickle"))
case("vae-diffusers-folder", Want("vae", "sd1", None, None, None, "diffusers", "VAE"))(
    lambda f: f.diffusers_component("vae")
)
case("vae-flux1", Want("vae", "flux1", None, None, None, "safetensors", "VAE"))(lambda f: f.vae("flux1"))
case("vae-sd3-by-name", Want("vae", "sd3", None, None, None, "safetensors", "VAE"))(lambda f: f.vae("sd3"))
case("vae-flux2", Want("vae", "flux2", None, None, None, "safetensors", "VAE"))(lambda f: f.vae("flux2"))
case("te-clip-l", Want("text_encoder", "any", None, None, None, "safetensors", "Other"))(
    lambda f: f.text_encoder("clip_l")
)
case("te-clip-g", Want("text_encoder", "any", None, None, None, "safetensors", "Other"))(
    lambda f: f.text_encoder("clip_g")
)
case("te-clip-h-sd2", Want("text_encoder", "sd2", None, None, None, "safetensors", "Other"))(
    lambda f: f.text_encoder("clip_h")
)
case("te-t5xxl", Want("text_encoder", "any", None, None, None, "safetensors", "Other"))(
    lambda f: f.text_encoder("t5xxl")
)
case("te-t5xxl-gguf", Want("text_encoder", "any", None, None, None, "gguf", "Other"))(lambda f: f.gguf_model("t5xxl"))
case("clip-vision-vit-h", Want("clip_vision", "any", None, None, None, "safetensors", "Other"))(
    lambda f: f.clip_vision("vit_h")
)
case("clip-vision-vit-g", Want("clip_vision", "any", None, None, None, "safetensors", "Other"))(
    lambda f: f.clip_vision("vit_g")
)

# --- LoRA and LyCORIS: every algo, the three SD bases, other layouts -------------------------------------------
_CIVITAI = {"lora": "LORA", "dora": "DoRA"}
for _base in ("sd1", "sd2", "sdxl"):
    for _algo in ALGOS:
        case(f"lora-{_base}-{_algo}", lora(_base, _algo, _CIVITAI.get(_algo, "LoCon")))(
            lambda f, b=_base, a=_algo: f.lora(b, a)  # type: ignore[misc]
        )
case("lora-sd1-peft", lora("sd1", "lora", "LORA"))(lambda f: f.lora("sd1", style="peft"))
case("lora-sdxl-peft", lora("sdxl", "lora", "LORA"))(lambda f: f.lora("sdxl", style="peft"))
case("lora-sdxl-peft-dora", lora("sdxl", "dora", "DoRA"))(lambda f: f.lora("sdxl", "dora", style="peft"))
case("lora-sd1-unet-only", lora("sd1", "lora", "LORA"))(lambda f: f.lora("sd1", te=False))
case("lora-flux1-kohya", lora("flux1", "lora", "LORA"))(lambda f: f.lora("flux1"))
case("lora-flux1-peft", lora("flux1", "lora", "LORA"))(lambda f: f.lora("flux1", style="peft"))
case("lora-flux1-xlabs", lora("flux1", "lora", "LORA"))(lambda f: f.lora("flux1", style="xlabs"))
case("lora-flux1-aitoolkit", lora("flux1", "lora", "LORA"))(lambda f: f.lora("flux1", style="aitoolkit"))
case("lora-sd1-pt", Want("lora", "sd1", None, None, "lora", "pickle", "LORA"))(lambda f: f.lora("sd1", fmt="pickle"))

# --- embeddings, hypernetworks, aesthetic gradients -----------------------------------------------------------
case("ti-sd1-safetensors", Want("embedding", "sd1", None, None, None, "safetensors", "TextualInversion"))(
    lambda f: f.embedding("sd1")
)
case("ti-sd2-safetensors", Want("embedding", "sd2", None, None, None, "safetensors", "TextualInversion"))(
    lambda f: f.embedding("sd2")
)
case("ti-sdxl-clip-l-g", Want("embedding", "sdxl", None, None, None, "safetensors", "TextualInversion"))(
    lambda f: f.embedding("sdxl")
)
case("ti-negative", Want("embedding", "sd1", "negative", None, None, "safetensors", "TextualInversion"))(
    lambda f: f.embedding("sd1", negative=True)
)
case("ti-a1111-pt", Want("embedding", "sd1", None, None, None, "pickle", "TextualInversion"))(
    lambda f: f.embedding("sd1", style="a1111")
)
case("ti-diffusers-bin", Want("embedding", "sd1", None, None, None, "pickle", "TextualInversion"))(
    lambda f: f.embedding("sd1", style="diffusers")
)
case("hypernetwork-sd1", Want("hypernetwork", "sd1", None, None, None, "pickle", "Hypernetwork"))(
    lambda f: f.hypernetwork("sd1")
)
case("hypernetwork-sd2-legacy", Want("hypernetwork", "sd2", None, None, None, "pickle", "Hypernetwork"))(
    lambda f: f.hypernetwork("sd2", legacy=True)
)
case("aesthetic-gradient", Want("aesthetic_gradient", "sd1", None, None, None, "pickle", "AestheticGradient"))(
    lambda f: f.aesthetic_gradient()
)

# --- ControlNet family and IP-Adapter ---------------------------------------------------------------------------
for _base, _layout in (("sd1", "ldm"), ("sd2", "ldm"), ("sdxl", "ldm"), ("sd1", "diffusers"), ("sdxl", "diffusers")):
    case(
        f"controlnet-{_base}-{_layout}",
        Want("controlnet", _base, "controlnet", None, None, "safetensors", "Controlnet"),
    )(
        lambda f, b=_base, lay=_layout: f.controlnet(b, layout=lay)  # type: ignore[misc]
    )
case("controlnet-sd1-pth", Want("controlnet", "sd1", "controlnet", None, None, "pickle", "Controlnet"))(
    lambda f: f.controlnet("sd1", fmt="pickle")
)
case("t2i-adapter-sd1", Want("controlnet", "sd1", "t2i_adapter", None, None, "safetensors", "Controlnet"))(
    lambda f: f.controlnet("sd1", "t2i_adapter")
)
case("t2i-adapter-sdxl", Want("controlnet", "sdxl", "t2i_adapter", None, None, "safetensors", "Controlnet"))(
    lambda f: f.controlnet("sdxl", "t2i_adapter")
)
case("controlnet-lllite", Want("controlnet", "sdxl", "lllite", None, None, "safetensors", "Controlnet"))(
    lambda f: f.controlnet("sdxl", "lllite")
)
case("control-lora", Want("controlnet", "sdxl", "control_lora", None, None, "safetensors", "Controlnet"))(
    lambda f: f.controlnet("sdxl", "control_lora")
)
case("ip-adapter-sd1-bin", Want("ip_adapter", "sd1", None, None, None, "pickle", "Controlnet"))(
    lambda f: f.ip_adapter("sd1")
)
case("ip-adapter-plus-sd1-bin", Want("ip_adapter", "sd1", None, None, None, "pickle", "Controlnet"))(
    lambda f: f.ip_adapter("sd1", plus=True)
)
case("ip-adapter-sdxl-safetensors", Want("ip_adapter", "sdxl", None, None, None, "safetensors", "Controlnet"))(
    lambda f: f.ip_adapter("sdxl", fmt="safetensors")
)
case("ip-adapter-sd2-safetensors", Want("ip_adapter", "sd2", None, None, None, "safetensors", "Controlnet"))(
    lambda f: f.ip_adapter("sd2", fmt="safetensors")
)

# --- upscalers, motion modules --------------------------------------------------------------------------------------
for _arch in ("esrgan_old", "esrgan_new", "swinir", "compact", "scunet"):
    case(f"upscaler-{_arch}", Want("upscaler", "any", None, None, None, "pickle", "Upscaler"))(
        lambda f, a=_arch: f.upscaler(a)  # type: ignore[misc]
    )
case("upscaler-esrgan-safetensors", Want("upscaler", "any", None, None, None, "safetensors", "Upscaler"))(
    lambda f: f.upscaler("esrgan_old", fmt="safetensors")
)
for _version, _base in (("v1", "sd1"), ("v2", "sd1"), ("v3", "sd1"), ("sdxl", "sdxl")):
    case(f"motion-{_version}", Want("motion_module", _base, None, None, None, "pickle", "MotionModule"))(
        lambda f, v=_version: f.motion_module(v)  # type: ignore[misc]
    )

# --- unknown ---------------------------------------------------------------------------------------------------
case("unknown-tensors", Want("unknown", "unknown", None, None, None, "safetensors", "Other"))(
    lambda f: f.safetensors("classifier.safetensors", {"fc.weight": ((10, 512), "F32"), "fc.bias": ((10,), "F32")})
)


@pytest.mark.parametrize(("build", "want"), [pytest.param(b, w, id=i) for i, b, w in CASES])
def test_identifies(factory: ModelFactory, build: Build, want: Want) -> None:
    path = build(factory)
    got = identify_path(path).to_json()
    assert got["error"] is None
    assert got["unsafe"] is False and got["unsafe_globals"] == []
    assert (
        Want(
            got["kind"], got["base"], got["variant"], got["prediction"], got["algo"], got["format"], got["civitai_type"]
        )
        == want
    ), got["evidence"]
    assert got["evidence"] and all(isinstance(e, str) and e for e in got["evidence"])
    assert got["path"] == str(path)


def test_every_taxonomy_value_has_a_case() -> None:
    """The table above covers every kind, base, algo, variant, prediction and format that taxonomy.md lists."""
    wants = [w for _, _, w in CASES]
    assert {w.kind for w in wants} == set(KINDS)
    assert {w.base for w in wants} == set(BASES)
    assert {w.algo for w in wants} - {None} == set(ALGOS)
    variants = {"normal", "inpaint", "pix2pix", "depth", "dev", "schnell", "fill", "control"}
    variants |= {"controlnet", "t2i_adapter", "lllite", "control_lora", "negative"}
    assert {w.variant for w in wants} - {None} == variants
    assert {w.prediction for w in wants} == {None, "eps", "v"}
    assert {w.format for w in wants} == {"safetensors", "pickle", "gguf", "diffusers"}  # "other": see test_bad_files


@pytest.mark.parametrize("base", ["sd1", "sdxl"])
def test_evidence_names_the_deciding_key_and_shape(factory: ModelFactory, base: str) -> None:
    got = identify_path(factory.checkpoint(base))
    context = {"sd1": "[320, 768]", "sdxl": "[640, 2048]"}[base]
    block = {"sd1": 1, "sdxl": 4}[base]
    key = f"model.diffusion_model.input_blocks.{block}.1.transformer_blocks.0.attn2.to_k.weight {context}"
    assert key in got.evidence
