"""`modeldex config`: show the settings in force and the config file path."""

from __future__ import annotations

import json

import click

from modeldex.cli.common import user_errors
from modeldex.config import config_path, load_settings


@click.group()
def config() -> None:
    """Show the settings in force and where they come from."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@user_errors
def show(as_json: bool) -> None:
    """Print every setting with the value in force (flag > env > file > default). The API key is redacted."""
    settings = load_settings()
    data = settings.model_dump(mode="json", exclude={"config_file"})
    data["db_url"] = settings.resolved_db_url
    if data.get("civitai_api_key"):
        data["civitai_api_key"] = "***"
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    import tomli_w

    click.echo(f"# config file: {config_path()}")
    click.echo(tomli_w.dumps(_drop_none(data)), nl=False)


def _drop_none(data: dict[str, object]) -> dict[str, object]:
    """TOML has no null: unset settings are left out."""
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None}


@config.command("path")
def path() -> None:
    """Print the config file path (`MODELDEX_CONFIG` or the platform default)."""
    click.echo(str(config_path()))
