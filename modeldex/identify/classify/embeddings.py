"""Small dictionaries: textual inversion embeddings, A1111 hypernetworks, aesthetic gradients (§1.7-§1.8, §1.12)."""

from __future__ import annotations

import re

from modeldex.identify.classify.metadata import is_negative_embedding
from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

_TOKEN_WIDTH_BASES = {768: "sd1", 1024: "sd2", 1280: "sdxl"}
_HYPERNET_KEY = re.compile(r"^(\d+)\.\d+\.linear(?:\.\d+|\d)\.(?:weight|bias)$")
# A token vector file holds a handful of tensors at most; anything bigger is not an embedding.
_MAX_EMBEDDING_TENSORS = 4


def detect_aesthetic_gradient(p: Probe) -> Classification | None:
    """A bare tensor saved on its own: the mean CLIP image embedding of an aesthetic gradient."""
    if len(p.tensors) != 1 or "" not in p.tensors:
        return None
    shape = p.shape("") or ()
    width = shape[-1] if shape else None
    if len(shape) in (1, 2) and (len(shape) == 1 or shape[0] == 1) and width in (768, 1024):
        base = "sd1" if width == 768 else "sd2"
        return Classification(
            kind="aesthetic_gradient",
            base=base,
            evidence=[f"a bare tensor [{', '.join(map(str, shape))}] (mean CLIP image embedding)"],
        )
    return None


def detect_embedding(p: Probe) -> Classification | None:
    """Textual inversion: safetensors `emb_params`, SDXL `clip_l`+`clip_g`, A1111 `string_to_param`, one-token dicts."""
    tensors = p.tensors
    if not tensors or len(tensors) > _MAX_EMBEDDING_TENSORS or "" in tensors:
        return None
    result = Classification(kind="embedding")
    if "clip_g" in tensors:
        result.base = "sdxl"
        result.evidence.append(p.ev("clip_g"))
        if "clip_l" in tensors:
            result.evidence.append(p.ev("clip_l"))
    else:
        key = p.first_present(["emb_params", *sorted(k for k in tensors if k.startswith("string_to_param."))])
        if key is None and len(tensors) == 1:
            key = next(iter(tensors))  # diffusers learned_embeds.bin: {"<token>": vector}; A1111 accepts any
            shape = p.shape(key) or ()
            if len(shape) not in (1, 2):
                return None
        if key is None:
            return None
        shape = p.shape(key) or ()
        if not shape or len(shape) > 2:
            return None
        width = shape[-1]
        if width not in _TOKEN_WIDTH_BASES and key != "emb_params" and not key.startswith("string_to_param."):
            return None
        result.base = _TOKEN_WIDTH_BASES.get(width, "unknown")
        result.evidence.append(p.ev(key) + (f" ({shape[0]} vectors)" if len(shape) == 2 else " (one vector)"))
    name = p.values.get("name")
    if isinstance(name, str) and name:
        result.evidence.append(f"name={name}")
    if is_negative_embedding(p.metadata):
        result.variant = "negative"
        result.evidence.append(f"modelspec.is_negative_embedding={p.metadata['modelspec.is_negative_embedding']}")
    return result


def detect_hypernetwork(p: Probe) -> Classification | None:
    """A1111 hypernetwork: int-keyed layer lists (`768.0.linear.0.weight`) for each attention width."""
    if not p.tensors:
        return None
    sizes: set[int] = set()
    for key in p.tensors:
        match = _HYPERNET_KEY.match(key)
        if match is None:
            return None
        sizes.add(int(match.group(1)))
    result = Classification(kind="hypernetwork")
    # Keys are the context widths the hypernetwork patches: 768 SD1, 1024 SD2, 2048 SDXL.
    for width, base in ((2048, "sdxl"), (1024, "sd2"), (768, "sd1")):
        if width in sizes:
            result.base = base
            break
    result.evidence.append(f"hypernetwork layers for widths {', '.join(str(s) for s in sorted(sizes))}")
    structure = p.values.get("layer_structure")
    if structure is not None:
        result.evidence.append(f"layer_structure={structure}")
    return result
