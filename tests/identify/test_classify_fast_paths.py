"""The classifier's shortcuts (lazy shapes, C-level filters, bounds) answer what the rules say, module by module.

Headers come both as plain dicts of TensorInfo and as real safetensors headers (LazyTensors), which take the
Probe's fast shape look-ups; both must classify alike.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Mapping

import pytest
from factory import ModelFactory

from modeldex.identify.classify import classify
from modeldex.identify.classify.adapters import ADAPTER_ENDINGS, ENDING_BOUND, KOHYA_PREFIXES, collect
from modeldex.identify.classify.probe import Probe
from modeldex.identify.readers.safetensors_reader import LazyTensors, read_safetensors
from modeldex.identify.records import Header, TensorInfo

Shapes = Mapping[str, tuple[int, ...]]


def plain(tensors: Shapes, metadata: dict[str, str] | None = None) -> Header:
    infos = {k: TensorInfo(shape=s, dtype="F16") for k, s in tensors.items()}
    return Header(format="safetensors", tensors=infos, metadata=metadata or {})


def lazy(tensors: Shapes, metadata: dict[str, str] | None = None) -> Header:
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for key, shape in tensors.items():
        size = 2 * math.prod(shape)
        header[key] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    blob = struct.pack("<Q", len(raw)) + raw
    found = read_safetensors(io.BytesIO(blob), len(blob) + offset)
    assert isinstance(found.tensors, LazyTensors)
    return found


def both(tensors: Shapes, metadata: dict[str, str] | None = None) -> tuple[str, str, str | None, list[str]]:
    a, b = classify(plain(tensors, metadata)), classify(lazy(tensors, metadata))
    assert a == b
    return a.kind, a.base, a.algo, a.evidence


@pytest.mark.parametrize(
    "spec",
    [
        lambda f: f.checkpoint_spec("sd1"),
        lambda f: f.checkpoint_spec("sdxl", vpred="edm"),
        lambda f: f.lora_spec("sd1"),
        lambda f: f.lora_spec("sdxl", "locon"),
        lambda f: f.lora_spec("sd2", "loha"),
        lambda f: f.lora_spec("sdxl", "dora", style="peft"),
        lambda f: f.lora_spec("flux1", style="xlabs"),
        lambda f: f.controlnet_spec("sdxl", "lllite")[0],
    ],
    ids=["sd1", "sdxl-edm", "lora-sd1", "locon-sdxl", "loha-sd2", "dora-peft", "flux-xlabs", "lllite"],
)
def test_plain_and_lazy_headers_classify_alike(factory: ModelFactory, spec: object) -> None:
    tensors = {k: shape for k, (shape, _) in spec(factory).items()}  # type: ignore[operator]
    kind, _, _, evidence = both(tensors)
    assert kind != "unknown" and evidence


def test_locon_is_decided_by_the_first_module_in_file_order() -> None:
    # Module order is where a module's first key appears, not where its down weight does.
    tensors = {
        "lora_unet_a.lora_up.weight": (320, 8, 1, 1),
        "lora_unet_b.lora_down.weight": (8, 320, 3, 3),
        "lora_unet_b.lora_up.weight": (320, 8, 1, 1),
        "lora_unet_a.lora_down.weight": (8, 320, 3, 3),
        "lora_unet_c.lora_down.weight": (8, 320, 1, 1),
    }
    kind, _, algo, evidence = both(tensors)
    assert (kind, algo) == ("lora", "locon")
    assert evidence[0] == "lora_unet_a.lora_down.weight [8, 320, 3, 3]"


def test_plain_lora_cites_its_first_module() -> None:
    tensors = {
        "lora_unet_b.alpha": (),
        "lora_unet_b.lora_down.weight": (8, 320),
        "lora_unet_a.lora_down.weight": (8, 1),
    }
    kind, _, algo, evidence = both(tensors)
    assert (kind, algo, evidence[0]) == ("lora", "lora", "lora_unet_b.lora_down.weight [8, 320]")


def test_a_mid_weight_or_a_deciding_parameter_takes_the_module_by_module_rules() -> None:
    mid = {"lora_unet_a.lora_down.weight": (8, 320), "lora_unet_a.lora_mid.weight": (8, 8, 3, 3)}
    kind, _, algo, evidence = both(mid)
    assert (kind, algo, evidence[0]) == ("lora", "locon", "lora_unet_a.lora_mid.weight [8, 8, 3, 3]")
    loha = {
        "lora_unet_a.lora_down.weight": (8, 320),
        "lora_unet_b.hada_w1_a": (320, 8),
        "lora_unet_b.hada_w1_b": (8, 1),
    }
    assert both(loha)[2] == "loha"


def test_keys_with_nothing_after_the_kohya_module_are_not_adapter_keys() -> None:
    tensors = {"lora_unet_x": (1,), "lora_unet_y.": (1,), "lora_unet_z.lora_down.weight": (8, 768)}
    tensors |= {"lora_unet_z.lora_up.weight": (320, 8), "lora_unet_z.alpha": ()}
    assert collect(Probe(plain(tensors).tensors)).count == 3
    kind, _, _, evidence = both(tensors)
    assert kind == "lora" and evidence[-1] == "3 of 5 keys are adapter weights"
    assert both({"lora_unet_x": (1,), "lora_unet_y": (1,), "lora_unet_z.alpha": ()})[0] != "lora"


def test_a_checkpoint_with_a_few_lora_keys_is_a_checkpoint(factory: ModelFactory) -> None:
    tensors = {k: shape for k, (shape, _) in factory.checkpoint_spec("sd1").items()}
    tensors |= {f"lora_unet_m{i}.lora_down.weight": (8, 320) for i in range(50)}
    assert both(tensors)[:2] == ("checkpoint", "sd1")


def test_every_adapter_ending_is_covered_by_the_bound() -> None:
    assert all(e.endswith(ENDING_BOUND) for e in ADAPTER_ENDINGS)


def test_kohya_prefixes_are_counted_once() -> None:
    # The adapter bound adds up the keys under each prefix: no prefix may start another.
    assert not [(a, b) for a in KOHYA_PREFIXES for b in KOHYA_PREFIXES if a != b and b.startswith(a)]


def test_module_names_ending_in_a_newline_still_match_end_anchored_rules() -> None:
    # `$` matches before a final newline: the C-level filters must let such names through.
    sd3 = {
        "transformer.transformer_blocks.0.attn.to_q\n.lora_A.weight": (8, 1536),
        "transformer.transformer_blocks.0.attn.to_q\n.lora_B.weight": (1536, 8),
    }
    assert both(sd3)[:3] == ("lora", "sd3", "lora")
    sd1 = {"x.attn2.to_k\n.lora_down.weight": (4, 768), "x.attn2.to_k\n.lora_up.weight": (320, 4)}
    assert both(sd1)[:2] == ("lora", "sd1")


def test_probe_substring_and_prefix_helpers() -> None:
    probe = Probe(
        plain({"b.x.time_stack.1": (1,), "b.a": (1,), "a.time_stack": (1,), "c\nd": (1,), "p.c": (1,)}).tensors
    )
    assert probe.prefixed("b.") == ["b.a", "b.x.time_stack.1"]
    assert probe.prefixed("") == probe.sorted_keys and probe.count_prefixed("b") == 2 and probe.count_prefixed("z") == 0
    assert (
        Probe(plain({"a\U0010ffff": (1,), "a\U0010ffffb": (1,), "b": (1,)}).tensors).count_prefixed("a\U0010ffff") == 2
    )
    assert probe.first_prefixed_containing("b.", ".time_stack.") == "b.x.time_stack.1"
    assert probe.first_prefixed_containing("c", "d") == "c\nd"
    assert probe.first_prefixed_containing("p", "c.") is None
    assert probe.first_prefixed_containing("b", "ab") is None  # "b.a" joined to "b.x..." holds no "ab"
    assert probe.first_containing("time_stack", "a.") == "a.time_stack"
    assert probe.first_containing("time_stack", "zz") is None
