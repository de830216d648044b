"""`import modeldex`, every module's import and every `--help` load no torch, diffusers, transformers or Textual.

Import-linter checks the static import graph; these tests check what really lands in `sys.modules`, in fresh
interpreters, so a lazy import that leaks to module level (or a dependency that drags torch in) is caught.
Modules are discovered with pkgutil, so a new module is covered the day it is added.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import modeldex
from modeldex.cli.main import COMMANDS

HEAVY = ["torch", "torchsde", "diffusers", "transformers"]
UI = ["textual"]

# Runs only inside Alembic (it reads `alembic.context`, which exists only during a migration command).
NOT_IMPORTABLE_ALONE = {"modeldex.db.migrations.env"}

PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    forbidden, steps = json.loads(sys.argv[1])

    def loaded():
        return sorted({name.split(".")[0] for name in sys.modules} & set(forbidden))

    report = {"first_offender": None, "loaded": [], "errors": {}}
    for kind, target in steps:
        try:
            if kind == "import":
                importlib.import_module(target)
            else:
                from modeldex.cli.main import main
                try:
                    main(target)
                except SystemExit as exc:
                    if exc.code not in (0, None):
                        raise RuntimeError(f"exit status {exc.code}") from None
        except Exception as exc:  # reported to the test, which fails on it
            report["errors"][" ".join(target) if kind == "cli" else target] = f"{type(exc).__name__}: {exc}"
        if loaded() and report["first_offender"] is None:
            report["first_offender"] = " ".join(target) if kind == "cli" else target
            report["loaded"] = loaded()
    print(json.dumps(report))
    """
)


def probe(forbidden: list[str], steps: list[tuple[str, object]]) -> dict[str, object]:
    """Run the steps in a fresh interpreter and report the first one after which a forbidden package is loaded."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONSTARTUP", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([forbidden, steps])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def all_modules() -> list[str]:
    names = [modeldex.__name__]
    for info in pkgutil.walk_packages(modeldex.__path__, prefix="modeldex."):
        if info.name not in NOT_IMPORTABLE_ALONE:
            names.append(info.name)
    return sorted(names)


def is_ui(module: str) -> bool:
    return module == "modeldex.tui" or module.startswith("modeldex.tui.")


def test_discovery_finds_the_core_packages() -> None:
    found = all_modules()
    for expected in ["modeldex.identify.records", "modeldex.db.models", "modeldex.db.migrate", "modeldex.config"]:
        assert expected in found
    assert "modeldex.db.migrations.env" not in found


def test_import_modeldex_alone_is_light() -> None:
    report = probe(HEAVY + UI + ["sqlalchemy", "alembic", "httpx", "numpy"], [("import", "modeldex")])
    assert report["errors"] == {}
    assert report["first_offender"] is None, report


def test_every_module_outside_the_tui_imports_without_torch_or_textual() -> None:
    modules = [m for m in all_modules() if not is_ui(m)]
    report = probe(HEAVY + UI, [("import", m) for m in modules])
    assert report["errors"] == {}, f"modules that fail to import: {report['errors']}"
    assert report["first_offender"] is None, f"{report['first_offender']} loads {report['loaded']}"


def test_tui_modules_import_without_torch() -> None:
    modules = [m for m in all_modules() if is_ui(m)]
    report = probe(HEAVY, [("import", m) for m in modules])
    assert report["errors"] == {}, f"modules that fail to import: {report['errors']}"
    assert report["first_offender"] is None, f"{report['first_offender']} loads {report['loaded']}"


def test_help_of_modeldex_and_every_command_loads_no_torch_or_textual() -> None:
    steps: list[tuple[str, object]] = [("cli", ["--help"])]
    steps += [("cli", [name, "--help"]) for name in sorted(COMMANDS)]
    report = probe(HEAVY + UI, steps)
    assert report["errors"] == {}, f"commands whose --help fails: {report['errors']}"
    assert report["first_offender"] is None, f"`modeldex {report['first_offender']}` loads {report['loaded']}"


@pytest.mark.parametrize("args", [["--help"], ["config", "--help"]])
def test_python_dash_m_modeldex_runs_the_cli(args: list[str]) -> None:
    # -X importtime lists every module the real entry point imports, on stderr.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modeldex", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "modeldex" in imported
    assert not imported & set(HEAVY + UI)


def test_probe_names_the_first_module_that_loads_a_forbidden_package() -> None:
    # Guards the tests above against passing vacuously; a stdlib package stands in for torch (2 s to import).
    report = probe(["email", "http"], [("import", "json"), ("import", "email.message"), ("import", "http.client")])
    assert report["first_offender"] == "email.message"
    assert report["loaded"] == ["email"]
