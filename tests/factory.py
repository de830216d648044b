"""ModelFactory: writes realistic model files of every kind for tests (the fixture `factory` in conftest.py).

Every method writes a REAL file that the real readers (and torch, for pickles) can open, with the keys and full
shapes of the real thing:
- safetensors: a real header with full shapes, the file then `os.truncate`d to its full size (sparse: no disk used);
- torch pickles: `torch.save` of tensors built with `torch.zeros(1).expand(*shape)`, so a 2 GB checkpoint's key and
  shape list lives in a few hundred kilobytes that `torch.load` reads back (zip format, or legacy with
  `_use_new_zipfile_serialization=False`), optionally inside a Lightning `{"state_dict": ...}` wrapper;
- GGUF: a small writer of our own (header, key/values, tensor infos, aligned sparse data).
torch is imported lazily, only by the methods that write pickles.

Key lists come from tests/factory_keys.py (reference key sets and architecture generators).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import factory_keys as fk
from factory_keys import Shape, Spec

DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
# ggml type id, elements per block, bytes per block.
GGML_TYPES = {
    "F32": (0, 1, 4),
    "F16": (1, 1, 2),
    "Q4_0": (2, 32, 18),
    "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176),
    "Q6_K": (14, 256, 210),
    "BF16": (30, 1, 2),
}

SDXL_MARKERS = ("v_pred", "ztsnr", "edm_vpred.sigma_max", "edm_vpred.sigma_min")
LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4c8c0d8f6a3a1f3e0c5b0a7e9d2b1c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3\n"
    "size 2132625894\n"
)
HTML_PAGE = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign in | Civitai</title></head>\n'
    '<body><h1>Please log in to download this model</h1><form action="/login"></form></body></html>\n'
)


@dataclass(frozen=True)
class T:
    """A tensor leaf inside a nested object written as a pickle."""

    shape: Shape
    dtype: str = "F16"


def spec_size(spec: Spec) -> int:
    return sum(math.prod(shape) * DTYPE_SIZES[dtype] for shape, dtype in spec.values())


def write_safetensors(path: Path, spec: Spec, metadata: dict[str, str] | None = None) -> Path:
    """A real safetensors file: full header, data region left sparse."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for key, (shape, dtype) in spec.items():
        size = math.prod(shape) * DTYPE_SIZES[dtype]
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
    os.truncate(path, 8 + len(blob) + offset)
    return path


def _torch_dtype(name: str) -> Any:
    import torch

    return {
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "F32": torch.float32,
        "F64": torch.float64,
        "I64": torch.int64,
        "I32": torch.int32,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }[name]


def to_torch(obj: Any, bases: dict[str, Any] | None = None) -> Any:
    """Replace `T` leaves (and Spec values) by expanded zero tensors sharing one storage per dtype."""
    import torch

    bases = {} if bases is None else bases
    if isinstance(obj, T):
        base = bases.get(obj.dtype)
        if base is None:
            base = bases[obj.dtype] = torch.zeros(1, dtype=_torch_dtype(obj.dtype))
        return base.reshape(()) if obj.shape == () else base.expand(*obj.shape)
    if isinstance(obj, dict):
        return {k: to_torch(v, bases) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_torch(v, bases) for v in obj]
    return obj


def spec_tree(spec: Spec) -> dict[str, T]:
    return {k: T(shape, dtype) for k, (shape, dtype) in spec.items()}


def write_torch(path: Path, obj: Any, legacy: bool = False) -> Path:
    """`torch.save` of `obj` (T leaves become tiny expanded tensors), zip or legacy format."""
    import torch

    torch.save(to_torch(obj), path, _use_new_zipfile_serialization=not legacy)
    return path


def _gguf_string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _gguf_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I", 7) + struct.pack("<?", value)
    if isinstance(value, int):
        return (
            struct.pack("<I", 4) + struct.pack("<I", value)
            if value >= 0
            else struct.pack("<I", 5) + struct.pack("<i", value)
        )
    if isinstance(value, float):
        return struct.pack("<I", 6) + struct.pack("<f", value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _gguf_string(value)
    if isinstance(value, list):
        assert all(isinstance(v, str) for v in value), "only string arrays are needed here"
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_gguf_string(v) for v in value)
    raise TypeError(value)


def write_gguf(path: Path, tensors: dict[str, tuple[Shape, str]], kvs: dict[str, Any], alignment: int = 32) -> Path:
    """A GGUF v3 file: `tensors` maps name -> (PyTorch-order shape, ggml type name); data left sparse."""
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, value in kvs.items():
        out += _gguf_string(key) + _gguf_value(value)
    offset = 0
    for name, (shape, qtype) in tensors.items():
        type_id, block, block_bytes = GGML_TYPES[qtype]
        dims = list(reversed(shape)) or [1]
        out += _gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", type_id, offset)
        offset += math.prod(shape) // block * block_bytes
        offset += -offset % alignment
    out += b"\0" * (-len(out) % alignment)
    with open(path, "wb") as fh:
        fh.write(out)
    os.truncate(path, len(out) + offset)
    return path


def gguf_types(spec: Spec, qtype: str) -> dict[str, tuple[Shape, str]]:
    """Quantise like city96's converter: 2-D+ weights whose rows fit the block size get `qtype`, the rest stay float."""
    block = GGML_TYPES[qtype][1]
    out: dict[str, tuple[Shape, str]] = {}
    for key, (shape, _) in spec.items():
        if len(shape) >= 2 and shape[-1] % block == 0 and math.prod(shape) >= 1024:
            out[key] = (shape, qtype)
        else:
            out[key] = (shape, "F32" if len(shape) <= 1 else "F16")
    return out


class _Payload:
    """Pickles to a call of `os.system`: a stand-in for a malicious checkpoint (never unpickled by modeldex)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


class ModelFactory:
    """Writes model files under `root`. Every method returns the path it wrote."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ generic writers

    def path(self, name: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def safetensors(self, name: str, spec: Spec, metadata: dict[str, str] | None = None) -> Path:
        return write_safetensors(self.path(name), spec, metadata)

    def torch(self, name: str, obj: Any, legacy: bool = False) -> Path:
        """`torch.save` of a nested object whose tensors are `T` leaves."""
        return write_torch(self.path(name), obj, legacy)

    def gguf(self, name: str, spec: Spec, kvs: dict[str, Any] | None = None, qtype: str = "Q4_K") -> Path:
        kv = {"general.architecture": "flux", "general.alignment": 32} | (kvs or {})
        return write_gguf(self.path(name), gguf_types(spec, qtype), kv)

    def write(
        self,
        name: str,
        spec: Spec,
        fmt: str = "safetensors",
        metadata: dict[str, str] | None = None,
        wrapper: str | None = None,
    ) -> Path:
        """Write `spec` as safetensors, a zip pickle (`pickle`) or a legacy pickle (`legacy`), optionally wrapped."""
        if fmt == "safetensors":
            return self.safetensors(name, spec, metadata)
        if fmt in ("pickle", "legacy"):
            tree: Any = spec_tree(spec)
            if wrapper == "state_dict":
                tree = {"state_dict": tree, "global_step": 470000, "epoch": 6, "pytorch-lightning_version": "1.4.2"}
            elif wrapper is not None:
                tree = {wrapper: tree}
            return self.torch(name, tree, legacy=fmt == "legacy")
        if fmt == "gguf":
            return self.gguf(name, spec)
        raise ValueError(fmt)

    @staticmethod
    def _ext(fmt: str) -> str:
        return {"safetensors": ".safetensors", "pickle": ".ckpt", "legacy": ".ckpt", "gguf": ".gguf"}[fmt]

    # ------------------------------------------------------------------ checkpoints and denoisers

    def checkpoint_spec(self, base: str, variant: str = "normal", vpred: str | None = None) -> Spec:
        """Keys of a full single-file checkpoint of `base` (see taxonomy.md bases)."""
        in_ch = {"normal": 4, "inpaint": 9, "pix2pix": 8, "depth": 5}.get(variant, 4)
        dm = "model.diffusion_model."
        if base == "sd1":
            spec = fk.keyset("sd1-ldm", "clip_l", "vae", "diffuser", dtype="F16")
        elif base == "sd2":
            spec = fk.ldm_unet(dm, **fk.SD2_UNET, in_ch=in_ch)  # type: ignore[arg-type]
            spec |= fk.ldm_vae("first_stage_model.") | fk.openclip_text(
                "cond_stage_model.model.", width=1024, layers=24
            )
            if variant == "depth":
                spec |= {
                    "depth_model.model.pretrained.act_postprocess3.0.project.0.weight": ((768, 1536), "F16"),
                    "depth_model.model.pretrained.act_postprocess3.0.project.0.bias": ((768,), "F16"),
                    "depth_model.model.scratch.output_conv.0.weight": ((128, 256, 3, 3), "F16"),
                }
        elif base == "sdxl":
            spec = fk.keyset("sdxl-sgm", "clip_l", "clip_g", "vae", "diffuser", optional=True, dtype="F16")
            spec = {k: v for k, v in spec.items() if k not in SDXL_MARKERS}
            if vpred == "v_pred":
                spec |= {"v_pred": ((0,), "I64"), "ztsnr": ((0,), "I64")}
            elif vpred == "edm":
                spec |= {"edm_vpred.sigma_max": ((), "F32"), "edm_vpred.sigma_min": ((), "F32")}
        elif base == "sdxl_refiner":
            spec = fk.ldm_unet(dm, **fk.REFINER_UNET)  # type: ignore[arg-type]
            spec |= fk.ldm_vae("first_stage_model.") | fk.openclip_text(
                "conditioner.embedders.0.model.", width=1280, layers=32
            )
        elif base in ("sd3", "sd35_medium", "sd35_large"):
            size = {"sd3": "medium", "sd35_medium": "35_medium", "sd35_large": "35_large"}[base]
            spec = fk.sd3(dm, size) | fk.keyset("sd3-comfyui", "vae", "clip_l", "clip_g", "t5xxl", dtype="F16")
        elif base == "flux1":
            spec = fk.flux1(dm, variant) | fk.keyset("flux-flux", "clip_l", "t5xxl", "vae", dtype="BF16")
        elif base == "flux2":
            spec = fk.flux2(dm) | fk.ldm_vae("vae.", z=32)
        elif base == "svd":
            spec = fk.ldm_unet(dm, **fk.SVD_UNET, in_ch=8, video=True)  # type: ignore[arg-type]
            spec |= fk.ldm_vae("first_stage_model.")
            spec |= {
                "conditioner.embedders.0.open_clip.model.visual.conv1.weight": ((1280, 3, 14, 14), "F16"),
                "conditioner.embedders.0.open_clip.model.visual.proj": ((1280, 1024), "F16"),
            }
        else:
            raise ValueError(f"no full checkpoint layout for {base}")
        if base in ("sd1", "sdxl") and in_ch != 4:
            spec[dm + "input_blocks.0.0.weight"] = ((320, in_ch, 3, 3), spec[dm + "input_blocks.0.0.weight"][1])
        return spec

    def checkpoint(
        self,
        base: str = "sd1",
        variant: str = "normal",
        *,
        vpred: str | None = None,
        fmt: str = "safetensors",
        name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Path:
        """A full checkpoint. `vpred`: None, "v_pred" (v_pred + ztsnr markers) or "edm" (edm_vpred.* markers)."""
        spec = self.checkpoint_spec(base, variant, vpred)
        name = name or f"{base}-{variant}{'-' + vpred if vpred else ''}{self._ext(fmt)}"
        return self.write(name, spec, fmt, metadata, wrapper="state_dict" if fmt != "safetensors" else None)

    def diffusion_model_spec(self, base: str, variant: str = "normal", layout: str = "ldm") -> Spec:
        """Keys of a bare denoiser (`layout` "ldm" = original names without prefix, "diffusers")."""
        in_ch = {"normal": 4, "inpaint": 9, "pix2pix": 8, "depth": 5}.get(variant, 4)
        if layout == "diffusers":
            if base == "sd1":
                spec = fk.rekey(fk.keyset("sd1-kohya", "diffuser", dtype="F16"), "unet.", "")
            elif base == "sdxl":
                spec = fk.keyset("sdxl-diffusers_unet_only")
            elif base == "flux1":
                return fk.flux1_diffusers(variant)
            else:
                raise ValueError(base)
            if in_ch != 4:
                spec["conv_in.weight"] = ((320, in_ch, 3, 3), spec["conv_in.weight"][1])
            return spec
        if base in ("sd1", "sd2", "sdxl", "sdxl_refiner", "svd"):
            ckpt = self.checkpoint_spec(base, variant)
            return fk.rekey(ckpt, "model.diffusion_model.", "")
        if base == "flux1":
            return fk.flux1("", variant)
        if base == "flux2":
            return fk.flux2("")
        if base in ("sd3", "sd35_medium", "sd35_large"):
            return fk.sd3("", {"sd3": "medium", "sd35_medium": "35_medium", "sd35_large": "35_large"}[base])
        if base == "pixart":
            return fk.pixart("")
        if base == "cascade":
            return fk.cascade(variant if variant in ("b", "c") else "c")
        raise ValueError(base)

    def diffusion_model(
        self,
        base: str = "flux1",
        variant: str = "dev",
        *,
        layout: str = "ldm",
        fmt: str = "safetensors",
        name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Path:
        spec = self.diffusion_model_spec(base, variant, layout)
        name = name or f"{base}-{variant}-{layout}-unet{self._ext(fmt)}"
        if fmt == "gguf":
            arch = {"flux1": "flux", "sdxl": "sdxl", "sd1": "sd1", "sd3": "sd3"}.get(base, base)
            return self.gguf(name, spec, {"general.architecture": arch})
        return self.write(name, spec, fmt, metadata)

    # ------------------------------------------------------------------ VAEs and encoders

    def vae(self, base: str = "sd1", *, layout: str = "ldm", fmt: str = "safetensors", name: str | None = None) -> Path:
        """A standalone VAE; SD1 and SDXL VAEs share every shape, so only `name` tells them apart."""
        z = {"sd1": 4, "sd2": 4, "sdxl": 4, "flux1": 16, "sd3": 16, "flux2": 32}[base]
        spec = fk.diffusers_vae(z) if layout == "diffusers" else fk.ldm_vae("", z)
        default = {
            "sd1": "vae-ft-mse-840000-ema-pruned",
            "sd2": "vae-ft-ema-560000",
            "sdxl": "sdxl_vae",
            "flux1": "ae",
            "sd3": "sd3_vae",
            "flux2": "flux2-vae",
        }[base]
        ext = ".pt" if fmt != "safetensors" else ".safetensors"
        return self.write(name or default + ext, spec, fmt, wrapper="state_dict" if fmt != "safetensors" else None)

    def text_encoder(self, which: str = "clip_l", *, fmt: str = "safetensors", name: str | None = None) -> Path:
        """CLIP-L, CLIP-G (bigG), CLIP-H (SD2) in Hugging Face layout, or T5-XXL encoder."""
        spec = fk.t5xxl("") if which == "t5xxl" else fk.hf_clip_text("", which)
        return self.write(name or f"{which}{self._ext(fmt) if fmt != 'pickle' else '.bin'}", spec, fmt)

    def clip_vision(self, which: str = "vit_h", *, name: str | None = None) -> Path:
        return self.safetensors(name or f"clip_vision_{which}.safetensors", fk.clip_vision(which))

    # ------------------------------------------------------------------ adapters

    def lora_spec(
        self, base: str = "sd1", algo: str = "lora", style: str = "kohya", te: bool = True, rank: int = 8
    ) -> Spec:
        """Keys of a LoRA/LyCORIS file. style: kohya (all algos), peft (sd1, sdxl, flux1), xlabs / aitoolkit (flux1)."""
        if base == "flux1":
            return self._flux_lora(style, rank)
        if style == "peft":
            spec: Spec = {}
            for module, shape in fk.peft_targets(base):
                if not te and not module.startswith("unet."):
                    continue
                spec[module + ".lora_A.weight"] = ((rank, shape[1]), "F16")
                spec[module + ".lora_B.weight"] = ((shape[0], rank), "F16")
                if algo == "dora":
                    spec[module + ".lora_magnitude_vector"] = ((shape[0],), "F16")
            return spec
        if algo == "norm":
            return fk.build_adapter(fk.lora_targets(base, norm=True, te=te), fk.norm_params)
        targets = fk.lora_targets(base, conv=algo == "locon", te=te)
        return fk.build_adapter(targets, lambda shape: fk.adapter_params(algo, shape, rank))

    def _flux_lora(self, style: str, rank: int) -> Spec:
        spec: Spec = {}
        if style == "kohya":
            targets = [(fk.kohya_name("lora_unet_", path), shape) for path, shape in fk.flux_lora_targets()]
            return fk.build_adapter(targets, lambda shape: fk.adapter_params("lora", shape, rank, "BF16"))
        if style == "peft":
            for module, shape in fk.flux_peft_targets():
                spec[module + ".lora_A.weight"] = ((rank, shape[1]), "BF16")
                spec[module + ".lora_B.weight"] = ((shape[0], rank), "BF16")
            return spec
        if style == "aitoolkit":
            for module, shape in fk.flux_lora_targets():
                path = "diffusion_model." + module
                spec[path + ".lora_A.weight"] = ((rank, shape[1]), "BF16")
                spec[path + ".lora_B.weight"] = ((shape[0], rank), "BF16")
            return spec
        if style == "xlabs":
            for i in range(19):
                for n, (out, inp) in (
                    ("qkv_lora1", (9216, 3072)),
                    ("proj_lora1", (3072, 3072)),
                    ("qkv_lora2", (9216, 3072)),
                    ("proj_lora2", (3072, 3072)),
                ):
                    spec[f"double_blocks.{i}.processor.{n}.down.weight"] = ((rank, inp), "BF16")
                    spec[f"double_blocks.{i}.processor.{n}.up.weight"] = ((out, rank), "BF16")
            return spec
        raise ValueError(style)

    def lora(
        self,
        base: str = "sd1",
        algo: str = "lora",
        *,
        style: str = "kohya",
        te: bool = True,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        fmt: str = "safetensors",
    ) -> Path:
        """A LoRA or LyCORIS adapter; kohya ones carry the `ss_network_*` metadata sd-scripts writes."""
        spec = self.lora_spec(base, algo, style, te)
        meta: dict[str, str] = {}
        if style == "kohya" and base != "flux1":
            if algo in ("lora", "dora"):
                meta = {"ss_network_module": "networks.lora", "ss_network_dim": "8", "ss_network_alpha": "8"}
            else:
                lyco_algo = {"oft": "diag-oft"}.get(algo, algo)
                meta = {
                    "ss_network_module": "lycoris.kohya",
                    "ss_network_args": json.dumps({"algo": lyco_algo, "conv_dim": "8"}),
                }
        meta |= metadata or {}
        default = f"{base}-{algo}-{style}{'.safetensors' if fmt == 'safetensors' else '.pt'}"
        return self.write(name or default, spec, fmt, meta or None)

    def embedding(
        self,
        base: str = "sd1",
        *,
        style: str = "safetensors",
        vectors: int = 4,
        negative: bool = False,
        name: str | None = None,
    ) -> Path:
        """A textual inversion: safetensors `emb_params` (SDXL: clip_l + clip_g), A1111 `.pt`, diffusers `learned_embeds.bin`."""
        width = {"sd1": 768, "sd2": 1024}.get(base, 768)
        if style == "safetensors":
            spec: Spec = (
                {"clip_g": ((vectors, 1280), "F16"), "clip_l": ((vectors, 768), "F16")}
                if base == "sdxl"
                else {"emb_params": ((vectors, width), "F32")}
            )
            meta = {"modelspec.is_negative_embedding": "true"} if negative else None
            return self.safetensors(name or f"{base}-embedding.safetensors", spec, meta)
        if style == "a1111":
            obj = {
                "string_to_token": {"*": 265},
                "string_to_param": {"*": T((vectors, width), "F32")},
                "name": "my-style",
                "step": 1500,
                "sd_checkpoint": "e1441589",
                "sd_checkpoint_name": "v1-5-pruned-emaonly",
            }
            return self.torch(name or f"{base}-embedding.pt", obj)
        if style == "diffusers":
            return self.torch(name or "learned_embeds.bin", {"<cat-toy>": T((width,), "F32")})
        raise ValueError(style)

    def hypernetwork(self, base: str = "sd1", *, name: str | None = None, legacy: bool = False) -> Path:
        """An A1111 hypernetwork `.pt`: int keys (attention widths) -> [key module, value module] state dicts."""
        sizes = {"sd1": (320, 640, 768, 1280), "sd2": (320, 640, 1024, 1280)}[base]
        obj: dict[Any, Any] = {}
        for size in sizes:
            module = {
                "linear.0.weight": T((size * 2, size), "F32"),
                "linear.0.bias": T((size * 2,), "F32"),
                "linear.1.weight": T((size, size * 2), "F32"),
                "linear.1.bias": T((size,), "F32"),
            }
            obj[size] = [module, dict(module)]
        obj |= {
            "step": 4000,
            "name": "my-hypernet",
            "layer_structure": [1, 2, 1],
            "activation_func": "linear",
            "is_layer_norm": False,
            "weight_initialization": "Normal",
            "use_dropout": False,
            "sd_checkpoint": "e1441589",
            "sd_checkpoint_name": "v1-5-pruned-emaonly",
        }
        return self.torch(name or f"{base}-hypernetwork.pt", obj, legacy=legacy)

    # ------------------------------------------------------------------ ControlNet family, IP-Adapter

    def controlnet_spec(
        self, base: str = "sd1", variant: str = "controlnet", layout: str = "ldm"
    ) -> tuple[Spec, dict[str, str]]:
        meta: dict[str, str] = {}
        if variant == "controlnet" and layout == "ldm":
            cfg = {"sd1": fk.SD1_UNET, "sd2": fk.SD2_UNET, "sdxl": fk.SDXL_UNET}[base]
            prefix = "control_model." if base == "sd1" else ""
            return fk.ldm_unet(prefix, **cfg, control=True), meta  # type: ignore[arg-type]
        if variant == "controlnet" and layout == "diffusers":
            return self._diffusers_controlnet(base), meta
        if variant == "t2i_adapter":
            return self._t2i_adapter(base), meta
        if variant == "lllite":
            return self._lllite(), {"lllite.cond_in_channels": "3", "lllite.cond_emb_dim": "32", "lllite.mlp_dim": "64"}
        if variant == "control_lora":
            return self._control_lora(), meta
        raise ValueError(variant)

    def _diffusers_controlnet(self, base: str) -> Spec:
        if base == "sdxl":
            unet = fk.keyset("sdxl-diffusers_unet_only")
            chans = [320] * 4 + [640] * 3 + [1280] * 2
        else:
            unet = fk.rekey(fk.keyset("sd1-kohya", "diffuser", dtype="F16"), "unet.", "")
            chans = [320] * 4 + [640] * 3 + [1280] * 5
        keep = ("conv_in.", "time_embedding.", "add_embedding.", "down_blocks.", "mid_block.")
        spec = {k: v for k, v in unet.items() if k.startswith(keep)}

        def conv(key: str, out: int, inp: int, k: int) -> None:
            spec[key + ".weight"] = ((out, inp, k, k), "F16")
            spec[key + ".bias"] = ((out,), "F16")

        conv("controlnet_cond_embedding.conv_in", 16, 3, 3)
        cond = [(16, 16), (32, 16), (32, 32), (96, 32), (96, 96), (256, 96)]
        for i, (o, c) in enumerate(cond):
            conv(f"controlnet_cond_embedding.blocks.{i}", o, c, 3)
        conv("controlnet_cond_embedding.conv_out", 320, 256, 3)
        # One zero conv per down-block output: conv_in, each resnet, each downsampler.
        for i, c in enumerate(chans):
            conv(f"controlnet_down_blocks.{i}", c, c, 1)
        conv("controlnet_mid_block", 1280, 1280, 1)
        return spec

    def _t2i_adapter(self, base: str) -> Spec:
        spec: Spec = {}
        chans = (320, 640, 1280, 1280)

        def conv(key: str, out: int, inp: int, k: int) -> None:
            spec[key + ".weight"] = ((out, inp, k, k), "F32")
            spec[key + ".bias"] = ((out,), "F32")

        if base == "sd1":  # TencentARC original layout (t2iadapter_*_sd14v1.pth: ksize=1, sk=True)
            conv("conv_in", 320, 192, 3)
            prev = 320
            for level, ch in enumerate(chans):
                for r in range(2):
                    p = f"body.{level * 2 + r}."
                    if r == 0 and ch != prev:
                        conv(p + "in_conv", ch, prev, 1)
                    conv(p + "block1", ch, ch, 1)
                    conv(p + "block2", ch, ch, 1)
                prev = ch
            return spec
        conv("adapter.conv_in", 320, 768, 3)  # diffusers `full_adapter_xl`
        prev = 320
        for level, ch in enumerate(chans):
            p = f"adapter.body.{level}."
            if ch != prev:
                conv(p + "in_conv", ch, prev, 1)
            for r in range(2):
                conv(p + f"resnets.{r}.block1", ch, ch, 3)
                conv(p + f"resnets.{r}.block2", ch, ch, 1)
            prev = ch
        return spec

    def _lllite(self) -> Spec:
        spec: Spec = {}
        for key, (shape, _) in fk.keyset("sdxl-kohya", "diffuser").items():
            path = key.removeprefix("unet.")
            if not (
                path.endswith(("attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight", "attn2.to_q.weight"))
                and "input_blocks.4." in path
            ):
                continue
            module = fk.kohya_name("lllite_unet_", path)
            inp = shape[1]
            spec[module + ".conditioning1.0.weight"] = ((16, 3, 4, 4), "F16")
            spec[module + ".conditioning1.0.bias"] = ((16,), "F16")
            spec[module + ".conditioning1.2.weight"] = ((32, 16, 2, 2), "F16")
            spec[module + ".down.0.weight"] = ((64, inp), "F16")
            spec[module + ".mid.0.weight"] = ((64, 96), "F16")
            spec[module + ".up.0.weight"] = ((inp, 64), "F16")
        return spec

    def _control_lora(self, rank: int = 128) -> Spec:
        full = fk.ldm_unet("", **fk.SDXL_UNET, control=True)  # type: ignore[arg-type]
        spec: Spec = {"lora_controlnet": ((), "F32")}
        for key, (shape, dtype) in full.items():
            lowrank = (
                key.endswith(".weight")
                and len(shape) >= 2
                and not key.startswith(("input_hint_block.", "zero_convs.", "middle_block_out."))
            )
            if lowrank:
                stem = key.removesuffix(".weight")
                r = min(rank, shape[0], shape[1])
                spec[stem + ".up"] = ((shape[0], r), dtype)
                spec[stem + ".down"] = ((r, math.prod(shape[1:])), dtype)
            else:
                spec[key] = (shape, dtype)
        return spec

    def controlnet(
        self,
        base: str = "sd1",
        variant: str = "controlnet",
        *,
        layout: str = "ldm",
        fmt: str = "safetensors",
        name: str | None = None,
    ) -> Path:
        """ControlNet (original ldm or diffusers layout), T2I-Adapter (sd1 original, sdxl diffusers), LLLite, Control-LoRA."""
        spec, meta = self.controlnet_spec(base, variant, layout)
        default = f"{base}-{variant}-{layout}{self._ext(fmt) if fmt == 'safetensors' else '.pth'}"
        return self.write(name or default, spec, fmt, meta or None)

    def ip_adapter(self, base: str = "sd1", *, fmt: str = "bin", plus: bool = False, name: str | None = None) -> Path:
        """IP-Adapter: `.bin` nests {"image_proj": ..., "ip_adapter": ...}; `.safetensors` flattens with dots."""
        nested = fk.ip_adapter(base, plus)
        stem = f"ip-adapter{'-plus' if plus else ''}_{base}"
        if fmt == "bin":
            return self.torch(name or stem + ".bin", {k: spec_tree(v) for k, v in nested.items()})
        flat = {f"{group}.{k}": v for group, spec in nested.items() for k, v in spec.items()}
        return self.safetensors(name or stem + ".safetensors", flat)

    # ------------------------------------------------------------------ other kinds

    def upscaler(self, arch: str = "esrgan_old", *, fmt: str = "pickle", name: str | None = None) -> Path:
        """ESRGAN old/new (Real-ESRGAN, wrapped in params_ema), SwinIR, Compact (SRVGGNet), SCUNet."""
        makers: dict[str, Callable[[], Spec]] = {
            "esrgan_old": fk.esrgan_old,
            "esrgan_new": fk.esrgan_new,
            "swinir": fk.swinir,
            "compact": fk.compact,
            "scunet": fk.scunet,
        }
        spec = makers[arch]()
        wrapper = "params_ema" if arch in ("esrgan_new", "compact", "swinir") else None
        if fmt == "safetensors":
            return self.safetensors(name or f"4x_{arch}.safetensors", spec)
        return self.write(name or f"4x_{arch}.pth", spec, fmt, wrapper=wrapper)

    def motion_module(self, version: str = "v3", *, fmt: str = "pickle", name: str | None = None) -> Path:
        """An AnimateDiff motion module: v1, v2, v3 (SD1) or sdxl (beta)."""
        spec = fk.motion_module(version)
        default = f"mm_{'sdxl' if version == 'sdxl' else 'sd15'}_{version}{'.ckpt' if fmt != 'safetensors' else '.safetensors'}"
        return self.write(name or default, spec, fmt)

    def aesthetic_gradient(self, *, name: str | None = None) -> Path:
        """A bare `[1, 768]` tensor saved on its own (mean CLIP ViT-L image embedding)."""
        return self.torch(name or "aivazovsky.pt", T((1, 768), "F32"))

    def gguf_model(self, which: str = "flux1", *, qtype: str = "Q4_K", name: str | None = None) -> Path:
        """A quantised GGUF: a Flux.1 dev transformer, an SDXL UNet, or a T5-XXL encoder with llama.cpp names."""
        if which == "t5xxl":
            spec: Spec = {"token_embd.weight": ((32128, 4096), "F16"), "enc.output_norm.weight": ((4096,), "F32")}
            spec["enc.blk.0.attn_rel_b.weight"] = ((32, 64), "F16")
            for i in range(24):
                p = f"enc.blk.{i}."
                for n in ("attn_q", "attn_k", "attn_v", "attn_o"):
                    spec[p + n + ".weight"] = ((4096, 4096), "F16")
                spec[p + "attn_norm.weight"] = ((4096,), "F32")
                spec[p + "ffn_gate.weight"] = ((10240, 4096), "F16")
                spec[p + "ffn_up.weight"] = ((10240, 4096), "F16")
                spec[p + "ffn_down.weight"] = ((4096, 10240), "F16")
                spec[p + "ffn_norm.weight"] = ((4096,), "F32")
            return self.gguf(
                name or f"t5-v1_1-xxl-encoder-{qtype}.gguf", spec, {"general.architecture": "t5encoder"}, qtype
            )
        if which == "sdxl":
            return self.gguf(
                name or f"sdxl-unet-{qtype}.gguf",
                self.diffusion_model_spec("sdxl"),
                {"general.architecture": "sdxl"},
                qtype,
            )
        return self.gguf(
            name or f"flux1-dev-{qtype}.gguf", fk.flux1("", "dev"), {"general.architecture": "flux"}, qtype
        )

    # ------------------------------------------------------------------ diffusers folders

    def diffusers_pipeline(self, base: str = "sd1", *, name: str | None = None, vpred: bool = False) -> Path:
        """A diffusers pipeline folder: model_index.json plus one folder per component (config + weights)."""
        folder = self.path(name or f"{base}-diffusers")
        folder.mkdir(exist_ok=True)
        if base == "sd1":
            parts = {
                "unet": (
                    "UNet2DConditionModel",
                    self.diffusion_model_spec("sd1", layout="diffusers"),
                    {"in_channels": 4, "cross_attention_dim": 768},
                ),
                "vae": ("AutoencoderKL", fk.diffusers_vae(4), {"latent_channels": 4}),
                "text_encoder": ("CLIPTextModel", fk.hf_clip_text("", "clip_l"), {"hidden_size": 768}),
            }
            pipeline = "StableDiffusionPipeline"
        elif base == "sdxl":
            parts = {
                "unet": (
                    "UNet2DConditionModel",
                    self.diffusion_model_spec("sdxl", layout="diffusers"),
                    {"in_channels": 4, "cross_attention_dim": 2048},
                ),
                "vae": ("AutoencoderKL", fk.diffusers_vae(4), {"latent_channels": 4}),
                "text_encoder": ("CLIPTextModel", fk.hf_clip_text("", "clip_l"), {"hidden_size": 768}),
                "text_encoder_2": ("CLIPTextModelWithProjection", fk.hf_clip_text("", "clip_g"), {"hidden_size": 1280}),
            }
            pipeline = "StableDiffusionXLPipeline"
        elif base == "flux1":
            parts = {
                "transformer": (
                    "FluxTransformer2DModel",
                    fk.flux1_diffusers("dev"),
                    {"guidance_embeds": True, "in_channels": 64},
                ),
                "vae": ("AutoencoderKL", fk.diffusers_vae(16), {"latent_channels": 16}),
                "text_encoder": ("CLIPTextModel", fk.hf_clip_text("", "clip_l"), {"hidden_size": 768}),
                "text_encoder_2": ("T5EncoderModel", fk.t5xxl(""), {"d_model": 4096}),
            }
            pipeline = "FluxPipeline"
        else:
            raise ValueError(base)
        index: dict[str, Any] = {"_class_name": pipeline, "_diffusers_version": "0.30.0"}
        for component, (cls, spec, config) in parts.items():
            sub = folder / component
            sub.mkdir(exist_ok=True)
            (sub / "config.json").write_text(json.dumps({"_class_name": cls, **config}), encoding="utf-8")
            library = "transformers" if cls.startswith(("CLIP", "T5")) else "diffusers"
            weights = "model.safetensors" if library == "transformers" else "diffusion_pytorch_model.safetensors"
            write_safetensors(sub / weights, spec)
            index[component] = [library, cls]
        sched = folder / "scheduler"
        sched.mkdir(exist_ok=True)
        if base == "flux1":  # flow matching: no epsilon/v prediction type
            scheduler: dict[str, Any] = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0}
        else:
            scheduler = {
                "_class_name": "EulerDiscreteScheduler",
                "prediction_type": "v_prediction" if vpred else "epsilon",
            }
        (sched / "scheduler_config.json").write_text(json.dumps(scheduler), encoding="utf-8")
        index["scheduler"] = ["diffusers", scheduler["_class_name"]]
        tok = folder / "tokenizer"
        tok.mkdir(exist_ok=True)
        (tok / "vocab.json").write_text("{}", encoding="utf-8")
        index["tokenizer"] = ["transformers", "CLIPTokenizer"]
        (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
        return folder

    def diffusers_component(self, kind: str = "unet", *, name: str | None = None) -> Path:
        """One diffusers model folder (config.json beside its weights): a UNet, a VAE or a ControlNet."""
        folder = self.path(name or f"{kind}-folder")
        folder.mkdir(exist_ok=True)
        spec, cls = {
            "unet": (self.diffusion_model_spec("sdxl", layout="diffusers"), "UNet2DConditionModel"),
            "vae": (fk.diffusers_vae(4), "AutoencoderKL"),
            "controlnet": (self._diffusers_controlnet("sd1"), "ControlNetModel"),
        }[kind]
        (folder / "config.json").write_text(json.dumps({"_class_name": cls}), encoding="utf-8")
        write_safetensors(folder / "diffusion_pytorch_model.safetensors", spec)
        return folder

    # ------------------------------------------------------------------ bad and hostile files

    def zero_byte(self, name: str = "empty.safetensors") -> Path:
        path = self.path(name)
        path.write_bytes(b"")
        return path

    def truncated(self, name: str = "truncated.safetensors") -> Path:
        """A safetensors header that promises more data than the file holds (an interrupted download)."""
        path = self.checkpoint("sd1", name=name)
        with open(path, "r+b") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
        os.truncate(path, 8 + length + 1000)
        return path

    def random_bytes(self, name: str = "random.safetensors", size: int = 4096, seed: int = 1) -> Path:
        import random

        path = self.path(name)
        path.write_bytes(random.Random(seed).randbytes(size))
        return path

    def oversized_header(self, name: str = "oversized.safetensors") -> Path:
        """A safetensors length prefix of 150 MB (over the 100 MB limit), the file long enough to hold it."""
        path = self.path(name)
        length = 150_000_000
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", length) + b'{"a":')
        os.truncate(path, 8 + length + 16)
        return path

    def lfs_pointer(self, name: str = "model.safetensors") -> Path:
        path = self.path(name)
        path.write_text(LFS_POINTER, encoding="ascii")
        return path

    def html_page(self, name: str = "download.safetensors") -> Path:
        path = self.path(name)
        path.write_text(HTML_PAGE, encoding="utf-8")
        return path

    def dangling_symlink(self, name: str = "dangling.safetensors") -> Path:
        path = self.path(name)
        path.symlink_to(self.root / "does-not-exist.safetensors")
        return path

    def symlink_loop(self, name: str = "loop-a.safetensors") -> Path:
        a = self.path(name)
        b = self.path("loop-b-" + name)
        a.symlink_to(b)
        b.symlink_to(a)
        return a

    def malicious_pickle(self, canary: Path, *, style: str = "zip", name: str | None = None) -> Path:
        """A checkpoint whose unpickling would run `touch CANARY`: zip (torch.save), legacy, or a raw `.pkl`."""
        payload = _Payload(f"touch {shlex.quote(str(canary))}")
        if style == "raw":
            import pickle

            path = self.path(name or "evil.pkl")
            path.write_bytes(pickle.dumps({"weights": [1, 2, 3], "payload": payload}, protocol=2))
            return path
        import torch

        obj = {
            "state_dict": to_torch(
                spec_tree({"model.diffusion_model.input_blocks.0.0.weight": ((320, 4, 3, 3), "F16")})
            ),
            "payload": payload,
        }
        path = self.path(name or f"evil-{style}.ckpt")
        torch.save(obj, path, _use_new_zipfile_serialization=style != "legacy")
        return path
