"""Key lists with full shapes for every kind of model file the factory writes.

Real key sets come from /work/shared/reference/keysets (sd-mecha model configs). Families without a key set are
built from their architecture definitions (an LDM UNet generator checked against the SD1 and SDXL key sets, LyCORIS
parameter layouts, templates for the smaller networks). A `Spec` maps key -> (shape, safetensors dtype).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Shape = tuple[int, ...]
Spec = dict[str, tuple[Shape, str]]

KEYSETS = (Path(__file__).resolve().parents[1] / "../shared/reference/keysets").resolve()
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32", "bool": "BOOL"}


@functools.cache
def _load(name: str) -> dict[str, Any]:
    with gzip.open(KEYSETS / f"{name}.json.gz", "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    assert isinstance(data, dict)
    return data


def keyset(name: str, *components: str, optional: bool = False, dtype: str | None = None) -> Spec:
    """Keys of `components` (all when none named) from a reference key set; optional keys only when asked."""
    data = _load(name)
    comps = data["components"]
    assert isinstance(comps, dict)
    skip = set() if optional else set(data.get("optional", []))
    spec: Spec = {}
    for comp in components or tuple(comps):
        for key, (shape, dt) in comps[comp].items():
            if key not in skip:
                spec[key] = (tuple(shape), dtype or _DTYPES[dt])
    return spec


def optional_keys(name: str) -> set[str]:
    return set(_load(name).get("optional", []))


def rekey(spec: Spec, old: str, new: str) -> Spec:
    """Replace the prefix `old` with `new` on keys that start with it; others are dropped."""
    return {new + k[len(old) :]: v for k, v in spec.items() if k.startswith(old)}


def remap_dims(spec: Spec, mapping: dict[int, int]) -> Spec:
    """Change every dimension found in `mapping` (to scale a family's width)."""
    return {k: (tuple(mapping.get(d, d) for d in shape), dt) for k, (shape, dt) in spec.items()}


def with_dtype(spec: Spec, dtype: str) -> Spec:
    return {k: (shape, dtype if dt in ("F32", "F16", "BF16") else dt) for k, (shape, dt) in spec.items()}


# --------------------------------------------------------------------------------------------- LDM / SGM UNet


def ldm_unet(
    prefix: str,
    *,
    mc: int,
    mults: tuple[int, ...],
    depths: tuple[int, ...],
    ctx: int,
    mid_depth: int,
    linear: bool,
    adm: int | None = None,
    in_ch: int = 4,
    num_res: int = 2,
    dtype: str = "F16",
    video: bool = False,
    control: bool = False,
) -> Spec:
    """The `openaimodel.UNetModel` state dict (SD1/SD2/SDXL/refiner/SVD), or its ControlNet encoder half."""
    spec: Spec = {}
    ted = mc * 4

    def t(key: str, *shape: int) -> None:
        spec[prefix + key] = (tuple(shape), dtype)

    def resblock(p: str, cin: int, cout: int) -> None:
        t(p + "in_layers.0.weight", cin)
        t(p + "in_layers.0.bias", cin)
        t(p + "in_layers.2.weight", cout, cin, 3, 3)
        t(p + "in_layers.2.bias", cout)
        t(p + "emb_layers.1.weight", cout, ted)
        t(p + "emb_layers.1.bias", cout)
        t(p + "out_layers.0.weight", cout)
        t(p + "out_layers.0.bias", cout)
        t(p + "out_layers.3.weight", cout, cout, 3, 3)
        t(p + "out_layers.3.bias", cout)
        if cin != cout:
            t(p + "skip_connection.weight", cout, cin, 1, 1)
            t(p + "skip_connection.bias", cout)
        if video:
            t(p + "time_stack.in_layers.2.weight", cout, cout, 3, 1, 1)
            t(p + "time_stack.out_layers.3.weight", cout, cout, 3, 1, 1)
            t(p + "time_mixer.mix_factor", 1)

    def transformer(p: str, ch: int, depth: int) -> None:
        proj = (ch, ch) if linear else (ch, ch, 1, 1)
        t(p + "norm.weight", ch)
        t(p + "norm.bias", ch)
        t(p + "proj_in.weight", *proj)
        t(p + "proj_in.bias", ch)
        for d in range(depth):
            b = f"{p}transformer_blocks.{d}."
            for attn, kv in (("attn1", ch), ("attn2", ctx)):
                t(b + f"{attn}.to_q.weight", ch, ch)
                t(b + f"{attn}.to_k.weight", ch, kv)
                t(b + f"{attn}.to_v.weight", ch, kv)
                t(b + f"{attn}.to_out.0.weight", ch, ch)
                t(b + f"{attn}.to_out.0.bias", ch)
            t(b + "ff.net.0.proj.weight", ch * 8, ch)
            t(b + "ff.net.0.proj.bias", ch * 8)
            t(b + "ff.net.2.weight", ch, ch * 4)
            t(b + "ff.net.2.bias", ch)
            for n in ("norm1", "norm2", "norm3"):
                t(b + f"{n}.weight", ch)
                t(b + f"{n}.bias", ch)
        t(p + "proj_out.weight", *proj)
        t(p + "proj_out.bias", ch)
        if video:
            t(p + "time_stack.0.attn1.to_q.weight", ch, ch)
            t(p + "time_stack.0.attn2.to_k.weight", ch, ctx)
            t(p + "time_pos_embed.0.weight", ch * 4, ch)
            t(p + "time_mixer.mix_factor", 1)

    t("time_embed.0.weight", ted, mc)
    t("time_embed.0.bias", ted)
    t("time_embed.2.weight", ted, ted)
    t("time_embed.2.bias", ted)
    if adm:
        t("label_emb.0.0.weight", ted, adm)
        t("label_emb.0.0.bias", ted)
        t("label_emb.0.2.weight", ted, ted)
        t("label_emb.0.2.bias", ted)
    t("input_blocks.0.0.weight", mc, in_ch, 3, 3)
    t("input_blocks.0.0.bias", mc)
    chans = [mc]
    ch = mc
    idx = 1
    for level, mult in enumerate(mults):
        for _ in range(num_res):
            resblock(f"input_blocks.{idx}.0.", ch, mult * mc)
            ch = mult * mc
            if depths[level]:
                transformer(f"input_blocks.{idx}.1.", ch, depths[level])
            chans.append(ch)
            idx += 1
        if level != len(mults) - 1:
            t(f"input_blocks.{idx}.0.op.weight", ch, ch, 3, 3)
            t(f"input_blocks.{idx}.0.op.bias", ch)
            chans.append(ch)
            idx += 1
    resblock("middle_block.0.", ch, ch)
    transformer("middle_block.1.", ch, mid_depth)
    resblock("middle_block.2.", ch, ch)
    if control:
        for i, c in enumerate(chans):
            t(f"zero_convs.{i}.0.weight", c, c, 1, 1)
            t(f"zero_convs.{i}.0.bias", c)
        t("middle_block_out.0.weight", ch, ch, 1, 1)
        t("middle_block_out.0.bias", ch)
        hint = [(16, 3), (16, 16), (32, 16), (32, 32), (96, 32), (96, 96), (256, 96), (mc, 256)]
        for i, (o, c) in enumerate(hint):
            t(f"input_hint_block.{2 * i}.weight", o, c, 3, 3)
            t(f"input_hint_block.{2 * i}.bias", o)
        return spec
    idx = 0
    for level, mult in reversed(list(enumerate(mults))):
        for i in range(num_res + 1):
            skip = chans.pop()
            resblock(f"output_blocks.{idx}.0.", ch + skip, mult * mc)
            ch = mult * mc
            layer = 1
            if depths[level]:
                transformer(f"output_blocks.{idx}.1.", ch, depths[level])
                layer = 2
            if level and i == num_res:
                t(f"output_blocks.{idx}.{layer}.conv.weight", ch, ch, 3, 3)
                t(f"output_blocks.{idx}.{layer}.conv.bias", ch)
            idx += 1
    t("out.0.weight", ch)
    t("out.0.bias", ch)
    t("out.2.weight", 4, ch, 3, 3)
    t("out.2.bias", 4)
    return spec


SD1_UNET = {"mc": 320, "mults": (1, 2, 4, 4), "depths": (1, 1, 1, 0), "ctx": 768, "mid_depth": 1, "linear": False}
SD2_UNET = {"mc": 320, "mults": (1, 2, 4, 4), "depths": (1, 1, 1, 0), "ctx": 1024, "mid_depth": 1, "linear": True}
SDXL_UNET = {
    "mc": 320,
    "mults": (1, 2, 4),
    "depths": (0, 2, 10),
    "ctx": 2048,
    "mid_depth": 10,
    "linear": True,
    "adm": 2816,
}
REFINER_UNET = {
    "mc": 384,
    "mults": (1, 2, 4, 4),
    "depths": (0, 4, 4, 0),
    "ctx": 1280,
    "mid_depth": 4,
    "linear": True,
    "adm": 2560,
}
SVD_UNET = {
    "mc": 320,
    "mults": (1, 2, 4, 4),
    "depths": (1, 1, 1, 0),
    "ctx": 1024,
    "mid_depth": 1,
    "linear": True,
    "adm": 768,
}


# --------------------------------------------------------------------------------------------- text encoders


def openclip_text(prefix: str, *, width: int, layers: int, dtype: str = "F16") -> Spec:
    """An OpenCLIP text tower (`transformer.resblocks.N`), as SD2 and SDXL checkpoints store it."""
    base = rekey(keyset("sdxl-sgm", "clip_g", optional=True, dtype=dtype), "conditioner.embedders.1.model.", "")
    scaled = remap_dims(base, {1280: width, 5120: width * 4, 3840: width * 3})
    keep = {
        k: v
        for k, v in scaled.items()
        if not (m := re.match(r"transformer\.resblocks\.(\d+)\.", k)) or int(m.group(1)) < layers
    }
    return {prefix + k: v for k, v in keep.items()}


def hf_clip_text(prefix: str, which: str, dtype: str = "F16") -> Spec:
    """A Hugging Face `CLIPTextModel` state dict: CLIP-L (12 layers), CLIP-H (24) or CLIP-G (32)."""
    if which == "clip_l":
        spec = rekey(keyset("sd1-kohya", "clip_l", dtype=dtype), "te.", "")
    else:
        spec = rekey(keyset("sdxl-kohya", "clip_g", optional=True, dtype=dtype), "te2.", "")
        if which == "clip_h":
            spec = remap_dims(spec, {1280: 1024, 5120: 4096})
            spec = {
                k: v for k, v in spec.items() if not (m := re.search(r"layers\.(\d+)\.", k)) or int(m.group(1)) < 24
            }
    return {prefix + k: v for k, v in spec.items()}


def t5xxl(prefix: str, dtype: str = "F16") -> Spec:
    return rekey(keyset("flux-flux", "t5xxl", dtype=dtype), "text_encoders.t5xxl.transformer.", prefix)


def clip_vision(which: str, dtype: str = "F16") -> Spec:
    """A Hugging Face `CLIPVisionModelWithProjection`: ViT-L/14, ViT-H/14 or ViT-bigG/14."""
    width, layers, mlp, proj = {
        "vit_l": (1024, 24, 4096, 768),
        "vit_h": (1280, 32, 5120, 1024),
        "vit_g": (1664, 48, 8192, 1280),
    }[which]
    spec: Spec = {}

    def t(key: str, *shape: int) -> None:
        spec[key] = (tuple(shape), dtype)

    t("vision_model.embeddings.class_embedding", width)
    t("vision_model.embeddings.patch_embedding.weight", width, 3, 14, 14)
    t("vision_model.embeddings.position_embedding.weight", 257, width)
    spec["vision_model.embeddings.position_ids"] = ((1, 257), "I64")
    for n in ("pre_layrnorm", "post_layernorm"):
        t(f"vision_model.{n}.weight", width)
        t(f"vision_model.{n}.bias", width)
    for i in range(layers):
        p = f"vision_model.encoder.layers.{i}."
        for n in ("layer_norm1", "layer_norm2"):
            t(p + f"{n}.weight", width)
            t(p + f"{n}.bias", width)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t(p + f"self_attn.{n}.weight", width, width)
            t(p + f"self_attn.{n}.bias", width)
        t(p + "mlp.fc1.weight", mlp, width)
        t(p + "mlp.fc1.bias", mlp)
        t(p + "mlp.fc2.weight", width, mlp)
        t(p + "mlp.fc2.bias", width)
    t("visual_projection.weight", proj, width)
    return spec


# --------------------------------------------------------------------------------------------- VAEs


def ldm_vae(prefix: str, z: int = 4, dtype: str = "F16") -> Spec:
    """LDM-layout KL VAE (`encoder.down.N.block.M`), z latent channels (4 SD1/SDXL, 16 Flux/SD3, 32 Flux.2)."""
    spec = rekey(keyset("sd1-ldm", "vae", dtype=dtype), "first_stage_model.", "")
    if z != 4:
        spec = {k: v for k, v in spec.items() if "quant_conv" not in k}  # Flux and SD3 VAEs have no quant convs
        spec["decoder.conv_in.weight"] = ((512, z, 3, 3), dtype)
        spec["encoder.conv_out.weight"] = ((2 * z, 512, 3, 3), dtype)
        spec["encoder.conv_out.bias"] = ((2 * z,), dtype)
    return {prefix + k: v for k, v in spec.items()}


def diffusers_vae(z: int = 4, dtype: str = "F16") -> Spec:
    spec = rekey(keyset("sd1-kohya", "vae", dtype=dtype), "vae.", "")
    if z != 4:
        spec["decoder.conv_in.weight"] = ((512, z, 3, 3), dtype)
        spec["encoder.conv_out.weight"] = ((2 * z, 512, 3, 3), dtype)
        spec["encoder.conv_out.bias"] = ((2 * z,), dtype)
    return spec


# --------------------------------------------------------------------------------------------- DiTs


def flux1(prefix: str, variant: str = "dev", dtype: str = "BF16") -> Spec:
    spec = rekey(keyset("flux-flux", "diffuser", dtype=dtype), "model.diffusion_model.", prefix)
    if variant == "schnell":
        spec = {k: v for k, v in spec.items() if ".guidance_in." not in f".{k}"}
    in_dim = {"fill": 384, "control": 128}.get(variant)
    if in_dim:
        spec[prefix + "img_in.weight"] = ((3072, in_dim), dtype)
    return spec


def flux2(prefix: str, dtype: str = "BF16") -> Spec:
    """Flux.2 [dev] transformer, BFL layout: shared modulation, 8 double and 48 single blocks, no biases."""
    h = 6144
    spec: Spec = {}

    def t(key: str, *shape: int) -> None:
        spec[prefix + key] = (tuple(shape), dtype)

    t("img_in.weight", h, 128)
    t("txt_in.weight", h, 15360)
    t("time_in.in_layer.weight", h, 256)
    t("time_in.out_layer.weight", h, h)
    t("guidance_in.in_layer.weight", h, 256)
    t("guidance_in.out_layer.weight", h, h)
    t("double_stream_modulation_img.lin.weight", 6 * h, h)
    t("double_stream_modulation_txt.lin.weight", 6 * h, h)
    t("single_stream_modulation.lin.weight", 3 * h, h)
    for i in range(8):
        for side in ("img", "txt"):
            p = f"double_blocks.{i}.{side}_"
            t(p + "attn.qkv.weight", 3 * h, h)
            t(p + "attn.proj.weight", h, h)
            t(p + "attn.norm.query_norm.scale", 128)
            t(p + "attn.norm.key_norm.scale", 128)
            t(p + "mlp.0.weight", 6 * h, h)
            t(p + "mlp.2.weight", h, 3 * h)
    for i in range(48):
        p = f"single_blocks.{i}."
        t(p + "linear1.weight", 9 * h, h)
        t(p + "linear2.weight", h, 4 * h)
        t(p + "norm.query_norm.scale", 128)
        t(p + "norm.key_norm.scale", 128)
    t("final_layer.adaLN_modulation.1.weight", 2 * h, h)
    t("final_layer.linear.weight", 128, h)
    return spec


def flux1_diffusers(variant: str = "dev", dtype: str = "BF16") -> Spec:
    """Flux.1 transformer in the diffusers layout (`FluxTransformer2DModel`)."""
    h = 3072
    spec: Spec = {}

    def lin(key: str, out: int, inp: int, bias: bool = True) -> None:
        spec[key + ".weight"] = ((out, inp), dtype)
        if bias:
            spec[key + ".bias"] = ((out,), dtype)

    lin("x_embedder", h, {"fill": 384, "control": 128}.get(variant, 64))
    lin("context_embedder", h, 4096)
    lin("time_text_embed.timestep_embedder.linear_1", h, 256)
    lin("time_text_embed.timestep_embedder.linear_2", h, h)
    lin("time_text_embed.text_embedder.linear_1", h, 768)
    lin("time_text_embed.text_embedder.linear_2", h, h)
    if variant != "schnell":
        lin("time_text_embed.guidance_embedder.linear_1", h, 256)
        lin("time_text_embed.guidance_embedder.linear_2", h, h)
    for i in range(19):
        p = f"transformer_blocks.{i}."
        for n in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"):
            lin(p + "attn." + n, h, h)
        lin(p + "attn.to_out.0", h, h)
        for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            spec[p + f"attn.{n}.weight"] = ((128,), dtype)
        lin(p + "norm1.linear", 6 * h, h)
        lin(p + "norm1_context.linear", 6 * h, h)
        lin(p + "ff.net.0.proj", 4 * h, h)
        lin(p + "ff.net.2", h, 4 * h)
        lin(p + "ff_context.net.0.proj", 4 * h, h)
        lin(p + "ff_context.net.2", h, 4 * h)
    for i in range(38):
        p = f"single_transformer_blocks.{i}."
        for n in ("to_q", "to_k", "to_v"):
            lin(p + "attn." + n, h, h)
        spec[p + "attn.norm_q.weight"] = ((128,), dtype)
        spec[p + "attn.norm_k.weight"] = ((128,), dtype)
        lin(p + "norm.linear", 3 * h, h)
        lin(p + "proj_mlp", 4 * h, h)
        lin(p + "proj_out", h, 5 * h)
    lin("norm_out.linear", 2 * h, h)
    lin("proj_out", 64, h)
    return spec


def sd3(prefix: str, size: str = "medium", dtype: str = "F16") -> Spec:
    """SD3 Medium (reference key set), SD3.5 Medium (MMDiT-X attn2, 384x384 position grid) or SD3.5 Large."""
    spec = rekey(keyset("sd3-comfyui", "diffuser", dtype=dtype), "model.diffusion_model.", "")
    if size == "35_medium":
        for i in range(13):
            p = f"joint_blocks.{i}.x_block."
            spec[p + "attn2.qkv.weight"] = ((4608, 1536), dtype)
            spec[p + "attn2.qkv.bias"] = ((4608,), dtype)
            spec[p + "attn2.proj.weight"] = ((1536, 1536), dtype)
            spec[p + "attn2.proj.bias"] = ((1536,), dtype)
        spec["pos_embed"] = ((1, 147456, 1536), dtype)
    elif size == "35_large":
        spec = remap_dims(spec, {1536: 2432, 4608: 7296, 6144: 9728, 9216: 14592, 3072: 4864})
        block = {k[len("joint_blocks.0.") :]: v for k, v in spec.items() if k.startswith("joint_blocks.0.")}
        last = {k[len("joint_blocks.23.") :]: v for k, v in spec.items() if k.startswith("joint_blocks.23.")}
        spec = {k: v for k, v in spec.items() if not k.startswith("joint_blocks.")}
        for i in range(38):
            for k, v in (last if i == 37 else block).items():
                spec[f"joint_blocks.{i}.{k}"] = v
    return {prefix + k: v for k, v in spec.items()}


def pixart(prefix: str, tokens: int = 300, dtype: str = "F16") -> Spec:
    """PixArt-Σ (300 T5 tokens) / PixArt-α (120): DiT-XL/2 with cross-attention to T5."""
    h = 1152
    spec: Spec = {}

    def t(key: str, *shape: int) -> None:
        spec[prefix + key] = (tuple(shape), dtype)

    t("x_embedder.proj.weight", h, 4, 2, 2)
    t("x_embedder.proj.bias", h)
    t("t_embedder.mlp.0.weight", h, 256)
    t("t_embedder.mlp.2.weight", h, h)
    t("t_block.1.weight", 6 * h, h)
    t("t_block.1.bias", 6 * h)
    t("y_embedder.y_embedding", tokens, 4096)
    t("y_embedder.y_proj.fc1.weight", h, 4096)
    t("y_embedder.y_proj.fc2.weight", h, h)
    t("pos_embed", 1, 4096, h)
    for i in range(28):
        p = f"blocks.{i}."
        t(p + "scale_shift_table", 6, h)
        t(p + "attn.qkv.weight", 3 * h, h)
        t(p + "attn.proj.weight", h, h)
        t(p + "cross_attn.q_linear.weight", h, h)
        t(p + "cross_attn.kv_linear.weight", 2 * h, h)
        t(p + "cross_attn.proj.weight", h, h)
        t(p + "mlp.fc1.weight", 4 * h, h)
        t(p + "mlp.fc2.weight", h, 4 * h)
    t("final_layer.scale_shift_table", 2, h)
    t("final_layer.linear.weight", 32, h)
    return spec


def cascade(stage: str = "c", dtype: str = "BF16") -> Spec:
    """Stable Cascade stage C (prior, text-conditioned) or stage B (decoder), with representative blocks."""
    spec: Spec = {}

    def t(key: str, *shape: int) -> None:
        spec[key] = (tuple(shape), dtype)

    c: tuple[int, ...]
    if stage == "c":
        c = (2048, 2048)
        t("clip_txt_mapper.weight", 8192, 1280)
        t("clip_txt_pooled_mapper.weight", 8192, 1280)
        t("clip_img_mapper.weight", 8192, 768)
        t("embedding.1.weight", c[0], 16, 1, 1)
        for lvl, ch in enumerate(c):
            for j in range(4):
                t(f"down_blocks.{lvl}.{j}.channelwise.0.weight", ch * 4, ch)
                t(f"down_blocks.{lvl}.{j}.depthwise.weight", ch, 1, 3, 3)
                t(f"up_blocks.{lvl}.{j}.channelwise.0.weight", ch * 4, ch)
        t("clf.1.weight", 16, c[0], 1, 1)
    else:
        c = (320, 640, 1280, 1280)
        t("clip_mapper.weight", 1280 * 4, 1280)
        t("effnet_mapper.0.weight", 1280, 16, 1, 1)
        t("embedding.1.weight", 320, 16, 1, 1)
        for lvl, ch in enumerate(c):
            for j in range(2):
                t(f"down_blocks.{lvl}.{j}.channelwise.0.weight", ch * 4, ch)
                t(f"up_blocks.{lvl}.{j}.channelwise.0.weight", ch * 4, ch)
        t("clf.1.weight", 16, 320, 1, 1)
    return spec


# --------------------------------------------------------------------------------------------- adapters

_ATTN_TARGET = re.compile(
    r"(?:proj_in|proj_out|attn[12]\.(?:to_q|to_k|to_v|to_out\.0)|ff\.net\.(?:0\.proj|2))\.weight$"
)
_CONV_TARGET = re.compile(
    r"(?:resnets\.\d+\.(?:conv1|conv2|conv_shortcut)|(?:down|up)samplers\.0\.conv|"
    r"\d+\.0\.(?:in_layers\.2|out_layers\.3|skip_connection|op)|\.\d+\.conv)\.weight$"
)
_TE_TARGET = re.compile(r"(?:self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])\.weight$")
_NORM_TARGET = re.compile(r"(?:transformer_blocks\.\d+\.norm[123]|layer_norm[12])\.weight$")
_FLUX_TARGET = re.compile(
    r"(?:double_blocks\.\d+\.(?:img|txt)_(?:attn\.qkv|attn\.proj|mlp\.0|mlp\.2|mod\.lin)|"
    r"single_blocks\.\d+\.(?:linear1|linear2|modulation\.lin))\.weight$"
)


def kohya_name(prefix: str, path: str) -> str:
    """`lora_unet_down_blocks_0_..._to_k`: kohya flattens the module path with underscores."""
    return prefix + path.removesuffix(".weight").replace(".", "_")


def _sd2_unet_diffusers() -> Spec:
    """SD2's UNet in diffusers names: SD1's modules with 1024-wide cross-attention and linear proj_in/out."""
    out: Spec = {}
    for key, (shape, dt) in rekey(keyset("sd1-kohya", "diffuser"), "unet.", "").items():
        if re.search(r"attn2\.to_[kv]\.weight$", key):
            shape = (shape[0], 1024)
        elif re.search(r"proj_(?:in|out)\.weight$", key):
            shape = shape[:2]
        out[key] = (shape, dt)
    return out


def lora_targets(base: str, conv: bool = False, norm: bool = False, te: bool = True) -> list[tuple[str, Shape]]:
    """(kohya module name, original weight shape) for the layers a kohya LoRA of `base` trains.

    UNet: attention layers (kohya's default), plus ResNet/down/upsampler convolutions with `conv` (LoCon).
    Text encoders: CLIP attention and MLP layers. With `norm`, only the normalisation layers (LyCORIS `norm`).
    """
    if base == "sd1":
        unet = rekey(keyset("sd1-kohya", "diffuser"), "unet.", "")
        tes = [("lora_te_", rekey(keyset("sd1-kohya", "clip_l"), "te.", ""))]
    elif base == "sd2":
        unet = _sd2_unet_diffusers()
        tes = [("lora_te_", hf_clip_text("", "clip_h"))]
    elif base == "sdxl":
        unet = rekey(keyset("sdxl-kohya", "diffuser"), "unet.", "")
        tes = [
            ("lora_te1_", rekey(keyset("sdxl-kohya", "clip_l", optional=True), "te1.", "")),
            ("lora_te2_", rekey(keyset("sdxl-kohya", "clip_g", optional=True), "te2.", "")),
        ]
    else:
        raise ValueError(base)
    out: list[tuple[str, Shape]] = []
    for path, (shape, _) in unet.items():
        if norm:
            if _NORM_TARGET.search(path):
                out.append((kohya_name("lora_unet_", path), shape))
        elif _ATTN_TARGET.search(path) or (conv and _CONV_TARGET.search(path) and len(shape) == 4):
            out.append((kohya_name("lora_unet_", path), shape))
    for prefix, spec in tes if te else []:
        for path, (shape, _) in spec.items():
            if (_NORM_TARGET if norm else _TE_TARGET).search(path):
                out.append((kohya_name(prefix, path), shape))
    return out


def flux_lora_targets() -> list[tuple[str, Shape]]:
    """(dotted module path, weight shape) of the Flux.1 layers LoRA trainers target, BFL names."""
    spec = rekey(keyset("flux-flux", "diffuser"), "model.diffusion_model.", "")
    return [(k.removesuffix(".weight"), shape) for k, (shape, _) in spec.items() if _FLUX_TARGET.search(k)]


def _factor(dim: int, limit: int = 16) -> tuple[int, int]:
    """LyCORIS-style factorisation: (m, n) with m * n == dim, m <= n, m as large as allowed."""
    best = (1, dim)
    for m in range(1, min(limit, dim) + 1):
        if dim % m == 0 and m <= dim // m:
            best = (m, dim // m)
    return best


def adapter_params(algo: str, shape: Shape, rank: int = 8, dtype: str = "F16") -> dict[str, tuple[Shape, str]]:
    """The parameters one module of `algo` stores for a layer whose weight has `shape` ([out, in(, kh, kw)])."""
    out, inp = shape[0], shape[1]
    kernel = tuple(shape[2:])
    flat_in = inp
    for k in kernel:
        flat_in *= k
    alpha: dict[str, tuple[Shape, str]] = {"alpha": ((), dtype)}
    if algo in ("lora", "locon", "dora"):
        params = {
            "lora_down.weight": ((rank, inp, *kernel) if kernel else (rank, inp), dtype),
            "lora_up.weight": ((out, rank, 1, 1) if kernel else (out, rank), dtype),
        } | alpha
        if algo == "dora":
            params["dora_scale"] = ((1, inp, *([1] * len(kernel))) if kernel else (1, inp), dtype)
        return params
    if algo == "loha":
        return {
            "hada_w1_a": ((out, rank), dtype),
            "hada_w1_b": ((rank, flat_in), dtype),
            "hada_w2_a": ((out, rank), dtype),
            "hada_w2_b": ((rank, flat_in), dtype),
        } | alpha
    if algo == "lokr":
        o1, o2 = _factor(out)
        i1, i2 = _factor(inp)
        return {
            "lokr_w1": ((o1, i1), dtype),
            "lokr_w2_a": ((o2, rank), dtype),
            "lokr_w2_b": ((rank, i2 * (flat_in // inp)), dtype),
        } | alpha
    if algo == "ia3":
        return {"weight": ((out,), dtype), "on_input": ((), "BOOL")}
    if algo in ("oft", "boft"):
        block, blocks = _factor(out, 32)
        if algo == "oft":
            return {"oft_blocks": ((blocks, block, block), dtype)} | alpha
        return {"oft_blocks": ((2, blocks, block, block), dtype), "rescale": ((out, 1), dtype)} | alpha
    if algo == "glora":
        return {
            "a1.weight": ((rank, flat_in), dtype),
            "a2.weight": ((out, rank), dtype),
            "b1.weight": ((rank, flat_in), dtype),
            "b2.weight": ((out, rank), dtype),
        } | alpha
    if algo == "full":
        return {"diff": (shape, dtype), "diff_b": ((out,), dtype)}
    raise ValueError(algo)


def norm_params(shape: Shape, dtype: str = "F16") -> dict[str, tuple[Shape, str]]:
    return {"w_norm": (shape, dtype), "b_norm": (shape, dtype)}


def build_adapter(
    targets: Iterable[tuple[str, Shape]], params: Callable[[Shape], dict[str, tuple[Shape, str]]]
) -> Spec:
    spec: Spec = {}
    for module, shape in targets:
        for suffix, value in params(shape).items():
            spec[f"{module}.{suffix}"] = value
    return spec


def peft_targets(base: str) -> list[tuple[str, Shape]]:
    """(dotted module path, weight shape) for a diffusers/PEFT LoRA: `unet.…`, `text_encoder.…`, `text_encoder_2.…`."""
    out: list[tuple[str, Shape]] = []
    if base == "sd1":
        groups = [
            (keyset("sd1-kohya", "diffuser"), "unet.", "unet."),
            (keyset("sd1-kohya", "clip_l"), "te.", "text_encoder."),
        ]
    else:
        groups = [
            ({"unet." + k: v for k, v in keyset("sdxl-diffusers_unet_only").items()}, "unet.", "unet."),
            (keyset("sdxl-kohya", "clip_l"), "te1.", "text_encoder."),
            (keyset("sdxl-kohya", "clip_g"), "te2.", "text_encoder_2."),
        ]
    for spec, src, dst in groups:
        for key, (shape, _) in spec.items():
            path = key[len(src) :]
            if re.search(r"attn[12]\.(?:to_q|to_k|to_v|to_out\.0)\.weight$", path) or _TE_TARGET.search(path):
                out.append((dst + path.removesuffix(".weight"), shape))
    return out


def flux_peft_targets() -> list[tuple[str, Shape]]:
    spec = flux1_diffusers()
    keep = re.compile(
        r"(?:attn\.(?:to_q|to_k|to_v|add_q_proj|add_k_proj|add_v_proj|to_out\.0|to_add_out)|proj_mlp|proj_out|ff\.net\.(?:0\.proj|2))\.weight$"
    )
    return [
        ("transformer." + k.removesuffix(".weight"), shape)
        for k, (shape, _) in spec.items()
        if "blocks." in k and keep.search(k)
    ]


# --------------------------------------------------------------------------------------------- misc families


def motion_module(version: str, dtype: str = "F16") -> Spec:
    """An AnimateDiff motion module: v1 (24 positions), v2 (adds mid-block), v3, or the SDXL beta (3 levels)."""
    length = 24 if version == "v1" else 32
    down: tuple[int, ...]
    up: tuple[int, ...]
    if version == "sdxl":
        down, up = (320, 640, 1280), (1280, 640, 320)
    else:
        down, up = (320, 640, 1280, 1280), (1280, 1280, 640, 320)
    spec: Spec = {}

    def module(p: str, c: int) -> None:
        def t(key: str, *shape: int) -> None:
            spec[p + key] = (tuple(shape), dtype)

        tt = "temporal_transformer."
        t(tt + "norm.weight", c)
        t(tt + "norm.bias", c)
        t(tt + "proj_in.weight", c, c)
        t(tt + "proj_in.bias", c)
        b = tt + "transformer_blocks.0."
        for a in (0, 1):
            ab = f"{b}attention_blocks.{a}."
            for n in ("to_q", "to_k", "to_v"):
                t(ab + f"{n}.weight", c, c)
            t(ab + "to_out.0.weight", c, c)
            t(ab + "to_out.0.bias", c)
            t(ab + "pos_encoder.pe", 1, length, c)
            t(f"{b}norms.{a}.weight", c)
            t(f"{b}norms.{a}.bias", c)
        t(b + "ff.net.0.proj.weight", c * 8, c)
        t(b + "ff.net.0.proj.bias", c * 8)
        t(b + "ff.net.2.weight", c, c * 4)
        t(b + "ff.net.2.bias", c)
        t(b + "ff_norm.weight", c)
        t(b + "ff_norm.bias", c)
        t(tt + "proj_out.weight", c, c)
        t(tt + "proj_out.bias", c)

    for i, c in enumerate(down):
        for j in range(2):
            module(f"down_blocks.{i}.motion_modules.{j}.", c)
    for i, c in enumerate(up):
        for j in range(3):
            module(f"up_blocks.{i}.motion_modules.{j}.", c)
    if version == "v2":
        module("mid_block.motion_modules.0.", 1280)
    return spec


def ip_adapter_layers(base: str) -> list[int]:
    """Channel count of each cross-attention processor, in diffusers' `attn_processors` order."""
    if base == "sdxl":
        per_block = [(640, 2 * 2), (1280, 2 * 10)]  # down blocks 1-2: 2 attentions x depth
        down = [ch for ch, n in per_block for _ in range(n)]
        up = [1280] * 30 + [640] * 6
        return down + up + [1280] * 10
    return [320, 320, 640, 640, 1280, 1280] + [1280] * 3 + [640] * 3 + [320] * 3 + [1280]


def ip_adapter(base: str, plus: bool = False, dtype: str = "F16") -> dict[str, Spec]:
    """IP-Adapter as the .bin nests it: {"image_proj": {...}, "ip_adapter": {"1.to_k_ip.weight": ...}}."""
    ctx = {"sd1": 768, "sd2": 1024, "sdxl": 2048}[base]
    clip_dim = 1280 if base == "sdxl" else 1024
    image_proj: Spec = {}
    if plus:
        image_proj["latents"] = ((1, 16, ctx), dtype)
        image_proj["proj_in.weight"] = ((ctx, clip_dim), dtype)
        image_proj["proj_out.weight"] = ((ctx, ctx), dtype)
        image_proj["norm_out.weight"] = ((ctx,), dtype)
    else:
        image_proj["proj.weight"] = ((ctx * 4, clip_dim), dtype)
        image_proj["proj.bias"] = ((ctx * 4,), dtype)
        image_proj["norm.weight"] = ((ctx,), dtype)
        image_proj["norm.bias"] = ((ctx,), dtype)
    layers: Spec = {}
    for i, ch in enumerate(ip_adapter_layers(base)):
        layers[f"{2 * i + 1}.to_k_ip.weight"] = ((ch, ctx), dtype)
        layers[f"{2 * i + 1}.to_v_ip.weight"] = ((ch, ctx), dtype)
    return {"image_proj": image_proj, "ip_adapter": layers}


def esrgan_old(nb: int = 23, nf: int = 64, gc: int = 32) -> Spec:
    spec: Spec = {}

    def conv(key: str, out: int, inp: int) -> None:
        spec[key + ".weight"] = ((out, inp, 3, 3), "F32")
        spec[key + ".bias"] = ((out,), "F32")

    conv("model.0", nf, 3)
    for b in range(nb):
        for r in (1, 2, 3):
            for c in range(1, 6):
                conv(f"model.1.sub.{b}.RDB{r}.conv{c}.0", nf if c == 5 else gc, nf + (c - 1) * gc)
    conv(f"model.1.sub.{nb}", nf, nf)
    for i in (3, 6, 8):
        conv(f"model.{i}", nf, nf)
    conv("model.10", 3, nf)
    return spec


def esrgan_new(nb: int = 23, nf: int = 64, gc: int = 32) -> Spec:
    spec: Spec = {}

    def conv(key: str, out: int, inp: int) -> None:
        spec[key + ".weight"] = ((out, inp, 3, 3), "F32")
        spec[key + ".bias"] = ((out,), "F32")

    conv("conv_first", nf, 3)
    for b in range(nb):
        for r in (1, 2, 3):
            for c in range(1, 6):
                conv(f"body.{b}.rdb{r}.conv{c}", nf if c == 5 else gc, nf + (c - 1) * gc)
    for n in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(n, nf, nf)
    conv("conv_last", 3, nf)
    return spec


def compact(num_conv: int = 16, nf: int = 64, scale: int = 4) -> Spec:
    spec: Spec = {
        "body.0.weight": ((nf, 3, 3, 3), "F32"),
        "body.0.bias": ((nf,), "F32"),
        "body.1.weight": ((nf,), "F32"),
    }
    for i in range(num_conv):
        spec[f"body.{2 * i + 2}.weight"] = ((nf, nf, 3, 3), "F32")
        spec[f"body.{2 * i + 2}.bias"] = ((nf,), "F32")
        spec[f"body.{2 * i + 3}.weight"] = ((nf,), "F32")
    last = 2 * num_conv + 2
    spec[f"body.{last}.weight"] = ((3 * scale * scale, nf, 3, 3), "F32")
    spec[f"body.{last}.bias"] = ((3 * scale * scale,), "F32")
    return spec


def swinir(dim: int = 180, layers: int = 6, depth: int = 6, window: int = 8) -> Spec:
    spec: Spec = {"conv_first.weight": ((dim, 3, 3, 3), "F32"), "conv_first.bias": ((dim,), "F32")}
    spec["patch_embed.norm.weight"] = ((dim,), "F32")
    spec["patch_embed.norm.bias"] = ((dim,), "F32")
    for i in range(layers):
        for j in range(depth):
            p = f"layers.{i}.residual_group.blocks.{j}."
            spec[p + "norm1.weight"] = ((dim,), "F32")
            spec[p + "norm1.bias"] = ((dim,), "F32")
            spec[p + "attn.relative_position_bias_table"] = (((2 * window - 1) ** 2, 6), "F32")
            spec[p + "attn.relative_position_index"] = ((window * window, window * window), "I64")
            spec[p + "attn.qkv.weight"] = ((3 * dim, dim), "F32")
            spec[p + "attn.proj.weight"] = ((dim, dim), "F32")
            spec[p + "norm2.weight"] = ((dim,), "F32")
            spec[p + "mlp.fc1.weight"] = ((2 * dim, dim), "F32")
            spec[p + "mlp.fc1.bias"] = ((2 * dim,), "F32")
            spec[p + "mlp.fc2.weight"] = ((dim, 2 * dim), "F32")
        spec[f"layers.{i}.conv.weight"] = ((dim, dim, 3, 3), "F32")
    spec["norm.weight"] = ((dim,), "F32")
    spec["conv_after_body.weight"] = ((dim, dim, 3, 3), "F32")
    spec["conv_before_upsample.0.weight"] = ((64, dim, 3, 3), "F32")
    spec["upsample.0.weight"] = ((256, 64, 3, 3), "F32")
    spec["upsample.2.weight"] = ((256, 64, 3, 3), "F32")
    spec["conv_last.weight"] = ((3, 64, 3, 3), "F32")
    return spec


def scunet(dim: int = 64) -> Spec:
    spec: Spec = {"m_head.0.weight": ((dim, 3, 3, 3), "F32")}
    for i in range(4):
        spec[f"m_down1.{i}.trans_block.ln1.weight"] = ((dim // 2,), "F32")
    spec["m_tail.0.weight"] = ((3, dim, 3, 3), "F32")
    return spec
