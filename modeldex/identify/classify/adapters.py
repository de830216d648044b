"""LoRA and LyCORIS adapters: is the file mostly adapter keys, which algorithm, which base (§1.5-§1.6, §1.13).

A merged checkpoint may carry a few LoRA keys, so a file is an adapter only when adapter keys are the majority.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import methodcaller

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
# Parameters that decide a module's algorithm before (or beside) its down weight; a file with none of them is
# plain LoRA or LoCon, told apart by the down weights' shapes alone.
_DECIDING_SUFFIXES = frozenset(
    {"hada_w1_a", "lokr_w1", "lokr_w1_a", "oft_blocks", "oft_diag", "on_input", "a1.weight", "diff", "w_norm"}
)
# Every key `split_adapter_key` accepts without a kohya prefix ends with one of ADAPTER_ENDINGS, and so does every
# `.alpha` that `collect` counts: the keys that do bound the adapter keys from above. The bound is counted with the
# shorter ENDING_BOUND (every adapter ending ends with one of them: fewer comparisons, and still no checkpoint key).
ADAPTER_ENDINGS = (*("." + s for s in DOTTED_SUFFIXES), ".down.weight", ".up.weight", ".alpha")
ENDING_BOUND = (
    *("_A.weight", "_B.weight", ".default.weight", "_vector", "_vector.weight", "down.weight", "up.weight"),
    *("_mid.weight", "_w1_a", "_w1_b", "_w2_a", "_w2_b", "_t1", "_t2", "lokr_w1", "lokr_w2", "oft_blocks"),
    *("oft_diag", "dora_scale", ".alpha"),
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
_SGM_UNET_PREFIXES = ("lora_unet_input_blocks_", "lora_unet_output_blocks_", "lora_unet_middle_block_")
_DEEP_BLOCK_RE = re.compile(r"transformer_blocks[._]([2-9]|\d\d)[._]")
_FLUX2_HINT_RE = re.compile(r"stream_modulation")
_WIDTH_BASES = {768: "sd1", 1024: "sd2", 1280: "sdxl"}


@dataclass
class Adapter:
    """The adapter keys of a file, grouped by the module they patch: module -> {suffix: key}."""

    modules: dict[str, dict[str, str]] = field(default_factory=dict)
    count: int = 0
    suffixes: set[str] = field(default_factory=set)
    """Every parameter suffix any module has."""


_SUFFIXES_BY_DOTS = tuple(frozenset(s for s in DOTTED_SUFFIXES if s.count(".") == n) for n in range(3))


def split_adapter_key(key: str) -> tuple[str, str] | None:
    """(module, parameter suffix) when `key` is an adapter parameter, else None."""
    if key.startswith(KOHYA_PREFIXES):
        module, _, suffix = key.partition(".")
        return (module, suffix) if suffix else None
    return _split_dotted(key)


def _split_dotted(key: str) -> tuple[str, str] | None:
    """`split_adapter_key` for a key without a kohya prefix."""
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


def _kohya_key_count(p: Probe) -> int:
    """How many keys start with a kohya prefix (no prefix starts another, so none is counted twice)."""
    return sum(p.count_prefixed(prefix) for prefix in KOHYA_PREFIXES)


def _may_be_adapter(p: Probe) -> bool:
    """False when adapter keys cannot be the majority, found without splitting any key (checkpoints: C-level passes)."""
    bound = _kohya_key_count(p)
    if bound * 2 > len(p.tensors):
        return True
    bound += sum(map(str.endswith, p.tensors, repeat(ENDING_BOUND)))
    return bound * 2 > len(p.tensors)


def collect(p: Probe) -> Adapter:
    """Every adapter key of the file, grouped by module (an `alpha` counts when its module is an adapter)."""
    if _kohya_key_count(p) == len(p.tensors):
        found = _collect_kohya(p)
        if found is not None:
            return found
    adapter = Adapter()
    modules = adapter.modules
    alphas: list[str] = []
    count = 0
    for key in p.tensors:
        if key.startswith(KOHYA_PREFIXES):
            module, _, suffix = key.partition(".")
            if not suffix:
                continue  # (nor can it end with ".alpha")
        else:
            split = _split_dotted(key)
            if split is None:
                if key.endswith(".alpha"):
                    alphas.append(key)
                continue
            module, suffix = split
        parts = modules.get(module)
        if parts is None:
            modules[module] = {suffix: key}
        else:
            parts[suffix] = key
        count += 1
    for key in alphas:
        module = key[: -len(".alpha")]
        if module in modules:
            modules[module]["alpha"] = key
            count += 1
    adapter.count = count
    adapter.suffixes = set().union(*modules.values())
    return adapter


def _collect_kohya(p: Probe) -> Adapter | None:
    """`collect` for a file whose keys all carry a kohya prefix (most LoRAs); None if a key has no suffix."""
    adapter = Adapter()
    modules = adapter.modules
    get = modules.get
    keys = p.tensors
    last, parts = None, {}
    for key, (module, _, suffix) in zip(keys, map(str.partition, keys, repeat(".")), strict=True):
        if module != last:  # a module's keys usually follow one another: compare before hashing
            found = get(module)
            parts = modules[module] = {} if found is None else found
            last = module
        parts[suffix] = key
    adapter.count = len(keys)
    adapter.suffixes = set().union(*modules.values())
    # A key with nothing after its first dot is no adapter parameter: leave that rare file to the general loop.
    return None if "" in adapter.suffixes else adapter


def detect_adapter(p: Probe) -> Classification | None:
    """A LoRA/LyCORIS classification when adapter keys are the majority of the file's keys."""
    if not p.tensors or not _may_be_adapter(p):
        return None
    adapter = collect(p)
    if adapter.count * 2 <= len(p.tensors):
        return None
    result = Classification(kind="lora")
    suffixes = adapter.suffixes
    dora = None
    if not suffixes.isdisjoint(_DORA_SUFFIXES):
        dora = next((parts[s] for parts in adapter.modules.values() for s in _DORA_SUFFIXES if s in parts), None)
    if dora is not None:
        result.algo = "dora"
        result.evidence.append(p.ev(dora) + " (weight-decomposed)")
    else:
        result.algo, deciding = _algo(p, adapter)
        if deciding is not None:
            result.evidence.append(p.ev(deciding))
    args = network_args(p.metadata)
    if "algo" in args:
        result.evidence.append(f"ss_network_args.algo={args['algo']}")
    elif "ss_network_module" in p.metadata:
        result.evidence.append(f"ss_network_module={p.metadata['ss_network_module']}")
    result.base, base_evidence = _base(p, adapter)
    result.evidence.extend(base_evidence)
    result.evidence.append(f"{adapter.count} of {len(p.tensors)} keys are adapter weights")
    return result


def _algo(p: Probe, adapter: Adapter) -> tuple[str, str | None]:
    """The file's algorithm (the most specific of its modules') and the key that decided it, if any."""
    suffixes = adapter.suffixes
    downs = suffixes.intersection(_DOWN_SUFFIXES)
    if len(downs) <= 1 and suffixes.isdisjoint(_DECIDING_SUFFIXES):
        # Plain LoRA or LoCon: each module with a down weight is `locon` when it has a mid weight or a spatial
        # kernel, `lora` otherwise. The same answer as the module-by-module rules, with no Python pass per module.
        if not downs:
            return "lora", None
        get = methodcaller("get", downs.pop())
        keys = list(filter(None, map(get, adapter.modules.values())))
        locon = _first_locon(p, adapter, keys, "lora_mid.weight" in suffixes)
        if locon is not None:
            return "locon", locon
        return "lora", keys[0]
    algos: dict[str, str] = {}  # algo -> a deciding key
    for parts in adapter.modules.values():
        found = _module_algo(p, parts)
        if found is not None:
            algos.setdefault(found[0], found[1])
    algo = next((a for a in _ALGO_PRIORITY if a in algos), "lora")
    return algo, algos.get(algo)


def _first_locon(p: Probe, adapter: Adapter, downs: list[str], mids: bool) -> str | None:
    """The deciding key of the first module (in file order) that `_module_algo` calls locon, if any."""
    if mids:  # rare: keep the module-by-module rule
        for parts in adapter.modules.values():
            found = _module_algo(p, parts)
            if found is not None and found[0] == "locon":
                return found[1]
        return None
    shapes = list(p.shapes(downs))
    if 4 not in map(len, shapes):
        return None
    return next((k for k, shape in zip(downs, shapes, strict=True) if len(shape) == 4 and shape[2:] != (1, 1)), None)


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


def _with_ending(names: list[str], endings: tuple[str, ...]) -> list[str]:
    """Names that end with one of `endings` or with one and a newline (where `$` also matches), in order."""
    endings += tuple(e + "\n" for e in endings)
    return list(compress(names, map(str.endswith, names, repeat(endings))))


def _containing(names: list[str], text: str) -> Iterator[str]:
    return compress(names, map(str.__contains__, names, repeat(text)))


def _starting(names: list[str], prefixes: tuple[str, ...]) -> Iterator[str]:
    return compress(names, map(str.startswith, names, repeat(prefixes)))


def _searching(names: Iterable[str], pattern: re.Pattern[str]) -> Iterator[str]:
    return filter(pattern.search, names)


def _base(p: Probe, adapter: Adapter) -> tuple[str, list[str]]:
    # Each question goes to the few names that can match (C-level filters on a literal every match holds), in
    # module order, so that a file with a thousand modules costs no Python-level pass over them.
    names = list(adapter.modules)
    modules = adapter.modules
    joined = "\n".join(names)

    if "double_blocks" in joined or "single_" in joined:
        flux = next(_searching(names, _FLUX_RE), None)
        if flux is not None:
            return _flux_base(p, modules, flux)
    if "joint_blocks" in joined:
        sd3 = next(_searching(names, _SD3_RE), None)
        if sd3 is not None:
            return _sd3_base(p, modules, sd3)
    if "attn2" not in joined and ("attn.to_" in joined or "attn_to_" in joined or "add_q_proj" in joined):
        dit_names = _with_ending(names, ("attn.to_q", "attn_to_q", "attn.to_k", "attn_to_k", "add_q_proj"))
        dit = next(_searching(dit_names, _DIFFUSERS_DIT_RE), None)
        if dit is not None:
            width = module_dims(p, modules[dit])[0]
            dit_bases = {3072: "flux1", 6144: "flux2", 1536: "sd3", 2432: "sd35_large"}
            if width in dit_bases:
                return dit_bases[width], [f"{_deciding_key(modules[dit])} in-dim {width}"]
    if p.has_prefix("lora_prior_unet_") and next(_starting(names, ("lora_prior_unet_",)), None) is not None:
        return "cascade", ["lora_prior_unet_* (Stable Cascade prior)"]

    cross_attn = _containing(names, "attn2") if "attn2" in joined else []
    for name in _searching(cross_attn, _CROSS_ATTN_RE):
        ctx = module_dims(p, modules[name])[0]
        if ctx in CONTEXT_BASES:
            return CONTEXT_BASES[ctx], [p.ev(_deciding_key(modules[name])) + " (cross-attention in-dim)"]

    te2 = next(_starting(names, ("lora_te2_", "text_encoder_2.")), None)
    te1 = next(_starting(names, ("lora_te1_",)), None)
    if te2 is not None or te1 is not None:
        return "sdxl", [f"{te2 or te1}.* (two text encoders: SDXL)"]
    for name in _searching(_starting(names, ("lora_te_", "text_encoder.")), _TE_WIDTH_RE):
        width_in, width_out = module_dims(p, modules[name])
        width = width_in or width_out
        if width in _WIDTH_BASES:
            return _WIDTH_BASES[width], [p.ev(_deciding_key(modules[name])) + " (text encoder width)"]

    sgm = next(_starting(names, _SGM_UNET_PREFIXES), None)
    if sgm is not None:
        return "sdxl", [f"{sgm} (SGM UNet names: kohya SDXL)"]
    if "transformer_blocks" in joined:
        deep = next(_searching(names, _DEEP_BLOCK_RE), None)
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
