"""Settings resolution (flag > environment > config file > default) and `modeldex config`."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from click.testing import CliRunner, Result

from modeldex import paths
from modeldex.cli.main import cli
from modeldex.config import Settings, config_path, load_settings
from modeldex.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting leaks in from the machine: every variable modeldex reads is unset, every home folder is tmp."""
    for name in list(os.environ):
        if name.startswith("MODELDEX_") or name == "CIVITAI_API_KEY":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in [("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"), ("XDG_CACHE_HOME", ".cache")]:
        monkeypatch.setenv(var, str(home / sub))
    return home


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    monkeypatch.setenv("MODELDEX_CONFIG", str(path))
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


# --- precedence -----------------------------------------------------------------------------------------------------

LAYERS = ["default", "file", "env", "flag"]


@pytest.mark.parametrize("top", LAYERS)
def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: str) -> None:
    values = {layer: tmp_path / layer for layer in LAYERS[1:]}
    flags: dict[str, Any] = {}
    if LAYERS.index(top) >= 1:
        write_config(tmp_path, monkeypatch, f'data_dir = "{values["file"]}"\n')
    if LAYERS.index(top) >= 2:
        monkeypatch.setenv("MODELDEX_DATA_DIR", str(values["env"]))
    if LAYERS.index(top) >= 3:
        flags["data_dir"] = values["flag"]
    expected = paths.default_data_dir() if top == "default" else values[top]
    assert load_settings(**flags).data_dir == expected


@pytest.mark.parametrize("top", LAYERS)
def test_db_url_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: str) -> None:
    urls = {layer: f"sqlite:///{tmp_path / layer}.db" for layer in LAYERS[1:]}
    flags: dict[str, Any] = {}
    if LAYERS.index(top) >= 1:
        write_config(tmp_path, monkeypatch, f'db_url = "{urls["file"]}"\n')
    if LAYERS.index(top) >= 2:
        monkeypatch.setenv("MODELDEX_DB_URL", urls["env"])
    if LAYERS.index(top) >= 3:
        flags["db_url"] = urls["flag"]
    settings = load_settings(**flags)
    if top == "default":
        assert settings.db_url is None
        assert settings.resolved_db_url == f"sqlite:///{settings.data_dir / 'modeldex.db'}"
    else:
        assert settings.resolved_db_url == urls[top]


@pytest.mark.parametrize("top", LAYERS)
def test_nested_sort_setting_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: str) -> None:
    # layout alternates so that each layer really changes the value; the library set in the file survives
    # every higher layer, because nested settings merge key by key.
    layouts = {"file": "comfyui", "env": "a1111", "flag": "comfyui"}
    flags: dict[str, Any] = {}
    if LAYERS.index(top) >= 1:
        write_config(tmp_path, monkeypatch, f'[sort]\nlayout = "{layouts["file"]}"\nlibrary = "{tmp_path / "lib"}"\n')
    if LAYERS.index(top) >= 2:
        monkeypatch.setenv("MODELDEX_SORT__LAYOUT", layouts["env"])
    if LAYERS.index(top) >= 3:
        flags["sort"] = {"layout": layouts["flag"], "by_base": None}  # None: flag not given
    sort = load_settings(**flags).sort
    assert sort.layout == ("a1111" if top == "default" else layouts[top])
    assert sort.library == (None if top == "default" else tmp_path / "lib")
    assert sort.by_base is False


def test_flag_none_means_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(tmp_path / "env"))
    assert load_settings(data_dir=None).data_dir == tmp_path / "env"


def test_env_nested_delimiter_and_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEX_SORT__BY_BASE", "true")
    monkeypatch.setenv("MODELDEX_DOWNLOAD_CONCURRENCY", "5")
    settings = load_settings()
    assert settings.sort.by_base is True
    assert settings.download_concurrency == 5


def test_home_folder_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    write_config(tmp_path, monkeypatch, 'data_dir = "~/models-index"\n[sort]\nlibrary = "~/webui"\n')
    settings = load_settings()
    assert settings.data_dir == clean_env / "models-index"
    assert settings.sort.library == clean_env / "webui"


# --- the config file ------------------------------------------------------------------------------------------------


def test_default_config_path_is_under_platformdirs_config_dir(clean_env: Path) -> None:
    expected = platformdirs.user_config_path("modeldex", appauthor=False) / "config.toml"
    assert config_path() == expected
    assert config_path().is_relative_to(clean_env / ".config")
    assert load_settings().config_file == expected


def test_modeldex_config_points_at_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, "download_concurrency = 7\n")
    settings = load_settings()
    assert settings.config_file == path
    assert settings.download_concurrency == 7
    assert config_path() == path


def test_config_file_flag_beats_modeldex_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, "download_concurrency = 7\n")
    other = tmp_path / "other.toml"
    other.write_text("download_concurrency = 3\n", encoding="utf-8")
    settings = load_settings(config_file=other)
    assert (settings.config_file, settings.download_concurrency) == (other, 3)


def test_missing_config_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEX_CONFIG", str(tmp_path / "absent.toml"))
    assert load_settings().model_dump(exclude={"config_file"}) == Settings().model_dump(exclude={"config_file"})


def test_default_database_is_sqlite_in_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modeldex.cli.common import open_database
    from modeldex.db.models import SyncState

    data_dir = tmp_path / "fresh" / "data"
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(data_dir))
    settings = load_settings()
    assert settings.resolved_db_url == f"sqlite:///{data_dir / 'modeldex.db'}"
    with open_database(settings)() as session:
        session.add(SyncState(key="probe"))
        session.commit()
    assert (data_dir / "modeldex.db").is_file()


# --- the API key ----------------------------------------------------------------------------------------------------


def test_civitai_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVITAI_API_KEY", "env-key")
    assert load_settings().civitai_api_key == "env-key"


def test_civitai_api_key_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, 'civitai_api_key = "file-key"\n')
    assert load_settings().civitai_api_key == "file-key"
    monkeypatch.setenv("CIVITAI_API_KEY", "env-key")
    assert load_settings().civitai_api_key == "env-key"


# --- bad input ------------------------------------------------------------------------------------------------------


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("modeldex: config:")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_invalid_toml_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, "data_dir = [unclosed\n")
    assert_one_line_error(invoke("config", "show"), str(path), "not valid TOML")


def test_config_file_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('data_dir = "/caf\xe9"\n'.encode("latin-1"))
    monkeypatch.setenv("MODELDEX_CONFIG", str(path))
    assert_one_line_error(invoke("config", "show"), "not valid TOML")


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ('requests_per_second = "fast"\n', ["requests_per_second", "config file", "'fast'"]),
        ("download_concurrency = 0\n", ["download_concurrency", "greater than or equal to 1"]),
        ('[sort]\nlayout = "invokeai"\n', ["sort.layout", "'a1111' or 'comfyui'"]),
        ("[sort]\nlibary = 1\n", ["unknown setting 'sort.libary'", "config file"]),
        ("data-dir = 1\n", ["unknown setting 'data-dir'"]),
        ('config_file = "/elsewhere.toml"\n', ["cannot be set inside a config file"]),
    ],
)
def test_invalid_values_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, fragments: list[str]
) -> None:
    path = write_config(tmp_path, monkeypatch, body)
    assert_one_line_error(invoke("config", "show"), str(path), *fragments)


@pytest.mark.parametrize(
    ("name", "value", "fragments"),
    [
        ("MODELDEX_REQUESTS_PER_SECOND", "-1", ["environment variable MODELDEX_REQUESTS_PER_SECOND", "greater than 0"]),
        ("MODELDEX_SORT__LAYOUT", "x", ["environment variable MODELDEX_SORT__LAYOUT"]),
        ("MODELDEX_SORT", "not json", ["MODELDEX_SORT is not a JSON object", "MODELDEX_SORT__KEY"]),
        ("MODELDEX_SORT__BY_BASE", "perhaps", ["sort.by_base", "MODELDEX_SORT__BY_BASE"]),
    ],
)
def test_invalid_environment_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragments: list[str]
) -> None:
    monkeypatch.setenv(name, value)
    assert_one_line_error(invoke("config", "show"), *fragments)


def test_invalid_flag_value_names_the_command_line() -> None:
    with pytest.raises(ConfigError, match="hash_workers given on the command line"):
        load_settings(hash_workers=0)


def test_error_message_keeps_brackets_and_stays_on_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A long path with [brackets]: Rich must neither eat them as markup nor wrap the line.
    folder = tmp_path / "[my configs]" / ("deep" * 30)
    folder.mkdir(parents=True)
    path = folder / "config.toml"
    path.write_text("[sort\n", encoding="utf-8")
    monkeypatch.setenv("MODELDEX_CONFIG", str(path))
    assert_one_line_error(invoke("config", "show"), str(path))


# --- modeldex config show / path ------------------------------------------------------------------------------------


def test_config_show_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, '[sort]\nlayout = "comfyui"\n')
    monkeypatch.setenv("MODELDEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CIVITAI_API_KEY", "s3cr3t-key")
    result = invoke("config", "show")
    assert result.exit_code == 0, result.output
    assert "s3cr3t-key" not in result.output
    assert f"# config file: {path}\n" in result.output
    assert "CIVITAI_API_KEY" in result.output and "MODELDEX_DATA_DIR" in result.output  # the sources in force
    shown = tomllib.loads(result.output)
    assert shown["data_dir"] == str(tmp_path / "data")
    assert shown["db_url"] == f"sqlite:///{tmp_path / 'data' / 'modeldex.db'}"
    assert shown["civitai_api_key"] == "***"
    assert shown["sort"]["layout"] == "comfyui"
    assert "library" not in shown["sort"]  # unset: TOML has no null


def test_config_show_says_when_the_file_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEX_CONFIG", str(tmp_path / "absent.toml"))
    result = invoke("config", "show")
    assert result.exit_code == 0
    assert "not found: defaults in use" in result.output.splitlines()[0]


def test_config_show_json_redacts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVITAI_API_KEY", "s3cr3t-key")
    monkeypatch.setenv("MODELDEX_DB_URL", "postgresql://indexer:hunter2@db.local/modeldex")
    result = invoke("config", "show", "--json")
    assert result.exit_code == 0, result.output
    assert "s3cr3t-key" not in result.output and "hunter2" not in result.output
    shown = json.loads(result.output)
    assert shown["civitai_api_key"] == "***"
    assert shown["db_url"] == "postgresql://indexer:***@db.local/modeldex"
    assert shown["sort"]["library"] is None
    assert set(shown) == set(Settings.model_fields) - {"config_file"}


def test_config_show_json_without_key_shows_null() -> None:
    result = invoke("config", "show", "--json")
    assert json.loads(result.output)["civitai_api_key"] is None


def test_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    result = invoke("config", "path")
    assert result.exit_code == 0
    assert result.output == f"{clean_env / '.config' / 'modeldex' / 'config.toml'}\n"
    monkeypatch.setenv("MODELDEX_CONFIG", str(tmp_path / "mine.toml"))
    assert invoke("config", "path").output == f"{tmp_path / 'mine.toml'}\n"
