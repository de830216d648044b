"""`modeldex config`: show the settings in force and the config file path."""

from __future__ import annotations

import json
import os

import click

from modeldex.cli.common import user_errors
from modeldex.config import API_KEY_ENV, ENV_PREFIX, Settings, config_path, load_settings

REDACTED = "***"


@click.group()
def config() -> None:
    """Show the settings in force and where they come from."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@user_errors
def show(as_json: bool) -> None:
    """Print every setting with the value in force (flag > env > file > default). Secrets are redacted."""
    settings = load_settings()
    data = settings_for_display(settings)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    import tomli_w

    state = "" if settings.config_file and settings.config_file.is_file() else " (not found: defaults in use)"
    click.echo(f"# config file: {settings.config_file}{state}")
    env = sorted(name for name in os.environ if name.startswith(ENV_PREFIX) or name == API_KEY_ENV)
    if env:
        click.echo(f"# from the environment: {', '.join(env)}")
    click.echo(tomli_w.dumps(_drop_none(data)), nl=False)


def settings_for_display(settings: Settings) -> dict[str, object]:
    """The settings as plain JSON values, the default database URL filled in, the API key and DB password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    data: dict[str, object] = settings.model_dump(mode="json", exclude={"config_file"})
    try:
        data["db_url"] = make_url(settings.resolved_db_url).render_as_string(hide_password=True)
    except ArgumentError:
        data["db_url"] = settings.resolved_db_url  # not a URL at all: nothing to hide, and opening it will say so
    if data.get("civitai_api_key"):
        data["civitai_api_key"] = REDACTED
    return data


def _drop_none(data: dict[str, object]) -> dict[str, object]:
    """TOML has no null: unset settings are left out."""
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in data.items() if v is not None}


@config.command("path")
def path() -> None:
    """Print the config file path (`MODELDEX_CONFIG` or the platform default); it may not exist yet."""
    click.echo(str(config_path()))
