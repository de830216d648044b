"""The `modeldex` command: a click group whose sub-commands are imported only when they run.

Loading lazily keeps `modeldex --help` fast and free of torch, whatever a sub-command needs.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from modeldex import __version__

# name -> (module, attribute, one-line help). Help is duplicated here so `--help` imports no command module.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "identify": ("modeldex.cli.identify_cmd", "identify", "Tell what model files are, from their tensor keys."),
    "scan": ("modeldex.cli.scan_cmd", "scan", "Identify and hash files and record them in the index."),
    "config": ("modeldex.cli.config_cmd", "config", "Show the settings in force and where they come from."),
    "meta": ("modeldex.cli.meta_cmd", "meta", "Read generation parameters from images."),
    "convert": (
        "modeldex.cli.convert_cmd",
        "convert",
        "Turn a safe pickle into a safetensors file without running it.",
    ),
    "serve": ("modeldex.cli.serve_cmd", "serve", "Answer a CivitAI-compatible API from the local index, read-only."),
    "download": ("modeldex.cli.download_cmd", "download", "Download CivitAI files, verify them, sort them in."),
    "jobs": ("modeldex.cli.jobs_cmd", "jobs", "List, run, cancel or retry queued downloads."),
    "sort": ("modeldex.cli.sort_cmd", "sort", "Move identified files into a WebUI or ComfyUI library, undo-ably."),
}


class LazyGroup(click.Group):
    """A group that imports a sub-command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modeldex")
def cli() -> None:
    """modeldex: know, sort, download and reproduce Stable Diffusion model files."""


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="modeldex")
