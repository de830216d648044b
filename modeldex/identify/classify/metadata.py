"""What safetensors metadata (Stability ModelSpec `modelspec.*`, kohya `ss_*`) says about lineage and prediction.

Shapes decide architecture; these keys are used for what shapes cannot tell (prediction type, an SD2 v-model,
a LoRA whose keys carry no dimension that separates bases) and as supporting evidence.
"""

from __future__ import annotations

import json

# modelspec.architecture prefixes, longest first so "stable-diffusion-xl-v1-refiner" is not read as SDXL base.
_ARCHITECTURE_BASES: tuple[tuple[str, str], ...] = (
    ("stable-diffusion-xl-v1-refiner", "sdxl_refiner"),
    ("stable-diffusion-xl", "sdxl"),
    ("stable-diffusion-3.5-medium", "sd35_medium"),
    ("stable-diffusion-3.5-large", "sd35_large"),
    ("stable-diffusion-3", "sd3"),
    ("stable-diffusion-v2", "sd2"),
    ("stable-diffusion-v1", "sd1"),
    ("stable-cascade", "cascade"),
    ("stable-video-diffusion", "svd"),
    ("flux-2", "flux2"),
    ("flux-1", "flux1"),
    ("flux.1", "flux1"),
    ("chroma", "flux1"),
    ("pixart", "pixart"),
)

_SS_BASES: dict[str, str] = {
    "sd_v1": "sd1",
    "sd_v1_v": "sd1",
    "sd_v2": "sd2",
    "sd_v2_v": "sd2",
    "sdxl_base_v1-0": "sdxl",
    "sdxl_base_v0-9": "sdxl",
    "sdxl_refiner_v1-0": "sdxl_refiner",
    "flux1": "flux1",
    "chroma": "flux1",
    "sd3": "sd3",
    "sd3.5-medium": "sd35_medium",
    "sd3.5-large": "sd35_large",
}


def base_from_metadata(metadata: dict[str, str]) -> tuple[str, str] | None:
    """(base, evidence) from `modelspec.architecture`, `ss_base_model_version` or `ss_v2`, if any says so."""
    arch = metadata.get("modelspec.architecture", "").strip().lower()
    if arch:
        for prefix, base in _ARCHITECTURE_BASES:
            if arch.startswith(prefix):
                return base, f"modelspec.architecture={metadata['modelspec.architecture']}"
    version = metadata.get("ss_base_model_version", "").strip().lower()
    if version in _SS_BASES:
        return _SS_BASES[version], f"ss_base_model_version={metadata['ss_base_model_version']}"
    if version.startswith("sdxl"):
        return "sdxl", f"ss_base_model_version={metadata['ss_base_model_version']}"
    # kohya writes ss_v2=False for SD1 and SDXL alike, so only True carries information.
    if metadata.get("ss_v2", "").strip().lower() == "true":
        return "sd2", "ss_v2=True"
    return None


def prediction_from_metadata(metadata: dict[str, str]) -> tuple[str, str] | None:
    """("v" or "eps", evidence) when metadata states the prediction type."""
    kind = metadata.get("modelspec.prediction_type", "").strip().lower()
    if kind in ("v", "v_prediction", "v-prediction", "vpred", "v_pred"):
        return "v", f"modelspec.prediction_type={metadata['modelspec.prediction_type']}"
    if kind in ("epsilon", "eps"):
        return "eps", f"modelspec.prediction_type={metadata['modelspec.prediction_type']}"
    arch = metadata.get("modelspec.architecture", "").strip().lower()
    if arch.split("/")[0].endswith("-768-v") or arch.split("/")[0].endswith("-v-pred"):
        return "v", f"modelspec.architecture={metadata['modelspec.architecture']}"
    version = metadata.get("ss_base_model_version", "").strip().lower()
    if version.endswith("_v"):
        return "v", f"ss_base_model_version={metadata['ss_base_model_version']}"
    if metadata.get("ss_v_parameterization", "").strip().lower() == "true":
        return "v", "ss_v_parameterization=True"
    return None


def network_args(metadata: dict[str, str]) -> dict[str, str]:
    """kohya `ss_network_args` (a JSON object of strings); empty when missing or malformed."""
    raw = metadata.get("ss_network_args")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def is_negative_embedding(metadata: dict[str, str]) -> bool:
    """ModelSpec marks negative textual inversions with `modelspec.is_negative_embedding`."""
    return metadata.get("modelspec.is_negative_embedding", "").strip().lower() in ("true", "1", "yes")
