"""AnimateDiff motion modules (§1.12): v1, v2, v3 for SD1 and the SDXL beta."""

from __future__ import annotations

from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

_PE = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
_V2 = "mid_block.motion_modules.0.temporal_transformer.norm.bias"
_SDXL = "up_blocks.2.motion_modules.0.temporal_transformer.norm.weight"


def detect_motion_module(p: Probe) -> Classification | None:
    """A motion module file: temporal transformers under `*_blocks.N.motion_modules.M`."""
    prefix = next((pre for pre in ("", "module.", "model.") if p.has(pre + _PE)), None)
    if prefix is None:
        if p.first_containing(".motion_modules.", ".temporal_transformer.proj_in.") is None:
            return None
        return Classification(
            kind="motion_module", base="unknown", evidence=["*.motion_modules.*.temporal_transformer.* (AnimateDiff)"]
        )
    pe = prefix + _PE
    result = Classification(kind="motion_module", base="sd1")
    ev = result.evidence
    ev.append(p.ev(pe))
    if p.dim(prefix + _SDXL, 0) == 320:
        result.base = "sdxl"
        ev.append(p.ev(prefix + _SDXL) + " (SDXL motion module)")
    elif p.dim(pe, 1) == 24:
        ev.append("24 frame positions: AnimateDiff v1")
    elif p.has(prefix + _V2):
        ev.append(p.ev(prefix + _V2) + " (mid-block motion module: AnimateDiff v2)")
    else:
        ev.append("no mid-block motion module: AnimateDiff v3")
    return result
