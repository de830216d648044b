"""LoRA and LyCORIS adapters: is the file mostly adapter keys, which algorithm, which base (§1.5-§1.6, §1.13).

A merged checkpoint may carry a few LoRA keys, so a file is an adapter only when adapter keys are the majority.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modeldex.identify.classify.checkpoints import CONTEXT_BASES
from modeldex.identify.classify.metadata import base_from_metadata, network_args
from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

# kohya / LyCORIS module prefixes: everything after the first "." is the parameter suffix.
KOHYA_PREFIXES = (
    "lora_unet_",
    "lora_te_",
    "lora_te1_",
    "lora_te2_",
    "lora_te3_",
    "lora_prior_unet_",
    "lora_prior_te_",
    "lora_transformer_",
    "oft_unet_",
    "oft_te_",
    "lycoris_",
)
# Parameter names that only adapters use, for layouts that keep the module path dotted (PEFT, diffusers, LyCORIS).
DOTTED_SUFFIXES = (
    "lora_A.weight",
    "lora_B.weight",
    "lora_A.default.weight",
    "lora_B.default.weight",
    "lora_magnitude_vector",
    "lora_magnitude_vector.weight",
    "lora_magnitude_vector.default.weight",
    "lora_down.weight",
    "lora_up.weight",
    "lora_mid.weight",
    "hada_w1_a",
    "hada_w1_b",
    "hada_w2_a",
    "hada_w2_b",
    "hada_t1",
    "hada_t2",
    "lokr_w1",
    "lokr_w1_a",
    "lokr_w1_b",
    "lokr_w2",
    "lokr_w2_a",
    "lokr_w2_b",
    "lokr_t1",
    "lokr_t2",
    "oft_blocks",
    "oft_diag",
    "dora_scale",
)
_DOWN_SUFFIXES = ("lora_down.weight", "lora_A.weight", "lora_A.default.weight", "lora.down.weight")
_UP_SUFFIXES = ("lora_up.weight", "lora_B.weight", "lora_B.default.weight", "lora.up.weight")
_DORA_SUFFIXES = (
    "dora_scale",
    "lora_magnitude_vector",
    "lora_magnitude_vector.weight",
    "lora_magnitude_vector.default.weight",
)
# When one file mixes algorithms (LyCORIS trains norm layers as `norm` beside any algo), the most specific wins.
_ALGO_PRIORITY = ("loha", "lokr", "boft", "oft", "glora", "ia3", "full", "locon", "lora", "norm")

_CROSS_ATTN_RE = re.compile(r"attn2[._](?:processor[._])?to_k(?:_lora)?$")
# Text-encoder layers whose in- and out-width both equal the encoder width.
_TE_WIDTH_RE = re.compile(r"self_attn[._](?:q|k|v|out)_proj$|layer_norm[12]$")
_FLUX_RE = re.compile(
    r"^lora_unet_(?:double|single)_blocks_|^lora_transformer_single_transformer_blocks_|"
    r"(?:^|\.)(?:double_blocks|single_blocks|single_transformer_blocks)\."
)
_DIFFUSERS_DIT_RE = re.compile(r"(?:^|\.|_)transformer_blocks[._]\d+[._]attn[._](?:to_q|to_k|add_q_proj)$")
_SD3_RE = re.compile(r"^lora_unet_joint_blocks_|(?:^|\.)joint_blocks\.")
_SGM_UNET_RE = re.compile(r"^lora_unet_(?:input_blocks|output_blocks|middle_block)_")
_DEEP_BLOCK_RE = re.compile(r"transformer_blocks[._]([2-9]|\d\d)[._]")
_FLUX2_HINT_RE = re.compile(r"stream_modulation")
_WIDTH_BASES = {768: "sd1", 1024: "sd2", 1280: "sdxl"}


@dataclass
class Adapter:
    """The adapter keys of a file, grouped by the module they patch: module -> {suffix: key}."""

    modules: dict[str, dict[str, str]] = field(default_factory=dict)
    count: int = 0


_SUFFIXES_BY_DOTS = tuple(frozenset(s for s in DOTTED_SUFFIXES if s.count(".") == n) for n in range(3))


def split_adapter_key(key: str) -> tuple[str, str] | None:
    """(module, parameter suffix) when `key` is an adapter parameter, else None."""
    if key.startswith(KOHYA_PREFIXES):
        module, _, suffix = key.partition(".")
        return (module, suffix) if suffix else None
    # Split off at most the last three components once, instead of testing every suffix with endswith:
    # a checkpoint has thousands of keys and none of them is an adapter's.
    parts = key.rsplit(".", 3)
    for dots, suffixes in enumerate(_SUFFIXES_BY_DOTS):
        if len(parts) >= dots + 2:
            suffix = ".".join(parts[-dots - 1 :])
            if suffix in suffixes:
                return key[: -len(suffix) - 1], suffix
    if len(parts) >= 3 and parts[-1] == "weight" and parts[-2] in ("down", "up"):
        last = parts[-3].rsplit(".", 1)[-1]
        # Older diffusers (`to_k_lora`, `lora_linear_layer`) and XLabs (`qkv_lora1`) name the LoRA submodule.
        if last in ("lora", "lora_linear_layer") or last.endswith(("_lora", "_lora1", "_lora2")):
            return key[: -len(parts[-2]) - len(".weight") - 1], f"lora.{parts[-2]}.weight"
    return None


def collect(p: Probe) -> Adapter:
    """Every adapter key of the file, grouped by module (an `alpha` counts when its module is an adapter)."""
    adapter = Adapter()
    alphas: list[str] = []
    for key in p.tensors:
        split = split_adapter_key(key)
        if split is None:
            if key.endswith(".alpha"):
                alphas.append(key)
            continue
        module, suffix = split
        adapter.modules.setdefault(module, {})[suffix] = key
        adapter.count += 1
    for key in alphas:
        module = key[: -len(".alpha")]
        if module in adapter.modules:
            adapter.modules[module]["alpha"] = key
            adapter.count += 1
    return adapter


def detect_adapter(p: Probe) -> Classification | None:
    """A LoRA/LyCORIS classification when adapter keys are the majority of the file's keys."""
    if not p.tensors:
        return None
    adapter = collect(p)
    if adapter.count * 2 <= len(p.tensors):
        return None
    result = Classification(kind="lora")
    algos: dict[str, str] = {}  # algo -> a deciding key
    for parts in adapter.modules.values():
        found = _module_algo(p, parts)
        if found is not None:
            algos.setdefault(found[0], found[1])
    dora = next((parts[s] for parts in adapter.modules.values() for s in _DORA_SUFFIXES if s in parts), None)
    if dora is not None:
        result.algo = "dora"
        result.evidence.append(p.ev(dora) + " (weight-decomposed)")
    else:
        algo = next((a for a in _ALGO_PRIORITY if a in algos), "lora")
        result.algo = algo
        if algo in algos:
            result.evidence.append(p.ev(algos[algo]))
    args = network_args(p.metadata)
    if "algo" in args:
        result.evidence.append(f"ss_network_args.algo={args['algo']}")
    elif "ss_network_module" in p.metadata:
        result.evidence.append(f"ss_network_module={p.metadata['ss_network_module']}")
    result.base, base_evidence = _base(p, adapter)
    result.evidence.extend(base_evidence)
    result.evidence.append(f"{adapter.count} of {len(p.tensors)} keys are adapter weights")
    return result


def _module_algo(p: Probe, parts: dict[str, str]) -> tuple[str, str] | None:
    """(algo, deciding key) for one module's parameters."""
    if "hada_w1_a" in parts:
        return "loha", parts["hada_w1_a"]
    for s in ("lokr_w1", "lokr_w1_a"):
        if s in parts:
            return "lokr", parts[s]
    if "oft_blocks" in parts:
        shape = p.shape(parts["oft_blocks"]) or ()
        return ("boft" if len(shape) == 4 else "oft"), parts["oft_blocks"]
    if "oft_diag" in parts:
        return "oft", parts["oft_diag"]
    if "on_input" in parts:
        return "ia3", parts["on_input"]
    if "a1.weight" in parts:
        return "glora", parts["a1.weight"]
    if "diff" in parts:
        return "full", parts["diff"]
    if "w_norm" in parts:
        return "norm", parts["w_norm"]
    down = next((parts[s] for s in _DOWN_SUFFIXES if s in parts), None)
    if down is not None:
        shape = p.shape(down) or ()
        if "lora_mid.weight" in parts:
            return "locon", parts["lora_mid.weight"]
        if len(shape) == 4 and shape[2:] != (1, 1):
            return "locon", down
        return "lora", down
    return None


def module_dims(p: Probe, parts: dict[str, str]) -> tuple[int | None, int | None]:
    """(in_features, out_features) of the layer a module patches, where its parameters tell."""

    def dim(suffix: str, index: int) -> int | None:
        return p.dim(parts[suffix], index) if suffix in parts else None

    down = next((s for s in _DOWN_SUFFIXES if s in parts), None)
    if down is not None:
        up = next((s for s in _UP_SUFFIXES if s in parts), None)
        return dim(down, 1), dim(up, 0) if up else None
    if "hada_w1_b" in parts:
        return dim("hada_w1_b", 1), dim("hada_w1_a", 0)
    if "lokr_w1" in parts or "lokr_w1_b" in parts:
        in1 = dim("lokr_w1", 1) or dim("lokr_w1_b", 1)
        in2 = dim("lokr_w2", 1) or dim("lokr_w2_b", 1)
        out1 = dim("lokr_w1", 0) or dim("lokr_w1_a", 0)
        out2 = dim("lokr_w2", 0) or dim("lokr_w2_a", 0)
        return (in1 * in2 if in1 and in2 else None), (out1 * out2 if out1 and out2 else None)
    if "diff" in parts:
        return dim("diff", 1), dim("diff", 0)
    if "a1.weight" in parts:
        return dim("a1.weight", 1), dim("a2.weight", 0)
    if "oft_blocks" in parts:
        shape = p.shape(parts["oft_blocks"]) or ()
        return None, (shape[-3] * shape[-1] if len(shape) >= 3 else None)
    if "w_norm" in parts:
        return dim("w_norm", 0), dim("w_norm", 0)
    if "weight" in parts and "on_input" in parts:
        # IA3 scales outputs (or inputs, per `on_input`, a value we do not read): only a width, never the in-dim.
        return None, dim("weight", 0)
    return None, None


def _base(p: Probe, adapter: Adapter) -> tuple[str, list[str]]:
    names = list(adapter.modules)
    modules = adapter.modules

    flux = next((n for n in names if _FLUX_RE.search(n)), None)
    if flux is not None:
        return _flux_base(p, modules, flux)
    sd3 = next((n for n in names if _SD3_RE.search(n)), None)
    if sd3 is not None:
        return _sd3_base(p, modules, sd3)
    dit = next((n for n in names if _DIFFUSERS_DIT_RE.search(n)), None)
    if dit is not None and not any("attn2" in n for n in names):
        width = module_dims(p, modules[dit])[0]
        dit_bases = {3072: "flux1", 6144: "flux2", 1536: "sd3", 2432: "sd35_large"}
        if width in dit_bases:
            return dit_bases[width], [f"{_deciding_key(modules[dit])} in-dim {width}"]
    if any(n.startswith("lora_prior_unet_") for n in names):
        return "cascade", ["lora_prior_unet_* (Stable Cascade prior)"]

    for name in names:
        if _CROSS_ATTN_RE.search(name):
            ctx = module_dims(p, modules[name])[0]
            if ctx in CONTEXT_BASES:
                return CONTEXT_BASES[ctx], [p.ev(_deciding_key(modules[name])) + " (cross-attention in-dim)"]

    te2 = next((n for n in names if n.startswith("lora_te2_") or n.startswith("text_encoder_2.")), None)
    te1 = next((n for n in names if n.startswith("lora_te1_")), None)
    if te2 is not None or te1 is not None:
        return "sdxl", [f"{te2 or te1}.* (two text encoders: SDXL)"]
    for name in names:
        if (name.startswith("lora_te_") or name.startswith("text_encoder.")) and _TE_WIDTH_RE.search(name):
            width_in, width_out = module_dims(p, modules[name])
            width = width_in or width_out
            if width in _WIDTH_BASES:
                return _WIDTH_BASES[width], [p.ev(_deciding_key(modules[name])) + " (text encoder width)"]

    sgm = next((n for n in names if _SGM_UNET_RE.search(n)), None)
    if sgm is not None:
        return "sdxl", [f"{sgm} (SGM UNet names: kohya SDXL)"]
    deep = next((n for n in names if _DEEP_BLOCK_RE.search(n)), None)
    if deep is not None:
        return "sdxl", [f"{deep} (transformer depth > 2: SDXL)"]

    from_metadata = base_from_metadata(p.metadata)
    if from_metadata is not None:
        return from_metadata[0], [from_metadata[1]]
    return "unknown", ["no key dimension or metadata names the base model"]


def _deciding_key(parts: dict[str, str]) -> str:
    for suffix in (
        *_DOWN_SUFFIXES,
        "hada_w1_b",
        "lokr_w2",
        "lokr_w2_b",
        "lokr_w1",
        "diff",
        "a1.weight",
        "w_norm",
        "oft_blocks",
        "weight",
    ):
        if suffix in parts:
            return parts[suffix]
    return next(iter(parts.values()))


def _flux_base(p: Probe, modules: dict[str, dict[str, str]], first: str) -> tuple[str, list[str]]:
    names = list(modules)
    hint = next((n for n in names if _FLUX2_HINT_RE.search(n)), None)
    if hint is not None:
        return "flux2", [f"{hint} (Flux.2 shared modulation)"]
    context = next((n for n in names if n.endswith("context_embedder") or n.endswith("txt_in")), None)
    if context is not None:
        width = module_dims(p, modules[context])[0]
        if width is not None and width != 4096:
            return "flux2", [p.ev(_deciding_key(modules[context])) + " (text features wider than T5-XXL: Flux.2)"]
    for name in names:
        if re.search(r"img_attn[._]qkv$|(?:^|[._])attn[._]to_q$|linear1$", name):
            width = module_dims(p, modules[name])[0]
            if width == 6144:
                return "flux2", [p.ev(_deciding_key(modules[name])) + " (hidden size 6144: Flux.2)"]
            if width == 3072:
                return "flux1", [p.ev(_deciding_key(modules[name])) + " (Flux double/single blocks)"]
    return "flux1", [f"{first} (Flux double/single blocks)"]


def _sd3_base(p: Probe, modules: dict[str, dict[str, str]], first: str) -> tuple[str, list[str]]:
    names = list(modules)
    width = None
    for name in names:
        if re.search(r"x_block[._]attn[._]qkv$", name):
            width = module_dims(p, modules[name])[0]
            if width is not None:
                break
    blocks = {int(m.group(1)) for n in names if (m := re.search(r"joint_blocks[._](\d+)[._]", n))}
    if width == 2432 or (blocks and max(blocks) >= 24):
        return "sd35_large", [
            f"{first} (MMDiT, width {width or 'unknown'}, {max(blocks) + 1 if blocks else '?'} blocks)"
        ]
    if any(re.search(r"x_block[._]attn2[._]", n) for n in names):
        return "sd35_medium", [f"{first} (MMDiT-X attn2 layers: SD3.5 Medium)"]
    return "sd3", [f"{first} (MMDiT joint blocks)"]
