"""The rules around the signatures: names only break shape ties, majority of keys, metadata, unsafe and bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from factory import ModelFactory

from modeldex.identify.identify import DIRECTORY_ERROR, identify_path
from modeldex.identify.readers import read_header


def test_sdxl_vae_is_told_apart_by_its_name_and_the_evidence_says_so(factory: ModelFactory) -> None:
    got = identify_path(factory.vae("sdxl", name="sdxl_vae.safetensors"))
    assert (got.kind, got.base) == ("vae", "sdxl")
    assert any("sdxl_vae.safetensors" in e and "file name" in e for e in got.evidence)


def test_the_same_vae_bytes_under_an_sd1_name_are_sd1(factory: ModelFactory) -> None:
    xl = factory.vae("sdxl", name="sdxl_vae.safetensors")
    plain = factory.vae("sdxl", name="kl-f8-anime2.safetensors")
    assert read_header(plain).tensors == read_header(xl).tensors
    got = identify_path(plain)
    assert (got.kind, got.base) == ("vae", "sd1")
    assert any("kl-f8-anime2.safetensors" in e for e in got.evidence)


@pytest.mark.parametrize("name", ["checkpoint.safetensors", "sdxl_vae.safetensors", "v1-5-pruned.ckpt.safetensors"])
def test_a_lora_is_a_lora_whatever_its_name(factory: ModelFactory, name: str) -> None:
    got = identify_path(factory.lora("sd1", name=name))
    assert (got.kind, got.base, got.algo) == ("lora", "sd1", "lora")
    assert not any("file name" in e for e in got.evidence)


def test_a_name_never_overrides_what_shapes_show(factory: ModelFactory) -> None:
    got = identify_path(factory.checkpoint("sd1", name="ponyDiffusionXL_lora_vae.safetensors"))
    assert (got.kind, got.base) == ("checkpoint", "sd1")


def test_merged_checkpoint_with_a_few_lora_keys_stays_a_checkpoint(factory: ModelFactory) -> None:
    spec = factory.checkpoint_spec("sd1")
    lora = factory.lora_spec("sd1")
    extra = dict(list(lora.items())[:60])
    got = identify_path(factory.safetensors("merged.safetensors", spec | extra))
    assert (got.kind, got.base, got.algo) == ("checkpoint", "sd1", None)


def test_a_lora_with_a_few_stray_keys_stays_a_lora(factory: ModelFactory) -> None:
    spec = factory.lora_spec("sdxl")
    stray = {"text_model.embeddings.position_ids": ((1, 77), "I64"), "emb.weight": ((4, 768), "F16")}
    got = identify_path(factory.safetensors("with-stray.safetensors", spec | stray))
    assert (got.kind, got.base, got.algo) == ("lora", "sdxl", "lora")


def _attn1_only(factory: ModelFactory) -> dict[str, tuple[tuple[int, ...], str]]:
    # Self-attention only: no layer whose width separates SD1 from SD2 (both UNets are 320/640/1280 wide).
    spec = factory.lora_spec("sd1", te=False)
    return {k: v for k, v in spec.items() if "_attn1_" in k}


def test_lora_base_comes_from_metadata_when_no_shape_decides(factory: ModelFactory) -> None:
    bare = identify_path(factory.safetensors("attn1.safetensors", _attn1_only(factory)))
    assert (bare.kind, bare.base) == ("lora", "unknown")
    meta = {"ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora"}
    got = identify_path(factory.safetensors("attn1-meta.safetensors", _attn1_only(factory), meta))
    assert (got.kind, got.base) == ("lora", "sd1")
    assert "ss_base_model_version=sd_v1" in got.evidence
    spec = identify_path(
        factory.safetensors(
            "attn1-spec.safetensors", _attn1_only(factory), {"modelspec.architecture": "stable-diffusion-v2-512/lora"}
        )
    )
    assert spec.base == "sd2"


def test_shapes_win_over_metadata_for_the_architecture(factory: ModelFactory) -> None:
    got = identify_path(
        factory.lora(
            "sdxl", metadata={"ss_base_model_version": "sd_v1", "modelspec.architecture": "stable-diffusion-v1/lora"}
        )
    )
    assert got.base == "sdxl"


def test_lycoris_metadata_is_cited_but_keys_decide_the_algo(factory: ModelFactory) -> None:
    got = identify_path(factory.lora("sd1", "loha"))
    assert got.algo == "loha" and got.civitai_type == "LoCon"
    assert "ss_network_args.algo=loha" in got.evidence
    # Metadata claiming LoCon on a file without any 3x3 convolution keys: the keys say plain LoRA.
    plain = factory.lora(
        "sd1", "lora", metadata={"ss_network_args": '{"algo": "locon"}'}, name="claims-locon.safetensors"
    )
    got = identify_path(plain)
    assert got.algo == "lora"
    assert "ss_network_args.algo=locon" in got.evidence


def test_dora_wins_over_the_underlying_algorithm(factory: ModelFactory) -> None:
    got = identify_path(factory.lora("sdxl", "dora"))
    assert (got.algo, got.civitai_type) == ("dora", "DoRA")
    assert any("dora_scale" in e for e in got.evidence)


def test_locon_needs_3x3_convolutions(factory: ModelFactory) -> None:
    got = identify_path(factory.lora("sd1", "locon"))
    assert got.algo == "locon"
    assert any(e.endswith(", 3, 3]") and "lora_down" in e for e in got.evidence)


@pytest.mark.parametrize("style", ["zip", "legacy", "raw"])
def test_malicious_pickles_are_flagged_and_never_run(factory: ModelFactory, tmp_path: Path, style: str) -> None:
    canary = tmp_path / "CANARY"
    got = identify_path(factory.malicious_pickle(canary, style=style))
    assert got.unsafe is True
    assert "posix.system" in got.unsafe_globals or "os.system" in got.unsafe_globals
    assert got.kind == "unknown" and got.format == "pickle" and got.error is None
    assert got.evidence and "not unpickled" in got.evidence[0]
    assert not canary.exists()


BAD_FILES = {
    "zero-byte": (lambda f: f.zero_byte(), "empty"),
    "truncated": (lambda f: f.truncated(), "truncated"),
    "random-bytes": (lambda f: f.random_bytes(), "not a model"),
    "oversized-header": (lambda f: f.oversized_header(), "100,000,000"),
    "lfs-pointer": (lambda f: f.lfs_pointer(), "git lfs pull"),
    "html-page": (lambda f: f.html_page(), "HTML"),
    "dangling-symlink": (lambda f: f.dangling_symlink(), "dangling symlink"),
    "symlink-loop": (lambda f: f.symlink_loop(), "symlink loop"),
}


@pytest.mark.parametrize("maker,fragment", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_files_become_unknown_records_with_an_error(factory: ModelFactory, maker, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = maker(factory)
    got = identify_path(path, display="as/typed.safetensors").to_json()
    assert got["path"] == "as/typed.safetensors"
    assert (got["kind"], got["base"], got["format"], got["civitai_type"]) == ("unknown", "unknown", "other", "Other")
    assert got["error"] and fragment.lower() in got["error"].lower()
    assert got["unsafe"] is False


def test_nonexistent_path_and_plain_folder(tmp_path: Path) -> None:
    missing = identify_path(tmp_path / "nope.safetensors")
    assert missing.kind == "unknown" and missing.error and "no such file" in missing.error
    (tmp_path / "folder").mkdir()
    folder = identify_path(tmp_path / "folder")
    assert folder.error == DIRECTORY_ERROR


def test_unreadable_file_is_reported(factory: ModelFactory) -> None:
    path = factory.lora("sd1")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user that permissions do not restrict (root)")
        got = identify_path(path)
        assert got.kind == "unknown" and got.error and "permission" in got.error
    finally:
        path.chmod(0o644)
