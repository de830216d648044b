"""Typed generation parameters, from an A1111 infotext or a CivitAI image `meta` object, and back to an infotext.

Every infotext key has a home: the settings reproduction needs are typed fields, every other key stays verbatim in
`extra`, and `to_infotext()` writes them all back, so parse -> write -> parse gives equal parameters. Values A1111
treats as "not set" (`Schedule type: Automatic`, `Hires sampler: Use same sampler`, a 0 sigma override, ...) are
the field defaults, and are not written back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from modeldex.errors import GenerationError
from modeldex.generator import infotext as it
from modeldex.generator.civitai_meta import split_civitai_meta
from modeldex.generator.prompt import ExtraNetwork, PromptSyntaxError, extract_extra_networks


class NoParametersError(GenerationError):
    """The image or record carries no generation parameters at all."""

    title = "no parameters"


@dataclass
class Resource:
    """A model an image was made with, as far as its metadata names it (CivitAI `resources` / `civitaiResources`)."""

    type: str
    name: str | None = None
    hash: str | None = None
    weight: float | None = None
    model_version_id: int | None = None
    air: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resource:
        """Read one entry, keeping unknown or unreadable fields in `extra`."""
        rest = dict(data)
        kind = rest.pop("type", None)
        resource = cls(type=str(kind) if kind is not None else "unknown")
        for key, attr in (("name", "name"), ("hash", "hash"), ("air", "air")):
            value = rest.pop(key, None)
            if isinstance(value, str):
                setattr(resource, attr, value)
            elif value is not None:
                resource.extra[key] = value
        weight = rest.pop("weight", None)
        resource.weight = _as_float(weight)
        if resource.weight is None and weight is not None:
            resource.extra["weight"] = weight
        version_id = rest.pop("modelVersionId", None)
        resource.model_version_id = _as_int(version_id)
        if resource.model_version_id is None and version_id is not None:
            resource.extra["modelVersionId"] = version_id
        resource.extra.update(rest)
        return resource

    def to_json(self) -> dict[str, Any]:
        """The entry in CivitAI's spelling."""
        out: dict[str, Any] = {"type": self.type}
        for key, value in (
            ("name", self.name),
            ("hash", self.hash),
            ("weight", self.weight),
            ("modelVersionId", self.model_version_id),
            ("air", self.air),
        ):
            if value is not None:
                out[key] = value
        out.update(self.extra)
        return out


# Infotext key -> (field, type). Order = the order to_infotext writes them in (A1111's create_infotext order).
_SCALARS: tuple[tuple[str, str, type], ...] = (
    ("Steps", "steps", int),
    ("Sampler", "sampler", str),
    ("Schedule type", "schedule_type", str),
    ("CFG scale", "cfg_scale", float),
    ("Seed", "seed", int),
    ("Model hash", "model_hash", str),
    ("Model", "model", str),
    ("VAE hash", "vae_hash", str),
    ("VAE", "vae", str),
    ("Variation seed", "variation_seed", int),
    ("Variation seed strength", "variation_seed_strength", float),
    ("Denoising strength", "denoising_strength", float),
    ("Clip skip", "clip_skip", int),
    ("ENSD", "ensd", int),
    ("RNG", "rng", str),
    ("Eta", "eta", float),
    ("Schedule max sigma", "schedule_max_sigma", float),
    ("Schedule min sigma", "schedule_min_sigma", float),
    ("Schedule rho", "schedule_rho", float),
    ("Hires upscale", "hires_upscale", float),
    ("Hires steps", "hires_steps", int),
    ("Hires upscaler", "hires_upscaler", str),
    ("Hires sampler", "hires_sampler", str),
    ("Hires schedule type", "hires_schedule_type", str),
    ("Hires CFG Scale", "hires_cfg_scale", float),
    ("Hires checkpoint", "hires_checkpoint", str),
    ("Hires prompt", "hires_prompt", str),
    ("Hires negative prompt", "hires_negative_prompt", str),
    ("Refiner", "refiner", str),
    ("Refiner switch at", "refiner_switch_at", float),
    ("Emphasis", "emphasis", str),
    ("Version", "version", str),
)
# `WxH` keys -> field holding (w, h).
_SIZES: tuple[tuple[str, str], ...] = (
    ("Seed resize from", "seed_resize_from"),
    ("Hires resize", "hires_resize"),
)
_FLAGS: tuple[tuple[str, str], ...] = (
    ("Pad conds", "pad_conds"),
    ("Pad conds v0", "pad_conds_v0"),
    ("Old prompt editing timelines", "old_prompt_editing_timelines"),
    ("Downcast alphas_cumprod", "downcast_alphas_cumprod"),
    ("Refiner switch by sampling steps", "refiner_switch_by_sampling_steps"),
)
# Values that mean "A1111's default": read as the field's default and not written back.
_UNSET_VALUES: dict[str, frozenset[str]] = {
    "Schedule type": frozenset({"Automatic"}),
    "Hires sampler": frozenset({"Use same sampler"}),
    "Hires schedule type": frozenset({"Use same scheduler"}),
    "Hires checkpoint": frozenset({"Use same checkpoint"}),
    "Hires prompt": frozenset({""}),
    "Hires negative prompt": frozenset({""}),
    "Schedule max sigma": frozenset({"0"}),
    "Schedule min sigma": frozenset({"0"}),
    "Schedule rho": frozenset({"0"}),
}
# Pairs A1111 reads as its defaults, to make a short parameter line long enough to be one.
_PADDING: tuple[tuple[str, str], ...] = (("Clip skip", "1"), ("RNG", "GPU"), ("Schedule type", "Automatic"))
_ZERO_IS_UNSET = frozenset({"Schedule max sigma", "Schedule min sigma", "Schedule rho"})


@dataclass
class GenerationParams:
    """What an image was generated with, in A1111's terms: each field is the infotext key of that name
    (`cfg_scale` is `CFG scale`, `hires_resize` is `Hires resize`, `ensd` is `ENSD`)."""

    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    sampler: str | None = None
    """`Sampler`: `Euler a`, `DPM++ 2M` (A1111 1.9+, with `schedule_type`) or combined `DPM++ 2M Karras` (older)."""
    schedule_type: str | None = None
    """`Schedule type`; None is A1111's `Automatic` (the sampler's own default)."""
    cfg_scale: float | None = None
    seed: int | None = None
    width: int | None = None
    """`Size` width; with hires fix this is the first pass."""
    height: int | None = None
    model: str | None = None
    model_hash: str | None = None
    vae: str | None = None
    vae_hash: str | None = None
    variation_seed: int | None = None
    variation_seed_strength: float | None = None
    seed_resize_from: tuple[int, int] | None = None
    denoising_strength: float | None = None
    clip_skip: int = 1
    ensd: int | None = None
    """`ENSD`: eta noise seed delta (ancestral and SDE samplers)."""
    rng: str = "GPU"
    """`RNG`: `GPU` (A1111's default), `CPU` or `NV`."""
    eta: float | None = None
    schedule_max_sigma: float | None = None
    schedule_min_sigma: float | None = None
    schedule_rho: float | None = None
    hires_upscale: float | None = None
    hires_resize: tuple[int, int] | None = None
    hires_steps: int | None = None
    hires_upscaler: str | None = None
    hires_sampler: str | None = None
    hires_schedule_type: str | None = None
    hires_cfg_scale: float | None = None
    hires_checkpoint: str | None = None
    hires_prompt: str | None = None
    hires_negative_prompt: str | None = None
    refiner: str | None = None
    refiner_switch_at: float | None = None
    emphasis: str = "Original"
    pad_conds: bool = False
    pad_conds_v0: bool = False
    old_prompt_editing_timelines: bool = False
    downcast_alphas_cumprod: bool = False
    refiner_switch_by_sampling_steps: bool = False
    version: str | None = None
    lora_hashes: dict[str, str] = field(default_factory=dict)
    """`Lora hashes`: LoRA alias -> short hash (first 12 hex digits of its AutoV3)."""
    ti_hashes: dict[str, str] = field(default_factory=dict)
    """`TI hashes`: embedding name -> short hash."""
    hashes: dict[str, str] = field(default_factory=dict)
    """`Hashes` (CivitAI): `model`, `vae`, `lora:<name>`, `embed:<name>` -> hash."""
    civitai_resources: list[Resource] = field(default_factory=list)
    """`Civitai resources` (images from CivitAI's generator) or the meta's `civitaiResources`."""
    resources: list[Resource] = field(default_factory=list)
    """CivitAI's own list derived from the image (meta `resources`); informational, not written to infotexts."""
    extra: dict[str, str] = field(default_factory=dict)
    """Every other infotext key, as written (ADetailer settings, Version-specific keys, ...)."""
    other: dict[str, Any] = field(default_factory=dict)
    """Fields of a CivitAI or ComfyUI record that are not infotext keys; never written to an infotext."""

    # -- reading ---------------------------------------------------------------------------------------------

    @classmethod
    def from_infotext(cls, text: str) -> GenerationParams:
        """Read an A1111 infotext (A1111's rules, plus CivitAI's JSON-valued `Hashes` and `Civitai resources`)."""
        fields_, json_values = it.parse_a1111_with_json(text)
        params = cls._from_a1111_fields(fields_, hypernet_in_prompt=True)
        params._apply_json(json_values)
        return params

    @classmethod
    def from_civitai_meta(cls, meta: Mapping[str, Any] | str | None) -> GenerationParams:
        """Read a CivitAI image `meta` object (either key spelling, numbers as numbers or strings).

        Raises `NoParametersError` for a null or empty meta, `GenerationError` for one that is not a JSON object.
        """
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except (ValueError, RecursionError) as exc:
                raise GenerationError(f"the image meta is not valid JSON ({exc})") from None
        if meta is None or meta == {}:
            raise NoParametersError("this image has no generation parameters (its meta is empty)")
        if not isinstance(meta, Mapping):
            raise GenerationError(f"the image meta should be a JSON object, not {type(meta).__name__}")
        a1111_fields, json_values, other = split_civitai_meta(meta)
        params = cls._from_a1111_fields(a1111_fields, hypernet_in_prompt=False)
        params._apply_json(json_values)
        entries = other.pop("resources", None)
        if isinstance(entries, list):
            params.resources = [Resource.from_json(e) for e in entries if isinstance(e, Mapping)]
        elif entries is not None:
            other["resources"] = entries
        params.other = other
        return params

    @classmethod
    def _from_a1111_fields(cls, source: Mapping[str, Any], *, hypernet_in_prompt: bool) -> GenerationParams:
        res = _join_split_sizes(dict(source))
        params = cls(prompt=str(res.pop("Prompt", "")), negative_prompt=str(res.pop("Negative prompt", "")))
        if hypernet_in_prompt and "Hypernet" in res:
            # A1111 has appended `<hypernet:name:strength>` to the prompt: the tag now carries both keys.
            res.pop("Hypernet")
            res.pop("Hypernet strength", None)
        # A1111 has turned the old first-pass size into Size and Hires resize.
        res.pop("First pass size-1", None)
        res.pop("First pass size-2", None)
        width, height = res.pop("Size-1", None), res.pop("Size-2", None)
        if width is not None and height is not None:
            params.width, params.height = _as_int(width), _as_int(height)
            if params.width is None or params.height is None:
                params.width = params.height = None
                res["Size"] = f"{width}x{height}"
        elif width is not None or height is not None:
            res["Size-1" if width is not None else "Size-2"] = width if width is not None else height
        for key, attr in _SIZES:
            size = _pop_size(res, key)
            if size is not None:
                setattr(params, attr, size)
        for key, attr, kind in _SCALARS:
            if key not in res:
                continue
            raw = res.pop(key)
            if str(raw) in _UNSET_VALUES.get(key, ()):
                continue
            value = _convert(raw, kind)
            if value is None:
                res[key] = raw  # unreadable: kept verbatim
            elif not (key in _ZERO_IS_UNSET and value == 0):
                setattr(params, attr, value)
        for key, attr in _FLAGS:
            if key in res:
                flag = _as_bool(res[key])
                if flag is not None:
                    setattr(params, attr, flag)
                    del res[key]
        for key, attr in (("Lora hashes", "lora_hashes"), ("TI hashes", "ti_hashes")):
            if key in res:
                table = parse_hash_list(str(res[key]))
                if table is not None:
                    setattr(params, attr, table)
                    del res[key]
        for key, value in res.items():
            if key in it.INJECTED_DEFAULTS and str(value) == str(it.INJECTED_DEFAULTS[key]):
                continue  # A1111's own default for a missing key (or written out as that default)
            params.extra[key] = str(value)
        return params

    def _apply_json(self, values: Mapping[str, Any]) -> None:
        hashes = values.get("Hashes")
        if isinstance(hashes, Mapping):
            self.hashes = {str(k): str(v) for k, v in hashes.items() if v is not None}
        elif hashes is not None:
            self.extra["Hashes"] = json.dumps(hashes, ensure_ascii=False)
        resources = values.get("Civitai resources", values.get("civitaiResources"))
        if isinstance(resources, list):
            self.civitai_resources = [Resource.from_json(e) for e in resources if isinstance(e, Mapping)]
        elif resources is not None:
            self.extra["Civitai resources"] = json.dumps(resources, ensure_ascii=False)
        for key, value in values.items():
            if key not in ("Hashes", "Civitai resources", "civitaiResources"):
                self.extra[key] = json.dumps(value, ensure_ascii=False)

    # -- writing ---------------------------------------------------------------------------------------------

    def infotext_fields(self) -> dict[str, object]:
        """The parameter line as an ordered mapping: A1111's key order, then `extra` (`to_infotext` adds CivitAI's
        JSON values and writes Version last)."""
        out: dict[str, object] = {}
        defaults = _FIELD_DEFAULTS
        implied = it.implied_by_version(self.version, self.prompt, self.sampler, self.refiner)
        for key, attr, _ in _SCALARS:
            value = getattr(self, attr)
            if value is not None and value != defaults[attr]:
                out[key] = _format_number(value) if isinstance(value, float) else value
            if key == "Seed" and self.width is not None and self.height is not None:
                out["Size"] = f"{self.width}x{self.height}"
        for key, attr in _SIZES:
            size = getattr(self, attr)
            if size is not None:
                out[key] = f"{size[0]}x{size[1]}"
        for key, attr in _FLAGS:
            if getattr(self, attr) and not implied.get(key, False):
                out[key] = "True"
        if self.lora_hashes:
            out["Lora hashes"] = format_hash_list(self.lora_hashes)
        if self.ti_hashes:
            out["TI hashes"] = format_hash_list(self.ti_hashes)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def to_infotext(self) -> str:
        """The A1111 infotext for these parameters; `from_infotext(p.to_infotext()) == p` (for infotext fields).

        Keys A1111 could not read back (not letters, digits, spaces, `-`, `/`) are left out.
        """
        fields_ = {k: v for k, v in self.infotext_fields().items() if it.is_param_key(k)}
        # CivitAI's extension writes its JSON just before Version, which A1111 writes last.
        version = fields_.pop("Version", None)
        tail: list[str] = []
        if self.hashes:
            tail.append(f"Hashes: {json.dumps(self.hashes, ensure_ascii=False)}")
        if self.civitai_resources:
            resources = [r.to_json() for r in self.civitai_resources]
            tail.append(f"Civitai resources: {json.dumps(resources, ensure_ascii=False, separators=(',', ':'))}")
        if version is not None:
            tail.append(f"Version: {it.quote(version)}")
        text = it.format_a1111(self.prompt, self.negative_prompt, fields_, tail)
        # A1111 reads a last line with fewer than 3 pairs as prompt text, and a prompt's last line with 3 or more
        # as parameters. Keys A1111 reads as its own defaults fill a short line up (changing nothing), or make a
        # line of their own under a prompt that would otherwise be misread.
        if not (fields_ or tail) and len(it.param_pairs(text.rpartition("\n")[2])) < 3:
            return text
        for key, value in _PADDING:
            if len(it.param_pairs(text.rpartition("\n")[2])) >= 3 and (fields_ or tail):
                break
            if key not in fields_:
                fields_[key] = value
                text = it.format_a1111(self.prompt, self.negative_prompt, fields_, tail)
        return text
        # A1111 reads a last line with fewer than 3 pairs as prompt text. Fill it up with keys it reads as its own
        # defaults (so nothing changes), or add such a line under a prompt whose last line would read as one.
        written = bool(fields_ or tail)
        for key, value in _PADDING:
            if len(fields_) + len(tail) >= 3:
                break
            fields_.setdefault(key, value)
        padded = it.format_a1111(self.prompt, self.negative_prompt, fields_, tail)
        if written or len(it.param_pairs(text.rpartition("\n")[2])) >= 3:
            return padded
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationParams:
        """The inverse of `to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for attr in ("seed_resize_from", "hires_resize"):
            if values.get(attr) is not None:
                values[attr] = tuple(values[attr])
        for attr in ("civitai_resources", "resources"):
            if attr in values:
                values[attr] = [
                    Resource(**r) if isinstance(r, Mapping) and "extra" in r else Resource.from_json(r)
                    for r in values[attr]
                ]
        return cls(**values)

    # -- derived ---------------------------------------------------------------------------------------------

    @property
    def final_size(self) -> tuple[int, int] | None:
        """The output size: Hires resize, else Size times Hires upscale, else Size."""
        if self.hires_resize is not None:
            return self.hires_resize
        if self.width is None or self.height is None:
            return None
        if self.hires_upscale is not None:
            return int(self.width * self.hires_upscale), int(self.height * self.hires_upscale)
        return self.width, self.height

    def all_resources(self) -> list[Resource]:
        """Every model the metadata names: checkpoint, VAE, LoRAs and hypernetworks (from the prompt's tags),
        embeddings (from TI hashes), with hashes from `Hashes`, `Lora hashes` and `TI hashes`, then the CivitAI
        lists. Best effort: a prompt whose tags cannot be read contributes none."""
        out: list[Resource] = []
        model_hash = self.model_hash or self.hashes.get("model")
        if self.model or model_hash:
            out.append(Resource("checkpoint", self.model, model_hash))
        if self.vae or self.vae_hash or "vae" in self.hashes:
            out.append(Resource("vae", self.vae, self.vae_hash or self.hashes.get("vae")))
        seen: set[tuple[str, str]] = set()
        for network in self._prompt_networks():
            kind = "lora" if network.kind in ("lora", "lyco") else network.kind
            if (kind, network.name) in seen:
                continue
            seen.add((kind, network.name))
            digest = self.lora_hashes.get(network.name) or self.hashes.get(f"{kind}:{network.name}")
            out.append(Resource(kind, network.name, digest, network.weight))
        for name, digest in self.lora_hashes.items():
            if ("lora", name) not in seen:
                seen.add(("lora", name))
                out.append(Resource("lora", name, digest))
        for name, digest in self.ti_hashes.items():
            seen.add(("embed", name))
            out.append(Resource("embed", name, digest))
        for key, digest in self.hashes.items():
            kind, _, name = key.partition(":")
            if name and (kind, name) not in seen:
                seen.add((kind, name))
                out.append(Resource(kind, name, digest))
        return out + list(self.civitai_resources) + list(self.resources)

    def _prompt_networks(self) -> list[ExtraNetwork]:
        networks: list[ExtraNetwork] = []
        for text in (self.prompt, self.hires_prompt or ""):
            try:
                networks.extend(extract_extra_networks(text)[1])
            except PromptSyntaxError:
                continue
        return networks


_FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(GenerationParams) if f.default is not MISSING}


def parse_hash_list(text: str) -> dict[str, str] | None:
    """`"name: hash, other: hash"` (A1111's `Lora hashes`, `TI hashes`) as a dict; None if it is not one."""
    table: dict[str, str] = {}
    for item in text.split(","):
        name, sep, digest = item.partition(":")
        name, digest = name.strip(), digest.strip()
        if not sep or not name or not digest:
            return None
        table[name] = digest
    return table


def format_hash_list(table: Mapping[str, str]) -> str:
    """The inverse of `parse_hash_list`."""
    return ", ".join(f"{name}: {digest}" for name, digest in table.items())


_SPLIT_KEYS = frozenset({"Size", "First pass size"} | {key for key, _ in _SIZES})


def _join_split_sizes(res: dict[str, Any]) -> dict[str, Any]:
    """Put back `K: WxH` for keys A1111 split into `K-1`/`K-2` that are no sizes to us (`Model: 512x512`)."""
    out: dict[str, Any] = {}
    for key, value in res.items():
        base = key[:-2]
        if (
            key.endswith(("-1", "-2"))
            and base not in _SPLIT_KEYS
            and base not in res
            and f"{base}-1" in res
            and f"{base}-2" in res
        ):
            if key.endswith("-1"):
                out[base] = f"{value}x{res[base + '-2']}"
            continue
        out[key] = value
    return out


def _pop_size(res: dict[str, Any], key: str) -> tuple[int, int] | None:
    """`K-1`/`K-2` as (w, h); 0x0 is A1111's "not set"."""
    first, second = res.get(f"{key}-1"), res.get(f"{key}-2")
    if first is None or second is None:
        return None
    w, h = _as_int(first), _as_int(second)
    if w is None or h is None:
        return None
    del res[f"{key}-1"], res[f"{key}-2"]
    return (w, h) if (w, h) != (0, 0) else None


def _convert(raw: object, kind: type) -> object | None:
    if kind is int:
        return _as_int(raw)
    if kind is float:
        return _as_float(raw)
    return str(raw)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            number = _as_float(value)
            return int(number) if number is not None and number.is_integer() else None
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text)


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
