"""Classifier rules on hand-built headers: layouts the factory does not write as files, and edge cases."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from modeldex.identify.classify import classify
from modeldex.identify.classify.adapters import split_adapter_key
from modeldex.identify.records import Header, TensorInfo


def header(
    tensors: Mapping[str, tuple[int, ...]],
    metadata: dict[str, str] | None = None,
    fmt: str = "safetensors",
    **extra: object,
) -> Header:
    return Header(
        format=fmt,  # type: ignore[arg-type]
        tensors={k: TensorInfo(shape=s, dtype="F16") for k, s in tensors.items()},
        metadata=metadata or {},
        extra=dict(extra),
    )


def flux_keys(prefix: str = "", in_dim: int = 64, guidance: bool = True) -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {
        f"{prefix}double_blocks.0.img_attn.norm.key_norm.scale": (128,),
        f"{prefix}double_blocks.0.img_attn.qkv.weight": (9216, 3072),
        f"{prefix}single_blocks.0.linear1.weight": (21504, 3072),
        f"{prefix}img_in.weight": (3072, in_dim),
    }
    if guidance:
        keys[f"{prefix}guidance_in.in_layer.weight"] = (3072, 256)
    return keys


def test_chroma_is_flux1_from_schnell() -> None:
    keys = flux_keys(guidance=False) | {"distilled_guidance_layer.in_proj.bias": (5120,)}
    got = classify(header(keys))
    assert (got.kind, got.base, got.variant) == ("diffusion_model", "flux1", "schnell")
    assert any("Chroma" in e for e in got.evidence)


def test_flux_nf4_reads_the_variant_from_guidance_not_the_packed_shape() -> None:
    keys = flux_keys("model.diffusion_model.", in_dim=1) | {
        "model.diffusion_model.img_in.weight.quant_state.bitsandbytes__nf4": (1,),
    }
    assert classify(header(keys)).variant == "dev"


def test_flux2_and_sd3_in_diffusers_layout() -> None:
    flux2 = {
        "x_embedder.weight": (6144, 128),
        "single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight": (55296, 6144),
        "single_stream_modulation.linear.weight": (18432, 6144),
    }
    assert (classify(header(flux2)).kind, classify(header(flux2)).base) == ("diffusion_model", "flux2")
    sd35m = {
        "pos_embed.proj.weight": (1536, 16, 2, 2),
        "pos_embed.pos_embed": (1, 147456, 1536),
        "transformer_blocks.0.attn.to_q.weight": (1536, 1536),
        "transformer_blocks.0.attn.add_q_proj.weight": (1536, 1536),
        "transformer_blocks.0.attn2.to_q.weight": (1536, 1536),
    }
    assert classify(header(sd35m)).base == "sd35_medium"
    sd3 = {k: v for k, v in sd35m.items() if "attn2" not in k} | {"pos_embed.pos_embed": (1, 36864, 1536)}
    assert classify(header(sd3)).base == "sd3"


def test_pixart_in_diffusers_layout() -> None:
    keys = {
        "adaln_single.emb.timestep_embedder.linear_1.bias": (1152,),
        "pos_embed.proj.bias": (1152,),
        "pos_embed.proj.weight": (1152, 4, 2, 2),
        "caption_projection.linear_1.weight": (1152, 4096),
        "transformer_blocks.0.attn1.to_q.weight": (1152, 1152),
    }
    assert (classify(header(keys)).kind, classify(header(keys)).base) == ("diffusion_model", "pixart")


def test_svd_in_diffusers_layout_is_normal_despite_8_input_channels() -> None:
    keys = {
        "conv_in.weight": (320, 8, 3, 3),
        "time_embedding.linear_1.weight": (1280, 320),
        "up_blocks.0.resnets.0.spatial_res_block.conv1.weight": (1280, 2560, 3, 3),
        "down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_q.weight": (320, 320),
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
    }
    got = classify(header(keys))
    assert (got.base, got.variant) == ("svd", "normal")


@pytest.mark.parametrize(
    ("keys", "base"),
    [
        ({"controlnet_blocks.0.weight": (3072, 3072), "double_blocks.0.img_attn.qkv.weight": (9216, 3072)}, "flux1"),
        (
            {"controlnet_x_embedder.weight": (3072, 64), "single_transformer_blocks.0.attn.to_q.weight": (3072, 3072)},
            "flux1",
        ),
        ({"controlnet_blocks.0.linear.weight": (3072, 3072)}, "flux1"),
        ({"pos_embed_input.proj.weight": (1536, 16, 2, 2), "pos_embed.proj.weight": (1536, 16, 2, 2)}, "sd3"),
        ({"pos_embed_input.proj.weight": (2432, 16, 2, 2), "pos_embed.proj.weight": (2432, 16, 2, 2)}, "sd35_large"),
    ],
    ids=["xlabs-flux", "instantx-flux", "mistoline-flux", "sd3", "sd35-large"],
)
def test_dit_controlnets(keys: dict[str, tuple[int, ...]], base: str) -> None:
    got = classify(header(keys))
    assert (got.kind, got.base, got.variant) == ("controlnet", base, "controlnet")


def test_faceid_ip_adapter_is_not_mistaken_for_a_lora() -> None:
    keys: dict[str, tuple[int, ...]] = {"image_proj.proj.0.weight": (1024, 512), "image_proj.norm.weight": (768,)}
    for i in (1, 3, 5):
        keys[f"ip_adapter.{i}.to_k_ip.weight"] = (320, 768)
        keys[f"ip_adapter.{i}.to_v_ip.weight"] = (320, 768)
        for n in ("to_q_lora", "to_k_lora", "to_v_lora", "to_out_lora"):
            keys[f"ip_adapter.{i}.{n}.down.weight"] = (128, 320)
            keys[f"ip_adapter.{i}.{n}.up.weight"] = (320, 128)
    got = classify(header(keys))
    assert (got.kind, got.base) == ("ip_adapter", "sd1")
    assert any("FaceID" in e for e in got.evidence)


def test_xlabs_flux_ip_adapter() -> None:
    keys = {
        "ip_adapter_proj_model.proj.weight": (16384, 768),
        "double_blocks.0.processor.ip_adapter_double_stream_k_proj.weight": (3072, 4096),
    }
    assert (classify(header(keys)).kind, classify(header(keys)).base) == ("ip_adapter", "flux1")


@pytest.mark.parametrize(
    ("keys", "base"),
    [
        (
            {
                "lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight": (8, 1536),
                "lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight": (4608, 8),
            },
            "sd3",
        ),
        (
            {
                "lora_unet_joint_blocks_37_x_block_attn_qkv.lora_down.weight": (8, 2432),
                "lora_unet_joint_blocks_37_x_block_attn_qkv.lora_up.weight": (7296, 8),
            },
            "sd35_large",
        ),
        (
            {
                "lora_unet_joint_blocks_0_x_block_attn2_qkv.lora_down.weight": (8, 1536),
                "lora_unet_joint_blocks_0_x_block_attn2_qkv.lora_up.weight": (4608, 8),
            },
            "sd35_medium",
        ),
        (
            {
                "lora_prior_unet_down_blocks_0_0_channelwise_0.lora_down.weight": (8, 2048),
                "lora_prior_unet_down_blocks_0_0_channelwise_0.lora_up.weight": (8192, 8),
            },
            "cascade",
        ),
        (
            {
                "lora_unet_single_stream_modulation_lin.lora_down.weight": (8, 6144),
                "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (8, 6144),
            },
            "flux2",
        ),
        (
            {
                "transformer.context_embedder.lora_A.weight": (8, 15360),
                "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": (8, 6144),
            },
            "flux2",
        ),
        (
            {
                "transformer.transformer_blocks.0.attn.to_q.lora_A.weight": (8, 1536),
                "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": (1536, 8),
            },
            "sd3",
        ),
    ],
    ids=["sd3-kohya", "sd35-large-kohya", "sd35-medium-kohya", "cascade", "flux2-kohya", "flux2-peft", "sd3-peft"],
)
def test_lora_bases_of_other_families(keys: dict[str, tuple[int, ...]], base: str) -> None:
    got = classify(header(keys))
    assert (got.kind, got.base, got.algo) == ("lora", base, "lora")


def test_old_diffusers_and_motion_loras() -> None:
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor"
    old = {f"{attn}.to_k_lora.down.weight": (4, 768), f"{attn}.to_k_lora.up.weight": (320, 4)}
    assert (classify(header(old)).kind, classify(header(old)).base) == ("lora", "sd1")
    motion = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor"
    keys = {f"{motion}.to_q_lora.down.weight": (64, 320), f"{motion}.to_q_lora.up.weight": (320, 64)}
    assert classify(header(keys)).kind == "lora"


@pytest.mark.parametrize(
    ("key", "split"),
    [
        (
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
            ("lora_unet_down_blocks_0_attentions_0_proj_in", "lora_down.weight"),
        ),
        (
            "lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha",
            ("lora_te1_text_model_encoder_layers_0_mlp_fc1", "alpha"),
        ),
        (
            "unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
            ("unet.mid_block.attentions.0.transformer_blocks.0.attn1.to_q", "lora_A.weight"),
        ),
        ("double_blocks.3.processor.qkv_lora2.up.weight", ("double_blocks.3.processor.qkv_lora2", "lora.up.weight")),
        ("model.diffusion_model.input_blocks.0.0.weight", None),
        ("first_stage_model.decoder.up.0.block.0.conv1.weight", None),
    ],
)
def test_split_adapter_key(key: str, split: tuple[str, str] | None) -> None:
    assert split_adapter_key(key) == split


@pytest.mark.parametrize(
    ("keys", "label"),
    [
        ({"toRGB.0.weight": (3, 512, 1, 1), "stylegan_decoder.style_mlp.1.weight": (512, 512)}, "GFPGAN"),
        (
            {
                "relative_position_index_SA": (256, 256),
                "conv_first.weight": (180, 3, 3, 3),
                "layers.0.residual_group.blocks.0.conv_block.cab.0.weight": (60, 180, 3, 3),
            },
            "HAT",
        ),
        (
            {
                "conv_first.weight": (180, 3, 3, 3),
                "before_RG.1.weight": (180,),
                "layers.0.blocks.0.attn.attns.0.pos.pos_proj.weight": (8, 2),
            },
            "DAT",
        ),
        (
            {
                "conv_1.sk.weight": (48, 3, 1, 1),
                "block_1.c1_r.sk.weight": (48, 48, 1, 1),
                "conv_cat.weight": (48, 192, 1, 1),
                "upsampler.0.weight": (48, 48, 3, 3),
            },
            "SPAN",
        ),
        (
            {
                "conv_first.weight": (64, 3, 3, 3),
                "RRDB_trunk.0.RDB1.conv1.weight": (32, 64, 3, 3),
                "trunk_conv.weight": (64, 64, 3, 3),
                "conv_last.weight": (3, 64, 3, 3),
            },
            "BSRGAN",
        ),
        (
            {
                "quantize.embedding.weight": (1024, 256),
                "position_emb": (256, 512),
                "ft_layers.0.self_attn.in_proj_weight": (1536, 512),
            },
            "CodeFormer",
        ),
    ],
    ids=["gfpgan", "hat", "dat", "span", "bsrgan", "codeformer"],
)
def test_upscaler_architectures(keys: dict[str, tuple[int, ...]], label: str) -> None:
    got = classify(header(keys))
    assert (got.kind, got.base) == ("upscaler", "any")
    assert label in got.evidence[0]


def test_restoreformer_is_an_upscaler_not_a_vae() -> None:
    keys = {
        "encoder.conv_in.weight": (64, 3, 3, 3),
        "encoder.down.0.block.0.norm1.weight": (64,),
        "decoder.conv_in.weight": (512, 256, 3, 3),
        "decoder.up.0.block.0.conv1.weight": (64, 64, 3, 3),
        "quantize.embedding.weight": (1024, 256),
    }
    assert classify(header(keys)).kind == "upscaler"


@pytest.mark.parametrize(
    ("keys", "base", "label"),
    [
        (
            {
                "encoder.block.0.layer.0.SelfAttention.k.weight": (4096, 4096),
                "encoder.block.23.layer.1.DenseReluDense.wi.weight": (16384, 4096),
            },
            "any",
            "T5-XXL",
        ),
        (
            {"model.embed_tokens.weight": (151936, 2560), "model.layers.0.self_attn.q_proj.weight": (4096, 2560)},
            "any",
            "LLM",
        ),
        (
            {
                "cond_stage_model.model.token_embedding.weight": (49408, 1024),
                "cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight": (4096, 1024),
            },
            "sd2",
            "ViT-H",
        ),
        (
            {"token_embedding.weight": (49408, 1280), "transformer.resblocks.0.mlp.c_fc.weight": (5120, 1280)},
            "any",
            "bigG",
        ),
    ],
    ids=["t5-old", "llm", "openclip-h", "openclip-g"],
)
def test_text_encoder_layouts(keys: dict[str, tuple[int, ...]], base: str, label: str) -> None:
    got = classify(header(keys))
    assert (got.kind, got.base) == ("text_encoder", base)
    assert any(label in e for e in got.evidence)


def test_full_clip_and_openclip_vision_are_clip_vision() -> None:
    full = {
        "text_model.encoder.layers.0.mlp.fc1.weight": (3072, 768),
        "vision_model.encoder.layers.0.layer_norm1.weight": (1024,),
        "vision_model.encoder.layers.23.layer_norm1.weight": (1024,),
    }
    got = classify(header(full))
    assert (got.kind, got.base) == ("clip_vision", "any")
    assert any("full CLIP" in e for e in got.evidence)
    openclip = {"visual.conv1.weight": (1280, 3, 14, 14), "visual.transformer.resblocks.0.ln_1.weight": (1280,)}
    assert classify(header(openclip)).kind == "clip_vision"


def test_video_vaes_have_no_base() -> None:
    wan = {"decoder.middle.0.residual.0.gamma": (384, 1, 1, 1), "encoder.conv1.weight": (96, 3, 3, 3, 3)}
    assert (classify(header(wan)).kind, classify(header(wan)).base) == ("vae", "unknown")
    conv3d = {"decoder.conv_in.weight": (512, 16, 3, 3, 3), "decoder.up.0.block.0.conv1.weight": (128, 128, 3, 3, 3)}
    assert (classify(header(conv3d)).kind, classify(header(conv3d)).base) == ("vae", "unknown")


def test_empty_header_and_stray_bare_tensor_are_unknown() -> None:
    empty = classify(header({}))
    assert (empty.kind, empty.evidence) == ("unknown", ["no tensors"])
    bare = classify(header({"": (3, 224, 224)}))
    assert bare.kind == "unknown" and bare.evidence


def test_gguf_architecture_is_cited() -> None:
    got = classify(header(flux_keys(), {"general.architecture": "flux"}, fmt="gguf"))
    assert "general.architecture=flux" in got.evidence


def test_hypernetwork_needs_every_key_to_fit_the_layout() -> None:
    keys = {"768.0.linear.0.weight": (1536, 768), "768.0.linear.0.bias": (1536,), "320.1.linear.1.weight": (320, 640)}
    assert classify(header(keys, values={"layer_structure": [1, 2, 1]})).kind == "hypernetwork"
    keys["something.else"] = (3,)
    assert classify(header(keys)).kind != "hypernetwork"


def test_diffusers_folder_without_readable_weights_falls_back_to_the_pipeline_class() -> None:
    got = classify(
        Header(format="diffusers", extra={"model_index": {"_class_name": "StableDiffusionXLPipeline"}, "configs": {}})
    )
    assert (got.kind, got.base) == ("checkpoint", "sdxl")
    assert any("_class_name" in e for e in got.evidence)
