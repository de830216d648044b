"""Classification: from a Header (keys, shapes, metadata) to the taxonomy.md kind/base/variant/prediction/algo.

Detectors run in the order of identify-signatures.md §0, most specific first: families whose marker keys cannot
occur elsewhere (ControlNet, IP-Adapter, motion modules), then adapters by majority of keys, then denoisers,
VAEs, text encoders, the small dictionaries (embeddings, hypernetworks) and upscalers.
"""

from __future__ import annotations

from collections.abc import Callable

from modeldex.identify.classify.adapters import detect_adapter
from modeldex.identify.classify.checkpoints import detect_denoiser
from modeldex.identify.classify.control import detect_control, detect_ip_adapter
from modeldex.identify.classify.diffusers_folder import classify_diffusers
from modeldex.identify.classify.embeddings import detect_aesthetic_gradient, detect_embedding, detect_hypernetwork
from modeldex.identify.classify.encoders import detect_text_encoder, detect_vae
from modeldex.identify.classify.motion import detect_motion_module
from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification
from modeldex.identify.classify.upscalers import detect_upscaler
from modeldex.identify.records import Header

__all__ = ["Classification", "Probe", "classify", "classify_probe"]

Detector = Callable[[Probe], Classification | None]

_DETECTORS: tuple[Detector, ...] = (
    detect_aesthetic_gradient,
    detect_control,
    detect_ip_adapter,
    detect_motion_module,
    detect_adapter,
    detect_denoiser,
)
_LATE_DETECTORS: tuple[Detector, ...] = (
    detect_text_encoder,
    detect_embedding,
    detect_hypernetwork,
    detect_upscaler,
)


def classify(header: Header, name: str = "") -> Classification:
    """Classify a file from its header. `name` (the file name) only breaks ties that shapes cannot decide."""
    if header.format == "diffusers":
        return classify_diffusers(header, name, classify_probe)
    result = classify_probe(Probe.from_header(header), name)
    arch = header.metadata.get("general.architecture") if header.format == "gguf" else None
    if arch:
        result.evidence.append(f"general.architecture={arch}")
    return result


def classify_probe(p: Probe, name: str = "") -> Classification:
    """Classify the tensors of one probe (a file, or one component of a diffusers folder)."""
    if not p.tensors:
        return Classification(evidence=["no tensors"])
    for detector in _DETECTORS:
        result = detector(p)
        if result is not None:
            return result
    vae = detect_vae(p, name)
    if vae is not None:
        return vae
    for detector in _LATE_DETECTORS:
        result = detector(p)
        if result is not None:
            return result
    first = p.sorted_keys[0]
    return Classification(evidence=[f"{len(p)} tensors, no known signature (first key: {p.ev(first)})"])
