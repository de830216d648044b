"""`modeldex meta IMAGE...`: read generation parameters from images (A1111, Forge, CivitAI, ComfyUI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modeldex.cli.common import echo_json_line, terminal_text, user_errors, utf8_text
from modeldex.errors import ModeldexError
from modeldex.generator.image_meta import ImageParameters, read_parameters
from modeldex.generator.params import GenerationParams


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image (JSON Lines).")
@user_errors
def meta(images: tuple[Path, ...], as_json: bool) -> None:
    """Read generation parameters from images (PNG, JPEG, WebP).

    Reads A1111/Forge infotexts (PNG `parameters`, JPEG/WebP EXIF UserComment) and ComfyUI graphs (PNG `prompt`
    and `workflow`). Every image gets a record, in order; with --json each is one line:
    {"path", "source", "a1111", "params"}, or {"path", "source": null, "error"} for an image without parameters
    or a file that cannot be read.

    Exit status: 0 when every image had parameters, 1 when at least one had none or could not be read (the
    others are still printed), 2 for a usage error.
    """
    missing = 0
    for i, path in enumerate(images):
        try:
            found = read_parameters(path)
        except ModeldexError as exc:
            missing += 1
            _emit_error(path, exc.message, as_json, first=i == 0)
            continue
        if as_json:
            echo_json_line(_record(found))
        else:
            _print_summary(found, first=i == 0)
    if missing:
        raise SystemExit(1)


def _record(found: ImageParameters) -> dict[str, Any]:
    return {
        "path": utf8_text(str(found.path)),
        "source": found.source,
        "a1111": found.a1111,
        "params": found.params.to_dict(),
    }


def _emit_error(path: Path, message: str, as_json: bool, *, first: bool) -> None:
    if as_json:
        echo_json_line({"path": utf8_text(str(path)), "source": None, "error": utf8_text(message)})
        return
    if not first:
        click.echo()
    click.echo(f"{terminal_text(str(path))}: {terminal_text(message)}")


def _print_summary(found: ImageParameters, *, first: bool) -> None:
    if not first:
        click.echo()
    click.echo(f"{terminal_text(str(found.path))}  [{found.source}]")
    for label, value in summary_lines(found.params):
        # Escaped: an infotext is text from a stranger's image, and may carry terminal escape sequences.
        click.echo(f"  {label + ':':<10} {terminal_text(value)}")


def summary_lines(p: GenerationParams) -> list[tuple[str, str]]:
    """The readable summary of a parameter set: (label, text) rows, empty ones left out."""
    rows: list[tuple[str, str]] = []
    if p.prompt:
        rows.append(("Prompt", _one_line(p.prompt)))
    if p.negative_prompt:
        rows.append(("Negative", _one_line(p.negative_prompt)))
    core = [
        ("Steps", p.steps),
        ("Sampler", p.sampler),
        ("Schedule", p.schedule_type),
        ("CFG", _number(p.cfg_scale)),
        ("Seed", p.seed),
        ("Size", f"{p.width}x{p.height}" if p.width is not None and p.height is not None else None),
        ("Clip skip", p.clip_skip if p.clip_skip != 1 else None),
        ("Denoise", _number(p.denoising_strength)),
        ("RNG", p.rng if p.rng != "GPU" else None),
        ("ENSD", p.ensd),
    ]
    settings = " | ".join(f"{name} {value}" for name, value in core if value is not None)
    if settings:
        rows.append(("Settings", settings))
    model_hash = p.model_hash or p.hashes.get("model")
    if p.model or model_hash:
        rows.append(("Model", f"{p.model or '?'}" + (f" [{model_hash}]" if model_hash else "")))
    if p.vae or p.vae_hash:
        rows.append(("VAE", f"{p.vae or '?'}" + (f" [{p.vae_hash}]" if p.vae_hash else "")))
    hires = _hires(p)
    if hires:
        rows.append(("Hires", hires))
    if p.variation_seed is not None:
        rows.append(("Variation", f"seed {p.variation_seed}, strength {_number(p.variation_seed_strength)}"))
    for resource in p.all_resources():
        if resource.type in ("checkpoint", "vae") and resource.model_version_id is None and resource.air is None:
            continue  # shown as Model / VAE above
        label = _RESOURCE_LABELS.get(resource.type, resource.type)
        parts = [resource.name or resource.air or f"version {resource.model_version_id}"]
        if resource.weight is not None:
            parts.append(_number(resource.weight) or "")
        if resource.hash:
            parts.append(f"[{resource.hash}]")
        rows.append((label, " ".join(parts)))
    if p.version:
        rows.append(("Version", p.version))
    for key, value in p.extra.items():
        rows.append(("Other", f"{key}: {_one_line(value)}"))
    comfy = p.other.get("comfyui")
    if isinstance(comfy, dict) and comfy.get("sampler_name"):
        rows.append(("ComfyUI", f"{comfy.get('sampler_name')} / {comfy.get('scheduler')}"))
    return rows


_RESOURCE_LABELS = {
    "lora": "LoRA",
    "lycoris": "LyCORIS",
    "embed": "Embedding",
    "hypernet": "Hypernet",
    "checkpoint": "Checkpoint",
    "model": "Checkpoint",
    "vae": "VAE",
}


def _hires(p: GenerationParams) -> str:
    if p.hires_upscale is None and p.hires_resize is None and p.hires_upscaler is None:
        return ""
    parts: list[str] = []
    if p.hires_resize is not None:
        parts.append(f"to {p.hires_resize[0]}x{p.hires_resize[1]}")
    elif p.hires_upscale is not None:
        size = p.final_size
        parts.append(f"x{_number(p.hires_upscale)}" + (f" to {size[0]}x{size[1]}" if size else ""))
    if p.hires_upscaler:
        parts.append(p.hires_upscaler)
    if p.hires_steps:
        parts.append(f"{p.hires_steps} steps")
    if p.hires_sampler:
        parts.append(p.hires_sampler)
    return ", ".join(parts)


def _number(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
