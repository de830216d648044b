"""Settings: command-line flag > environment > TOML config file > default.

Only the shell imports this module. The core packages receive plain values (paths, URLs, keys) as arguments.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from modeldex import paths
from modeldex.errors import ConfigError

CONFIG_ENV = "MODELDEX_CONFIG"


class SortSettings(BaseModel):
    """Defaults for `modeldex sort` and for sorting finished downloads."""

    library: Path | None = None
    """The WebUI or ComfyUI folder that sorted files go into."""
    layout: Literal["a1111", "comfyui"] = "a1111"
    """Folder layout of the library."""
    by_base: bool = False
    """Put files into per-base sub-folders (`models/Lora/sdxl/`)."""
    lycoris_dir: bool = False
    """Send LyCORIS algos to `models/LyCORIS` in the A1111 layout."""


class Settings(BaseSettings):
    """Every setting modeldex reads, with its source resolved."""

    model_config = SettingsConfigDict(env_prefix="MODELDEX_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default_factory=paths.default_data_dir)
    """Folder for the database and caches (`MODELDEX_DATA_DIR`)."""
    db_url: str | None = None
    """SQLAlchemy URL (`MODELDEX_DB_URL`); default: SQLite in the data folder."""
    civitai_url: str = "https://civitai.com"
    """CivitAI site root (`MODELDEX_CIVITAI_URL`): civitai.com, civitai.red, a mirror or `modeldex serve`."""
    civitai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("civitai_api_key", "CIVITAI_API_KEY", "MODELDEX_CIVITAI_API_KEY")
    )
    """CivitAI API key (`CIVITAI_API_KEY`); sent only as a Bearer header to CivitAI hosts."""
    requests_per_second: float = 2.0
    """Upper bound on CivitAI API requests per second."""
    download_concurrency: int = 2
    """How many downloads run at once."""
    hash_workers: int = Field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    """Processes that hash files in parallel."""
    sort: SortSettings = Field(default_factory=SortSettings)

    config_file: Path | None = Field(default=None, exclude=True)

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


def config_path() -> Path:
    """The config file in use: `MODELDEX_CONFIG` or the platform default."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else paths.default_config_file()


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML config file; a missing file is an empty one."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = config_path()
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
        return data


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings; `overrides` are command-line flags (None means not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
    settings.config_file = config_path()
    return settings
