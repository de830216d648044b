"""Super-resolution and restoration networks, recognised by key conditions (§1.11).

The conditions follow the architectures spandrel detects; spandrel itself is not imported (it needs torchvision).
"""

from __future__ import annotations

from modeldex.identify.classify.probe import Probe
from modeldex.identify.classify.result import Classification

# (architecture, keys that must all exist). Checked in order: more specific layouts before looser ones.
_ARCHITECTURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ESRGAN (old layout)", ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")),
    ("ESRGAN+", ("model.0.weight", "model.1.sub.0.RDB1.conv1x1.weight")),
    (
        "Real-ESRGAN (RRDBNet)",
        ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"),
    ),
    (
        "BSRGAN / RealSR",
        ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight", "conv_last.weight"),
    ),
    ("SPSR", ("f_HR_conv1.0.weight", "model.0.weight")),
    (
        "HAT",
        ("relative_position_index_SA", "conv_first.weight", "layers.0.residual_group.blocks.0.conv_block.cab.0.weight"),
    ),
    ("SRFormer", ("conv_first.weight", "layers.0.residual_group.blocks.0.attn.aligned_relative_position_index")),
    (
        "Swin2SR",
        (
            "conv_first.weight",
            "patch_embed.proj.weight",
            "layers.0.residual_group.blocks.0.attn.relative_position_index",
        ),
    ),
    (
        "SwinIR",
        (
            "conv_first.weight",
            "layers.0.residual_group.blocks.0.norm1.weight",
            "layers.0.residual_group.blocks.0.attn.relative_position_index",
        ),
    ),
    ("DAT", ("conv_first.weight", "before_RG.1.weight", "layers.0.blocks.0.attn.attns.0.pos.pos_proj.weight")),
    ("CRAFT", ("conv_first.weight", "layers.0.residual_group.hf_blocks.0.attn.temperature")),
    (
        "GRL",
        ("conv_first.weight", "norm_start.weight", "layers.0.blocks.0.attn.window_attn.attn_transform.logit_scale"),
    ),
    ("SPAN", ("conv_1.sk.weight", "block_1.c1_r.sk.weight", "conv_cat.weight", "upsampler.0.weight")),
    ("OmniSR", ("residual_layer.0.residual_layer.0.layer.0.fn.0.weight", "input.weight", "up.0.weight")),
    ("SCUNet", ("m_head.0.weight", "m_tail.0.weight")),
    ("FBCNN", ("m_head.weight", "m_tail.weight", "qf_pred.0.res.0.weight")),
    ("RealCUGAN", ("unet1.conv1.conv.0.weight", "unet1.conv_bottom.weight", "unet2.conv_bottom.weight")),
    ("GFPGAN", ("toRGB.0.weight", "stylegan_decoder.style_mlp.1.weight")),
    ("CodeFormer", ("quantize.embedding.weight", "position_emb", "ft_layers.0.self_attn.in_proj_weight")),
    ("RestoreFormer", ("encoder.conv_in.weight", "encoder.down.0.block.0.norm1.weight", "quantize.embedding.weight")),
    ("SAFMN", ("to_feat.weight", "feats.0.safm.aggr.weight", "to_img.0.weight")),
    ("NAFNet", ("intro.weight", "ending.weight", "middle_blks.0.conv1.weight")),
    ("SwiftSRGAN", ("initial.cnn.depthwise.weight", "final_conv.pointwise.weight")),
    ("LaMa", ("model.model.1.bn_l.running_mean",)),
    ("LaMa", ("generator.model.1.bn_l.running_mean",)),
)


def detect_upscaler(p: Probe) -> Classification | None:
    """An ESRGAN-family or other image restoration network."""
    for arch, keys in _ARCHITECTURES:
        if all(p.has(k) for k in keys):
            return Classification(kind="upscaler", base="any", evidence=[f"{arch}: {p.ev(keys[-1])}"])
    if _is_compact(p):
        return Classification(
            kind="upscaler",
            base="any",
            evidence=[f"Compact (SRVGGNet): {p.ev('body.0.weight')}, {p.ev('body.1.weight')}"],
        )
    return None


def _is_compact(p: Probe) -> bool:
    # SRVGGNetCompact alternates a 3x3 conv and a PReLU (a 1-D weight) under `body.N`, and nothing else.
    first, act = p.shape("body.0.weight"), p.shape("body.1.weight")
    if first is None or act is None or len(first) != 4 or len(act) != 1:
        return False
    return all(k.startswith("body.") for k in p.tensors)
