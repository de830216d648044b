"""Standalone VAEs, text encoders and CLIP vision encoders (§1.3-§1.4)."""

from __future__ import annotations

import re

from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

_VAE_PREFIXES = ("", "first_stage_model.", "vae.", "model.", "autoencoder.")
_HF_CLIP_PREFIXES = (
    "",
    "cond_stage_model.transformer.",
    "transformer.",
    "text_encoders.clip_l.transformer.",
    "text_encoders.clip_g.transformer.",
    "conditioner.embedders.0.transformer.",
    "te.",
    "te1.",
    "te2.",
    "clip_l.",
    "clip_g.",
    "text_encoder.",
    "model.",
)
_OPENCLIP_PREFIXES = (
    "",
    "cond_stage_model.model.",
    "conditioner.embedders.1.model.",
    "conditioner.embedders.0.model.",
    "model.",
)
_T5_PREFIXES = ("", "transformer.", "text_encoders.t5xxl.transformer.", "t5xxl.transformer.", "encoder.", "model.")
# Text encoders by transformer width: name, and the base when only one family uses it.
_CLIP_WIDTHS = {
    768: ("CLIP-L", "any"),
    1024: ("OpenCLIP ViT-H (SD2)", "sd2"),
    1280: ("OpenCLIP ViT-bigG (CLIP-G)", "any"),
}
_VISION_WIDTHS = {1024: "ViT-L", 1280: "ViT-H", 1664: "ViT-bigG", 1152: "SigLIP"}
_XL_NAME = re.compile(r"xl", re.IGNORECASE)
_SD3_NAME = re.compile(r"sd3|sd_3|stable.?diffusion.?3", re.IGNORECASE)


def detect_vae(p: Probe, name: str) -> Classification | None:
    """A VAE alone; SD1/SDXL (and Flux/SD3) VAEs share shapes, so there the file name breaks the tie."""
    for prefix in _VAE_PREFIXES:
        dec = prefix + "decoder.conv_in.weight"
        enc = prefix + "encoder.conv_in.weight"
        if not (p.has(dec) or p.has(enc)):
            continue
        if p.has(prefix + "quantize.embedding.weight"):
            return None  # a VQ model (face restorers such as RestoreFormer), not a KL VAE
        if not (p.has_prefix(prefix + "decoder.up") or p.has_prefix(prefix + "encoder.down")):
            continue
        result = Classification(kind="vae")
        if p.has(dec):
            shape = p.shape(dec) or ()
            z = shape[1] if len(shape) > 1 else None
            result.evidence.append(p.ev(dec))
        else:
            out = p.dim(prefix + "encoder.conv_out.weight", 0)
            z = out // 2 if out else None
            result.evidence.append(p.ev(prefix + "encoder.conv_out.weight"))
            shape = p.shape(enc) or ()
        if len(shape) == 5:
            result.evidence.append("3-D convolutions: a video VAE")
            return result
        if z == 4:
            _tie_by_name(result, name, _XL_NAME, "sdxl", "sd1", "SD1/SD2 and SDXL VAEs have identical shapes")
        elif z == 16:
            _tie_by_name(result, name, _SD3_NAME, "sd3", "flux1", "Flux.1 and SD3 VAEs have identical shapes")
        elif z == 32:
            result.base = "flux2"
        return result
    if p.has("decoder.middle.0.residual.0.gamma"):
        return Classification(kind="vae", evidence=["decoder.middle.0.residual.0.gamma (Wan video VAE)"])
    return None


def _tie_by_name(result: Classification, name: str, pattern: re.Pattern[str], hit: str, default: str, why: str) -> None:
    if pattern.search(name):
        result.base = hit
        result.evidence.append(f"{why}: file name {name!r} says {hit}")
    else:
        result.base = default
        result.evidence.append(f"{why}: file name {name!r} does not say {hit}, so {default}")


def detect_text_encoder(p: Probe) -> Classification | None:
    """CLIP text encoders (HF or OpenCLIP layout), T5, and LLM text encoders; CLIP vision towers."""
    vision = _clip_vision(p)
    if vision is not None:
        return vision
    found: list[tuple[str, str]] = []  # (description, base)
    evidence: list[str] = []
    for prefix in _HF_CLIP_PREFIXES:
        fc1 = prefix + "text_model.encoder.layers.0.mlp.fc1.weight"
        if p.has(fc1):
            width = p.dim(fc1, 1) or 0
            layers = p.max_index(prefix + "text_model.encoder.layers.", ".mlp.fc1.weight") + 1
            label, base = _CLIP_WIDTHS.get(width, (f"CLIP text encoder (width {width})", "any"))
            found.append((f"{label}, {layers} layers", base))
            evidence.append(p.ev(fc1))
    for prefix in _OPENCLIP_PREFIXES:
        fc = prefix + "transformer.resblocks.0.mlp.c_fc.weight"
        if p.has(fc) and p.has(prefix + "token_embedding.weight"):
            width = p.dim(prefix + "token_embedding.weight", 1) or 0
            layers = p.max_index(prefix + "transformer.resblocks.", ".mlp.c_fc.weight") + 1
            label, base = _CLIP_WIDTHS.get(width, (f"OpenCLIP text encoder (width {width})", "any"))
            found.append((f"{label}, {layers} layers", base))
            evidence.append(p.ev(prefix + "token_embedding.weight"))
    for prefix in _T5_PREFIXES:
        k = prefix + "encoder.block.0.layer.0.SelfAttention.k.weight"
        if p.has(k):
            width = p.dim(k, 1) or 0
            gated = p.has(prefix + "encoder.block.0.layer.1.DenseReluDense.wi_1.weight")
            label = {4096: "T5-XXL", 2048: "T5-XL", 1024: "T5-large", 768: "T5-base"}.get(width, f"T5 (width {width})")
            found.append((label + (" (gated)" if gated else ""), "any"))
            evidence.append(p.ev(k))
            break
    if p.has("token_embd.weight") and p.has_prefix("enc.blk."):
        found.append(("T5 encoder (llama.cpp names)", "any"))
        evidence.append(p.ev("enc.blk.0.attn_k.weight") if p.has("enc.blk.0.attn_k.weight") else "enc.blk.*")
    for prefix in ("model.", ""):
        q = prefix + "layers.0.self_attn.q_proj.weight"
        if p.has(q) and p.has(prefix + "embed_tokens.weight"):
            found.append(("LLM text encoder", "any"))
            evidence.append(p.ev(q))
            break
    if not found and p.has("token_embd.weight") and p.has_prefix("blk."):
        found.append(("LLM text encoder (llama.cpp names)", "any"))
        evidence.append(p.ev("token_embd.weight"))
    if not found:
        return None
    bases = {base for _, base in found}
    result = Classification(kind="text_encoder", base=bases.pop() if len(bases) == 1 else "any")
    result.evidence = [desc for desc, _ in found] + evidence
    return result


def _clip_vision(p: Probe) -> Classification | None:
    for prefix in ("", "clip_vision.", "image_encoder.", "model."):
        ln = prefix + "vision_model.encoder.layers.0.layer_norm1.weight"
        if p.has(ln):
            width = p.dim(ln, 0) or 0
            layers = p.max_index(prefix + "vision_model.encoder.layers.", ".layer_norm1.weight") + 1
            label = _VISION_WIDTHS.get(width, f"vision transformer (width {width})")
            result = Classification(
                kind="clip_vision", base="any", evidence=[f"CLIP vision {label}, {layers} layers", p.ev(ln)]
            )
            if p.has_prefix(prefix + "text_model."):
                result.evidence.append("text_model.* too (a full CLIP model)")
            return result
    if p.has("visual.conv1.weight") and p.has_prefix("visual.transformer.resblocks."):
        width = p.dim("visual.conv1.weight", 0) or 0
        label = _VISION_WIDTHS.get(width, f"vision transformer (width {width})")
        return Classification(
            kind="clip_vision", base="any", evidence=[f"OpenCLIP vision {label}", p.ev("visual.conv1.weight")]
        )
    return None
