"""A diffusers folder: each component's weights are classified by shape, the pipeline's class name is a fallback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeldex.identify.classify.checkpoints import CONTEXT_BASES, detect_denoiser
from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification
from modeldex.identify.records import Header, TensorInfo

_DENOISERS = ("unet", "transformer", "prior", "decoder")
_PIPELINE_PARTS = ("vae", "text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "image_encoder")
# model_index.json `_class_name` -> base, for folders whose weights could not be read.
_PIPELINE_BASES = {
    "StableDiffusionXL": "sdxl",
    "StableDiffusion3": "sd3",
    "StableVideoDiffusion": "svd",
    "StableCascade": "cascade",
    "PixArt": "pixart",
    "Flux2": "flux2",
    "Flux": "flux1",
    "StableDiffusion": "sd1",
}


def classify_diffusers(
    header: Header, name: str, classify_probe: Callable[[Probe, str], Classification]
) -> Classification:
    """Classify a diffusers folder header (tensors keyed `<component>/<key>`)."""
    components: dict[str, dict[str, TensorInfo]] = {}
    for key, info in header.tensors.items():
        component, sep, rest = key.partition("/")
        if sep:
            components.setdefault(component, {})[rest] = info
        else:
            components.setdefault("", {})[key] = info
    model_index = header.extra.get("model_index")
    configs = header.extra.get("configs") or {}
    class_name = model_index.get("_class_name") if isinstance(model_index, dict) else None

    for component in _DENOISERS:
        if component not in components:
            continue
        sub = Probe(components[component], header.metadata, {}, "diffusers")
        result = detect_denoiser(sub)
        if result is None:
            continue
        result.evidence = [f"{component}/{e}" for e in result.evidence]
        present = [
            c for c in _PIPELINE_PARTS if c in components or (isinstance(model_index, dict) and c in model_index)
        ]
        result.kind = (
            "checkpoint" if any(c in ("vae", "text_encoder", "text_encoder_2") for c in present) else "diffusion_model"
        )
        if present:
            result.evidence.append("components: " + ", ".join([component, *present]))
        _config_fallbacks(result, configs.get(component), configs.get("scheduler"))
        if class_name:
            result.evidence.append(f"model_index.json _class_name={class_name}")
        return result

    if len(components) == 1:
        # A single model folder (config.json beside its weights): classify its keys like a single file.
        (only,) = components.values()
        result = classify_probe(Probe(only, header.metadata, {}, "diffusers"), name)
        config = next(iter(configs.values()), None) if configs else None
        if isinstance(config, dict) and config.get("_class_name"):
            result.evidence.append(f"config.json _class_name={config['_class_name']}")
        return result

    if class_name:
        for prefix, base in _PIPELINE_BASES.items():
            if str(class_name).startswith(prefix):
                return Classification(
                    kind="checkpoint",
                    base=base,
                    evidence=[f"model_index.json _class_name={class_name} (weights not readable)"],
                )
    return Classification(evidence=["a diffusers folder with no recognisable denoiser"])


def _config_fallbacks(result: Classification, config: Any, scheduler: Any) -> None:
    """Fill what shapes left open from the denoiser's config.json; the prediction type from the scheduler's."""
    if isinstance(config, dict) and result.base == "unknown":
        ctx = config.get("cross_attention_dim")
        if isinstance(ctx, int) and ctx in CONTEXT_BASES:
            result.base = CONTEXT_BASES[ctx]
            result.evidence.append(f"config.json cross_attention_dim={ctx}")
    kind = scheduler.get("prediction_type") if isinstance(scheduler, dict) else None
    if result.prediction is None and kind in ("v_prediction", "epsilon"):
        result.prediction = "v" if kind == "v_prediction" else "eps"
        result.evidence.append(f"scheduler prediction_type={kind}")
