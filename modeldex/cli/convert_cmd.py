"""`modeldex convert`: turn a safe torch pickle into a safetensors file without running it."""

from __future__ import annotations

from pathlib import Path

import click

from modeldex.cli.common import echo_json_line, terminal_text, user_errors


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file or folder (default: FILE with a .safetensors suffix, beside it).",
)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@user_errors
def convert(file: Path, out: Path | None, force: bool, as_json: bool) -> None:
    """Turn FILE (.ckpt .pt .pth .bin) into a safetensors file without executing its pickle.

    A pickle that refers to code outside the allow-list is refused, and the globals it names are listed.
    The output is written to a temporary file beside it and renamed only when complete.
    """
    from modeldex.identify.convert import convert_to_safetensors

    result = convert_to_safetensors(file, out, overwrite=force)
    if as_json:
        echo_json_line(result.to_json())
        return
    noun = "tensor" if result.tensors == 1 else "tensors"
    click.echo(f"wrote {terminal_text(str(result.output))} ({result.tensors} {noun}, {_size(result.bytes_written)})")
    if result.wrapper:
        click.echo(f"  unwrapped: {result.wrapper}")
    kept = [name for name in result.metadata if name != "format"]
    if kept:
        click.echo(f"  metadata kept: {', '.join(kept)}")
    if result.skipped_keys:
        click.echo(f"  left out (not weights): {', '.join(result.skipped_keys)}")
    if result.dropped_values:
        click.echo(f"  left out (not representable as text): {', '.join(result.dropped_values)}")
    if result.materialised:
        click.echo(f"  written as plain tensors (were views/expansions): {len(result.materialised)}")


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} bytes"
