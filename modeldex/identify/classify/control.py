"""ControlNet family (ControlNet, T2I-Adapter, ControlNet-LLLite, Control-LoRA) and IP-Adapter (§1.9-§1.10)."""

from __future__ import annotations

from modeldex.identify.classify.checkpoints import ADM_BASES, CONTEXT_BASES
from modeldex.identify.classify.metadata import base_from_metadata
from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

# T2I-Adapter `conv_in` in-channels: pixel-unshuffled RGB (x64 for SD1, x256 for SDXL) or one-channel sketches.
_T2I_CIN_BASES = {192: "sd1", 64: "sd1", 768: "sdxl", 256: "sdxl"}
_IP_CONTEXT_BASES = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


def detect_control(p: Probe) -> Classification | None:
    """Any ControlNet-family file, else None."""
    for finder in (_control_lora, _lllite, _ldm_controlnet, _diffusers_controlnet, _dit_controlnet, _t2i_adapter):
        result = finder(p)
        if result is not None:
            result.kind = "controlnet"
            return result
    return None


def _context_base(p: Probe, keys: list[str]) -> tuple[str, str] | None:
    key = p.first_present(keys)
    if key is None:
        return None
    ctx = p.dim(key, -1)
    if ctx in CONTEXT_BASES:
        return CONTEXT_BASES[ctx], p.ev(key)
    return None


def _ldm_attn_keys(prefix: str, suffix: str = "weight") -> list[str]:
    return [f"{prefix}input_blocks.{i}.1.transformer_blocks.0.attn2.to_k.{suffix}" for i in range(1, 12)] + [
        f"{prefix}middle_block.1.transformer_blocks.0.attn2.to_k.{suffix}"
    ]


def _set_base(p: Probe, result: Classification, found: tuple[str, str] | None, adm_key: str | None = None) -> None:
    if found is not None:
        result.base = found[0]
        result.evidence.append(found[1])
        return
    if adm_key is not None and p.dim(adm_key, -1) in ADM_BASES:
        result.base = ADM_BASES[p.dim(adm_key, -1) or 0]
        result.evidence.append(p.ev(adm_key))
        return
    meta = base_from_metadata(p.metadata)
    if meta is not None:
        result.base = meta[0]
        result.evidence.append(meta[1])


def _control_lora(p: Probe) -> Classification | None:
    if not p.has("lora_controlnet"):
        return None
    result = Classification(variant="control_lora", evidence=["lora_controlnet (Control-LoRA marker)"])
    found = _context_base(p, _ldm_attn_keys("", "down")) or _context_base(p, _ldm_attn_keys("", "weight"))
    _set_base(p, result, found, "label_emb.0.0.weight")
    return result


def _lllite(p: Probe) -> Classification | None:
    key = next(p.with_prefix("lllite_unet_"), None)
    if key is None:
        return None
    # sd-scripts ships ControlNet-LLLite for SDXL only, with SDXL's SGM module names.
    result = Classification(base="sdxl", variant="lllite", evidence=[p.ev(key) + " (ControlNet-LLLite, SDXL)"])
    if "lllite.cond_in_channels" in p.metadata:
        result.evidence.append(f"lllite.cond_in_channels={p.metadata['lllite.cond_in_channels']}")
    return result


def _ldm_controlnet(p: Probe) -> Classification | None:
    for prefix in ("control_model.", "", "model.control_model."):
        hint = prefix + "input_hint_block.0.weight"
        if p.has(hint) and p.has_prefix(prefix + "zero_convs."):
            result = Classification(variant="controlnet", evidence=[p.ev(hint)])
            _set_base(p, result, _context_base(p, _ldm_attn_keys(prefix)), prefix + "label_emb.0.0.weight")
            if p.has(prefix + "difference") or p.has("difference"):
                result.evidence.append("difference (diff ControlNet)")
            return result
    return None


def _diffusers_controlnet(p: Probe) -> Classification | None:
    for prefix in ("", "controlnet."):
        cond = prefix + "controlnet_cond_embedding.conv_in.weight"
        if p.has(cond) and p.has_prefix(prefix + "controlnet_down_blocks."):
            result = Classification(variant="controlnet", evidence=[p.ev(cond)])
            keys = [f"{prefix}down_blocks.{i}.attentions.0.transformer_blocks.0.attn2.to_k.weight" for i in range(4)]
            keys.append(f"{prefix}mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight")
            _set_base(p, result, _context_base(p, keys), prefix + "add_embedding.linear_1.weight")
            if p.has(prefix + "task_embedding"):
                result.evidence.append("task_embedding (ControlNet Union)")
            return result
    return None


def _dit_controlnet(p: Probe) -> Classification | None:
    """Flux (XLabs, InstantX, Mistoline) and SD3 ControlNets."""
    if p.has("controlnet_blocks.0.weight") and p.has_prefix("double_blocks."):
        return Classification(
            base="flux1",
            variant="controlnet",
            evidence=["controlnet_blocks.0.weight + double_blocks.* (XLabs Flux ControlNet)"],
        )
    if p.has("controlnet_x_embedder.weight"):
        if p.has_prefix("single_transformer_blocks.") or p.has("time_text_embed.guidance_embedder.linear_1.weight"):
            return Classification(
                base="flux1",
                variant="controlnet",
                evidence=[p.ev("controlnet_x_embedder.weight") + " (InstantX Flux ControlNet)"],
            )
    if p.has("controlnet_blocks.0.linear.weight"):
        return Classification(
            base="flux1",
            variant="controlnet",
            evidence=[p.ev("controlnet_blocks.0.linear.weight") + " (Mistoline Flux ControlNet)"],
        )
    if p.has("pos_embed_input.proj.weight"):
        width = p.dim("pos_embed.proj.weight", 0) or p.dim("pos_embed_input.proj.weight", 0)
        base = {1536: "sd3", 2432: "sd35_large"}.get(width or 0, "unknown")
        if base == "sd3" and p.has("transformer_blocks.0.attn2.to_q.weight"):
            base = "sd35_medium"
        return Classification(
            base=base, variant="controlnet", evidence=[p.ev("pos_embed_input.proj.weight") + " (SD3 ControlNet)"]
        )
    return None


def _t2i_adapter(p: Probe) -> Classification | None:
    for prefix in ("adapter.", ""):
        full = prefix + "conv_in.weight"
        if p.has(full) and (p.has(prefix + "body.0.block1.weight") or p.has(prefix + "body.0.resnets.0.block1.weight")):
            cin = p.dim(full, 1)
            return Classification(
                base=_T2I_CIN_BASES.get(cin or 0, "unknown"), variant="t2i_adapter", evidence=[p.ev(full)]
            )
        light = prefix + "body.0.in_conv.weight"
        if p.has(light) and p.has_prefix(prefix + "body.0.body."):
            cin = p.dim(light, 1)
            return Classification(
                base=_T2I_CIN_BASES.get(cin or 0, "unknown"),
                variant="t2i_adapter",
                evidence=[p.ev(light) + " (light adapter)"],
            )
    if p.has("style_embedding") and p.has_prefix("transformer_layes."):
        return Classification(base="sd1", variant="t2i_adapter", evidence=["style_embedding (T2I style adapter)"])
    return None


def detect_ip_adapter(p: Probe) -> Classification | None:
    """IP-Adapter: `image_proj.*` + `ip_adapter.*` (flat safetensors or the flattened nested .bin), XLabs Flux."""
    if p.has_prefix("image_proj.") and p.has_prefix("ip_adapter."):
        result = Classification(kind="ip_adapter")
        ev = result.evidence
        key = next((k for k in p.with_prefix("ip_adapter.") if k.endswith(".to_k_ip.weight")), None)
        ctx = p.dim(key, -1) if key else None
        if key is not None and ctx in _IP_CONTEXT_BASES:
            result.base = _IP_CONTEXT_BASES[ctx]
            ev.append(p.ev(key))
        else:
            ev.append("no ip_adapter.*.to_k_ip.weight with a known context width")
        if p.has_prefix("image_proj.latents") or p.has_prefix("image_proj.proj_in."):
            ev.append("image_proj.latents (Resampler: IP-Adapter Plus)")
        elif any("lora" in k for k in p.with_prefix("ip_adapter.")):
            ev.append("ip_adapter.*_lora.* (IP-Adapter FaceID)")
        elif p.has("image_proj.proj.weight"):
            ev.append(p.ev("image_proj.proj.weight"))
        return result
    if p.has_prefix("ip_adapter_proj_model."):
        key = next((k for k in p.tensors if "ip_adapter_double_stream" in k), "ip_adapter_proj_model.*")
        return Classification(kind="ip_adapter", base="flux1", evidence=[f"{key} (XLabs Flux IP-Adapter)"])
    return None
