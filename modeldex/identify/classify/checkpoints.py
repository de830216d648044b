"""Full checkpoints and bare denoisers (UNet or DiT alone): family, variant and prediction from keys and shapes.

identify-signatures.md §1.1-§1.2. A file is a `checkpoint` when it carries a VAE or a text encoder beside the
denoiser, a `diffusion_model` when the denoiser is alone.
"""

from __future__ import annotations

from collections.abc import Callable

from modeldex.identify.classify.metadata import prediction_from_metadata
from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

# Where the denoiser's keys may start: single-file layout first, then bare and the rarer wrappers.
DENOISER_PREFIXES = ("model.diffusion_model.", "", "model.", "diffusion_model.", "model.model.", "unet.", "net.")
DIFFUSERS_PREFIXES = ("", "unet.", "transformer.")

# Cross-attention context width -> base (the `attn2.to_k` in-dim of the UNet).
CONTEXT_BASES = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl_refiner"}
# SDXL `label_emb` / `add_embedding` in-dim -> base.
ADM_BASES = {2816: "sdxl", 2560: "sdxl_refiner"}
# UNet input channels -> variant.
IN_CHANNEL_VARIANTS = {4: "normal", 9: "inpaint", 8: "pix2pix", 5: "depth"}

_COMPONENTS = (
    ("first_stage_model.", "VAE"),
    ("vae.", "VAE"),
    ("cond_stage_model.", "text encoder"),
    ("conditioner.embedders.", "text encoder"),
    ("text_encoders.", "text encoder"),
)
_V_MARKERS = ("v_pred", "edm_vpred.sigma_max", "edm_vpred.sigma_min")

Finder = Callable[[Probe], tuple[Classification, str] | None]


def detect_denoiser(p: Probe) -> Classification | None:
    """A full checkpoint or a bare denoiser of any supported family, else None."""
    for finder in _FINDERS:
        found = finder(p)
        if found is None:
            continue
        result, prefix = found
        parts = [
            f"{comp}* ({label})" for comp, label in _COMPONENTS if not prefix.startswith(comp) and p.has_prefix(comp)
        ]
        result.kind = "checkpoint" if parts else "diffusion_model"
        result.evidence.extend(parts)
        prediction = _prediction(p, prefix)
        if prediction is not None:
            result.prediction, note = prediction
            result.evidence.append(note)
        return result
    return None


def _prediction(p: Probe, prefix: str) -> tuple[str, str] | None:
    for marker in _V_MARKERS:
        for key in (marker, prefix + marker):
            if p.has(key):
                return "v", f"{p.ev(key)} (v-prediction marker)"
    return prediction_from_metadata(p.metadata)


def _first_prefix(p: Probe, prefixes: tuple[str, ...], *suffixes: str) -> str | None:
    """The first prefix under which every suffix exists as a key."""
    for prefix in prefixes:
        if all(p.has(prefix + s) for s in suffixes):
            return prefix
    return None


def _decide_unet_base(
    p: Probe, result: Classification, video: str | None, ctx_key: str | None, adm_key: str
) -> int | None:
    """Set `result.base` of a UNet (either layout): temporal layers, then the cross-attention context width, then the
    width of the added (ADM) embedding; evidence for what decided it. Returns the ADM width."""
    ctx = p.dim(ctx_key, -1) if ctx_key else None
    adm = p.dim(adm_key, -1)
    if video is not None:
        result.base = "svd"
        result.evidence.append(f"{video} (temporal layers: video model)")
    elif ctx in CONTEXT_BASES and ctx_key is not None:
        result.base = CONTEXT_BASES[ctx]
        result.evidence.append(p.ev(ctx_key))
    elif adm in ADM_BASES:
        result.base = ADM_BASES[adm]
        result.evidence.append(p.ev(adm_key))
    else:
        result.evidence.append("no cross-attention key with a known context width")
    return adm


def _ldm_unet(p: Probe) -> tuple[Classification, str] | None:
    """SD1/SD2/SDXL/refiner/SVD UNet in the LDM/SGM layout (`input_blocks`, `middle_block`, `output_blocks`)."""
    prefix = None
    for candidate in DENOISER_PREFIXES:
        if p.has(candidate + "input_blocks.0.0.weight") and (
            p.has(candidate + "out.2.weight") or p.has_prefix(candidate + "output_blocks.")
        ):
            prefix = candidate
            break
    if prefix is None:
        return None
    result = Classification()
    ev = result.evidence
    conv_in = prefix + "input_blocks.0.0.weight"
    video = p.first_prefixed_containing(prefix + "input_blocks.", ".time_stack.")
    ctx_key = p.first_present(
        [f"{prefix}input_blocks.{i}.1.transformer_blocks.0.attn2.to_k.weight" for i in range(1, 12)]
        + [f"{prefix}middle_block.1.transformer_blocks.0.attn2.to_k.weight"]
    )
    adm_key = prefix + "label_emb.0.0.weight"
    adm = _decide_unet_base(p, result, video, ctx_key, adm_key)
    if adm in ADM_BASES and ctx_key is not None and result.base == ADM_BASES[adm]:
        ev.append(p.ev(adm_key))
    in_ch = p.dim(conv_in, 1)
    ev.append(p.ev(conv_in))
    if result.base == "svd":
        # SVD concatenates the conditioning latent: 8 input channels is its normal layout, not pix2pix.
        result.variant = "normal"
    else:
        result.variant = IN_CHANNEL_VARIANTS.get(in_ch) if in_ch is not None else None
        if result.variant == "depth":
            depth_key = next(p.with_prefix("depth_model."), None)
            if depth_key is not None:
                ev.append(f"{depth_key} (depth estimator)")
    return result, prefix


def _diffusers_unet(p: Probe) -> tuple[Classification, str] | None:
    """A UNet in the diffusers layout (`conv_in`, `down_blocks`, `up_blocks`)."""
    prefix = _first_prefix(p, DIFFUSERS_PREFIXES, "conv_in.weight", "time_embedding.linear_1.weight")
    if prefix is None or not p.has_prefix(prefix + "up_blocks."):
        return None
    result = Classification()
    ev = result.evidence
    ctx_key = p.first_present(
        [f"{prefix}down_blocks.{i}.attentions.0.transformer_blocks.0.attn2.to_k.weight" for i in range(4)]
        + [f"{prefix}mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
    )
    video = p.first_prefixed_containing(prefix + "down_blocks.", ".temporal_transformer_blocks.")
    _decide_unet_base(p, result, video, ctx_key, prefix + "add_embedding.linear_1.weight")
    conv_in = prefix + "conv_in.weight"
    ev.append(p.ev(conv_in))
    in_ch = p.dim(conv_in, 1)
    result.variant = "normal" if result.base == "svd" else (IN_CHANNEL_VARIANTS.get(in_ch) if in_ch else None)
    return result, prefix


def _flux(p: Probe) -> tuple[Classification, str] | None:
    """Flux.1 / Flux.2 in the BFL layout (`double_blocks`, `single_blocks`, `img_in`)."""
    for prefix in DENOISER_PREFIXES:
        if p.has(prefix + "single_stream_modulation.lin.weight"):
            result = Classification(base="flux2", variant="normal")
            result.evidence.append(p.ev(prefix + "single_stream_modulation.lin.weight"))
            if p.has(prefix + "img_in.weight"):
                result.evidence.append(p.ev(prefix + "img_in.weight"))
            return result, prefix
        if p.has(prefix + "double_blocks.0.img_attn.norm.key_norm.scale") or (
            p.has(prefix + "double_blocks.0.img_attn.qkv.weight") and p.has_prefix(prefix + "single_blocks.")
        ):
            return _flux1_variant(p, prefix), prefix
    return None


def _flux1_variant(p: Probe, prefix: str) -> Classification:
    result = Classification(base="flux1")
    ev = result.evidence
    marker = prefix + "double_blocks.0.img_attn.norm.key_norm.scale"
    ev.append(p.ev(marker if p.has(marker) else prefix + "double_blocks.0.img_attn.qkv.weight"))
    img_in = prefix + "img_in.weight"
    in_dim = p.dim(img_in, 1)
    nf4 = any(k.endswith("quant_state.bitsandbytes__nf4") for k in p.with_prefix(prefix + "img_in."))
    guidance = prefix + "guidance_in.in_layer.weight"
    if p.has(prefix + "distilled_guidance_layer.in_proj.bias"):
        ev.append(p.ev(prefix + "distilled_guidance_layer.in_proj.bias") + " (Chroma, from schnell)")
    if not nf4 and in_dim == 384:
        result.variant = "fill"
        ev.append(p.ev(img_in) + " (image + mask conditioning)")
    elif not nf4 and in_dim == 128:
        result.variant = "control"
        ev.append(p.ev(img_in) + " (image + control latent)")
    elif p.has(guidance) or p.has_prefix(prefix + "guidance_in."):
        result.variant = "dev"
        ev.append(p.ev(guidance) if p.has(guidance) else prefix + "guidance_in.* (guidance-distilled: dev)")
    else:
        result.variant = "schnell"
        ev.append(f"no {prefix}guidance_in.* keys (timestep-distilled: schnell)")
    return result


def _diffusers_flux(p: Probe) -> tuple[Classification, str] | None:
    """Flux transformer in the diffusers layout (`x_embedder`, `single_transformer_blocks`)."""
    prefix = _first_prefix(p, DIFFUSERS_PREFIXES, "x_embedder.weight")
    if prefix is None or not p.has_prefix(prefix + "single_transformer_blocks."):
        return None
    x_emb = prefix + "x_embedder.weight"
    if p.has_prefix(prefix + "single_stream_modulation."):
        result = Classification(base="flux2", variant="normal")
        result.evidence.append(next(p.with_prefix(prefix + "single_stream_modulation.")))
        result.evidence.append(p.ev(x_emb))
        return result, prefix
    result = Classification(base="flux1")
    ev = result.evidence
    ev.append(p.ev(x_emb))
    in_dim = p.dim(x_emb, 1)
    guidance = prefix + "time_text_embed.guidance_embedder.linear_1.weight"
    if in_dim == 384:
        result.variant = "fill"
    elif in_dim == 128:
        result.variant = "control"
    elif p.has(guidance):
        result.variant = "dev"
        ev.append(p.ev(guidance))
    else:
        result.variant = "schnell"
        ev.append("no time_text_embed.guidance_embedder.* keys (schnell)")
    return result, prefix


def _sd3_base(width: int | None, depth: int, attn2: bool, patches: int | None) -> str:
    if width == 2432 or depth == 38:
        return "sd35_large"
    if attn2 or patches == 147456:
        return "sd35_medium"
    if width == 1536 or depth == 24:
        return "sd3"
    return "unknown"


def _mmdit(p: Probe) -> tuple[Classification, str] | None:
    """SD3 / SD3.5 MMDiT in the original layout (`joint_blocks`)."""
    prefix = _first_prefix(p, DENOISER_PREFIXES, "joint_blocks.0.context_block.attn.qkv.weight")
    if prefix is None:
        return None
    x_emb = prefix + "x_embedder.proj.weight"
    width = p.dim(x_emb, 0)
    depth = p.max_index(prefix + "joint_blocks.", ".x_block.attn.qkv.weight") + 1
    attn2_key = prefix + "joint_blocks.0.x_block.attn2.qkv.weight"
    pos_key = prefix + "pos_embed"
    result = Classification(base=_sd3_base(width, depth, p.has(attn2_key), p.dim(pos_key, 1)), variant="normal")
    ev = result.evidence
    ev.append(p.ev(x_emb) if p.has(x_emb) else p.ev(prefix + "joint_blocks.0.context_block.attn.qkv.weight"))
    ev.append(f"{depth} joint blocks")
    if p.has(attn2_key):
        ev.append(p.ev(attn2_key) + " (MMDiT-X)")
    elif p.has(pos_key):
        ev.append(p.ev(pos_key))
    return result, prefix


def _diffusers_sd3(p: Probe) -> tuple[Classification, str] | None:
    """SD3 / SD3.5 transformer in the diffusers layout."""
    prefix = _first_prefix(
        p, DIFFUSERS_PREFIXES, "pos_embed.proj.weight", "transformer_blocks.0.attn.add_q_proj.weight"
    )
    if prefix is None:
        return None
    pos = prefix + "pos_embed.proj.weight"
    depth = p.max_index(prefix + "transformer_blocks.", ".attn.to_q.weight") + 1
    attn2_key = prefix + "transformer_blocks.0.attn2.to_q.weight"
    patches = p.dim(prefix + "pos_embed.pos_embed", 1)
    result = Classification(base=_sd3_base(p.dim(pos, 0), depth, p.has(attn2_key), patches), variant="normal")
    result.evidence += [p.ev(pos), f"{depth} transformer blocks"]
    return result, prefix


def _pixart(p: Probe) -> tuple[Classification, str] | None:
    """PixArt-α/Σ, original layout (`t_block`, `y_embedder.y_embedding`) or diffusers (`adaln_single`)."""
    prefix = _first_prefix(p, DENOISER_PREFIXES, "t_block.1.weight", "y_embedder.y_embedding")
    if prefix is not None:
        result = Classification(base="pixart", variant="normal")
        result.evidence += [p.ev(prefix + "t_block.1.weight"), p.ev(prefix + "y_embedder.y_embedding")]
        return result, prefix
    prefix = _first_prefix(
        p, DIFFUSERS_PREFIXES, "adaln_single.emb.timestep_embedder.linear_1.bias", "pos_embed.proj.bias"
    )
    if prefix is not None and p.has_prefix(prefix + "caption_projection."):
        result = Classification(base="pixart", variant="normal")
        result.evidence += [
            p.ev(prefix + "adaln_single.emb.timestep_embedder.linear_1.bias"),
            p.ev(prefix + "pos_embed.proj.bias"),
        ]
        return result, prefix
    return None


def _cascade(p: Probe) -> tuple[Classification, str] | None:
    """Stable Cascade stage C (prior) or stage B (decoder)."""
    prefix = _first_prefix(p, DENOISER_PREFIXES, "clf.1.weight")
    if prefix is None:
        return None
    result = Classification(base="cascade", variant="normal")
    ev = result.evidence
    ev.append(p.ev(prefix + "clf.1.weight"))
    if p.has(prefix + "clip_txt_mapper.weight"):
        lite = p.dim(prefix + "clip_txt_mapper.weight", 0) == 1536
        ev.append(p.ev(prefix + "clip_txt_mapper.weight") + (" (stage C lite)" if lite else " (stage C)"))
    elif p.has(prefix + "clip_mapper.weight"):
        ev.append(p.ev(prefix + "clip_mapper.weight") + " (stage B)")
    return result, prefix


# Order matters only where layouts share keys: DiTs first (their bare keys are unambiguous), then UNets.
_FINDERS: tuple[Finder, ...] = (
    _flux,
    _mmdit,
    _ldm_unet,
    _diffusers_flux,
    _diffusers_sd3,
    _diffusers_unet,
    _pixart,
    _cascade,
)
