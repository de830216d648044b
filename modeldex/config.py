"""Settings: command-line flag > environment > TOML config file > default.

Only the shell imports this module. The core packages receive plain values (paths, URLs, keys) as arguments.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from modeldex import paths
from modeldex.errors import ConfigError

CONFIG_ENV = "MODELDEX_CONFIG"
ENV_PREFIX = "MODELDEX_"
API_KEY_ENV = "CIVITAI_API_KEY"


class SortSettings(BaseModel):
    """Defaults for `modeldex sort` and for sorting finished downloads (`[sort]` in the config file)."""

    # A misspelt key would otherwise be dropped without a word and the default used instead.
    model_config = ConfigDict(extra="forbid")

    library: Path | None = None
    """The WebUI or ComfyUI folder that sorted files go into."""
    layout: Literal["a1111", "comfyui"] = "a1111"
    """Folder layout of the library."""
    by_base: bool = False
    """Put files into per-base sub-folders (`models/Lora/sdxl/`)."""
    lycoris_dir: bool = False
    """Send LyCORIS algos to `models/LyCORIS` in the A1111 layout."""

    @field_validator("library")
    @classmethod
    def _expand_library(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


class Settings(BaseSettings):
    """Every setting modeldex reads, with its source resolved."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    data_dir: Path = Field(default_factory=paths.default_data_dir)
    """Folder for the database and caches (`MODELDEX_DATA_DIR`)."""
    db_url: str | None = None
    """SQLAlchemy URL (`MODELDEX_DB_URL`); default: SQLite in the data folder."""
    civitai_url: str = "https://civitai.com"
    """CivitAI site root (`MODELDEX_CIVITAI_URL`): civitai.com, civitai.red, a mirror or `modeldex serve`."""
    civitai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("civitai_api_key", API_KEY_ENV, "MODELDEX_CIVITAI_API_KEY")
    )
    """CivitAI API key (`CIVITAI_API_KEY`); sent only as a Bearer header to CivitAI hosts."""
    requests_per_second: float = Field(default=2.0, gt=0)
    """Upper bound on CivitAI API requests per second."""
    download_concurrency: int = Field(default=2, ge=1)
    """How many downloads run at once."""
    hash_workers: int = Field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)), ge=1)
    """Processes that hash files in parallel."""
    sort: SortSettings = Field(default_factory=SortSettings)

    # The alias makes `MODELDEX_CONFIG` an ordinary environment source, so a `config_file=` flag beats it.
    config_file: Path | None = Field(default=None, exclude=True, validation_alias=AliasChoices(CONFIG_ENV))
    """The config file that was read (or would have been, when it does not exist)."""

    @field_validator("data_dir", "config_file")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def resolved_db_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data folder."""
        return self.db_url or paths.default_db_url(self.data_dir)


def config_path(explicit: Path | None = None) -> Path:
    """The config file in use: a `--config` flag, else `MODELDEX_CONFIG`, else the platform default."""
    if explicit is not None:
        return explicit.expanduser()
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else paths.default_config_file()


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML config file; a missing file is an empty one."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        # Earlier sources (flag, environment) are already merged here, keyed by field name or by alias.
        given = self.current_state.get(CONFIG_ENV) or self.current_state.get("config_file")
        path = config_path(Path(given) if given else None)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        if "config_file" in data:
            raise ConfigError(f"config file {path}: `config_file` cannot be set inside a config file")
        return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings; `config_file` and `overrides` come from command-line flags (None means not given).

    Nested settings are given as dicts (`sort={"layout": "comfyui"}`) and merge with the other sources key by key.
    """
    given = _drop_none(overrides)
    if config_file is not None:
        given["config_file"] = config_file
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, given)) from exc
    except SettingsError as exc:
        # Raised for an environment value that should be JSON (MODELDEX_SORT) and is not.
        found = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + (found.group(1).upper() if found else "...")
        raise ConfigError(
            f"environment variable {name} is not a JSON object; set one key at a time instead ({name}__KEY=value)"
        ) from exc
    settings.config_file = config_path(settings.config_file)
    return settings


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, Mapping) else v for k, v in values.items() if v is not None}


def _describe(exc: ValidationError, flags: Mapping[str, Any]) -> str:
    """One line for the first problem, naming the setting and where its bad value came from."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    where = ".".join(loc)
    origin = _origin(loc, flags)
    if first["type"] == "extra_forbidden":
        return f"unknown setting {where!r} {origin}"
    value = first.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    return f"invalid setting {where} {origin}: {first['msg']}{shown}"


def _origin(loc: list[str], flags: Mapping[str, Any]) -> str:
    if loc and loc[0] in flags:
        return "given on the command line"
    for depth in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:depth]).upper()
        if name in os.environ:
            return f"from environment variable {name}"
    if loc and loc[0] == "civitai_api_key" and API_KEY_ENV in os.environ:
        return f"from environment variable {API_KEY_ENV}"
    given = flags.get("config_file")
    return f"in config file {config_path(Path(given) if given else None)}"
