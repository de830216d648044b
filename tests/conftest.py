"""Fixtures every test shares: user paths isolated in tmp folders, offline Hugging Face, the model file factory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from factory import ModelFactory
from hypothesis import settings

# CI replays a fixed set of examples so that a run can't fail on an input nobody has seen; local runs keep exploring
# (and store what they find in .hypothesis/), which is where new bugs are found and turned into regression tests.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def isolated_user_paths(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the config file and data folder at fresh tmp paths; no test reads or writes the real home."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("MODELDEX_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("CIVITAI_API_KEY", "MODELDEX_CIVITAI_API_KEY", "MODELDEX_DB_URL", "MODELDEX_CIVITAI_URL"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def factory(tmp_path: Path) -> ModelFactory:
    """Writes realistic model files (see tests/factory.py) into a folder of this test's tmp_path."""
    return ModelFactory(tmp_path / "models")
