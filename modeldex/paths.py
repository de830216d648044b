"""Where modeldex keeps its files: functions over platformdirs, each overridable.

The shell resolves these once and passes concrete paths to the core packages.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "modeldex"


def default_config_file() -> Path:
    """The TOML config file at the platform's config location."""
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "config.toml"


def default_data_dir() -> Path:
    """The folder that holds the database and caches."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def default_cache_dir() -> Path:
    """The folder for disposable caches (preview images, downloaded pages)."""
    return platformdirs.user_cache_path(APP_NAME, appauthor=False)


def default_state_dir() -> Path:
    """The folder for the daemon's pid file and logs."""
    return platformdirs.user_state_path(APP_NAME, appauthor=False)


def default_db_url(data_dir: Path) -> str:
    """The SQLite URL inside a data folder."""
    return f"sqlite:///{data_dir / 'modeldex.db'}"
