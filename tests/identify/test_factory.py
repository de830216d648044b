"""The fixture factory writes what it claims: real readable files, real key layouts, sparse on disk."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import factory_keys as fk
import pytest
from factory import ModelFactory, spec_size

from modeldex.identify.readers import read_header


@pytest.mark.parametrize(
    ("keyset", "prefix", "config"),
    [("sd1-ldm", "model.diffusion_model.", fk.SD1_UNET), ("sdxl-sgm", "model.diffusion_model.", fk.SDXL_UNET)],
)
def test_unet_generator_reproduces_the_reference_key_sets(keyset: str, prefix: str, config: dict[str, object]) -> None:
    reference = {k: shape for k, (shape, _) in fk.keyset(keyset, "diffuser").items() if k.startswith(prefix)}
    generated = {k: shape for k, (shape, _) in fk.ldm_unet(prefix, **config).items()}  # type: ignore[arg-type]
    assert generated == reference


def test_safetensors_are_full_size_sparse_and_readable_by_safetensors(factory: ModelFactory) -> None:
    from safetensors import safe_open

    spec = factory.checkpoint_spec("sdxl")
    path = factory.checkpoint("sdxl")
    size = path.stat().st_size
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
    assert size == 8 + length + spec_size(spec)
    assert size > 5_000_000_000  # a real SDXL checkpoint's size in fp16...
    assert path.stat().st_blocks * 512 < 10_000_000  # ...that costs almost no disk
    with safe_open(str(path), framework="numpy") as fh:
        assert set(fh.keys()) == set(spec)
        assert list(fh.get_slice("model.diffusion_model.input_blocks.0.0.weight").get_shape()) == [320, 4, 3, 3]


@pytest.mark.parametrize("fmt", ["pickle", "legacy"])
def test_pickles_load_in_torch_with_every_shape(factory: ModelFactory, fmt: str) -> None:
    import torch

    spec = factory.checkpoint_spec("sd1")
    path = factory.checkpoint("sd1", fmt=fmt)
    assert path.stat().st_size < 2_000_000
    loaded = torch.load(path, weights_only=True)
    assert loaded["global_step"] == 470000
    state = loaded["state_dict"]
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: shape for k, (shape, _) in spec.items()}
    assert state["model.diffusion_model.input_blocks.0.0.weight"].dtype == torch.float16


def test_nested_pickles_keep_their_structure(factory: ModelFactory) -> None:
    import torch

    ti = torch.load(factory.embedding("sd1", style="a1111"), weights_only=True)
    assert ti["string_to_token"] == {"*": 265} and tuple(ti["string_to_param"]["*"].shape) == (4, 768)
    hn = torch.load(factory.hypernetwork("sd1"), weights_only=True)
    assert tuple(hn[768][0]["linear.0.weight"].shape) == (1536, 768) and hn["layer_structure"] == [1, 2, 1]
    ip = torch.load(factory.ip_adapter("sdxl"), weights_only=True)
    assert set(ip) == {"image_proj", "ip_adapter"} and tuple(ip["ip_adapter"]["1.to_k_ip.weight"].shape) == (640, 2048)
    assert tuple(torch.load(factory.aesthetic_gradient(), weights_only=True).shape) == (1, 768)


def test_gguf_files_read_back_in_pytorch_order_with_their_types(factory: ModelFactory) -> None:
    path = factory.gguf_model("flux1", qtype="Q4_K")
    header = read_header(path)
    qkv = header.tensors["double_blocks.0.img_attn.qkv.weight"]
    assert (qkv.shape, qkv.dtype) == ((9216, 3072), "Q4_K")
    assert header.tensors["img_in.weight"].shape == (3072, 64)
    assert header.metadata.get("general.architecture") == "flux"


def test_kohya_lora_names_follow_sd_scripts(factory: ModelFactory) -> None:
    spec = factory.lora_spec("sd1")
    assert spec["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k.lora_down.weight"][0] == (8, 320)
    assert spec["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"][0] == (8, 320, 1, 1)
    assert spec["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"][0] == (8, 768)
    xl = factory.lora_spec("sdxl")
    assert xl["lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight"][0] == (8, 2048)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_31_") for k in xl)
    locon = factory.lora_spec("sd1", "locon")
    assert locon["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"][0] == (8, 320, 3, 3)


def test_diffusers_layouts_match_diffusers_own_models() -> None:
    """Templates the factory builds without a reference key set, checked against diffusers' classes (meta device)."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")

    def shapes(model: object) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}  # type: ignore[attr-defined]

    maker = ModelFactory.__new__(ModelFactory)
    with torch.device("meta"):
        flux = diffusers.FluxTransformer2DModel(guidance_embeds=True)
        controlnet = diffusers.ControlNetModel(cross_attention_dim=768)
        adapter = diffusers.T2IAdapter(
            channels=[320, 640, 1280, 1280], num_res_blocks=2, downscale_factor=16, adapter_type="full_adapter_xl"
        )
    assert {k: s for k, (s, _) in fk.flux1_diffusers("dev").items()} == shapes(flux)
    assert {k: s for k, (s, _) in maker._diffusers_controlnet("sd1").items()} == shapes(controlnet)
    assert {k: s for k, (s, _) in maker._t2i_adapter("sdxl").items()} == shapes(adapter)


def test_diffusers_pipeline_folder_layout(factory: ModelFactory) -> None:
    folder = factory.diffusers_pipeline("sdxl")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        assert (folder / component / "config.json").is_file()
        assert any(p.suffix == ".safetensors" for p in (folder / component).iterdir())
    header = read_header(folder)
    assert header.format == "diffusers"
    assert header.tensors["unet/conv_in.weight"].shape == (320, 4, 3, 3)


def test_bad_files_are_what_they_say(factory: ModelFactory, tmp_path: Path) -> None:
    assert factory.zero_byte().stat().st_size == 0
    assert factory.lfs_pointer().read_text().startswith("version https://git-lfs.github.com/spec/v1")
    assert factory.html_page().read_text().startswith("<!DOCTYPE html>")
    assert not factory.dangling_symlink().exists()
    loop = factory.symlink_loop()
    assert loop.is_symlink()
    with pytest.raises(OSError):
        loop.stat()
    with factory.oversized_header().open("rb") as fh:
        assert struct.unpack("<Q", fh.read(8))[0] > 100_000_000
    canary = tmp_path / "CANARY"
    evil = factory.malicious_pickle(canary)
    assert b"system" in evil.read_bytes()
    assert not canary.exists()
