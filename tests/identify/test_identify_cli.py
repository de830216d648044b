"""`modeldex identify`: JSON Lines contract, the human table, exit codes, recursion order, folders, odd names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from factory import ModelFactory

from modeldex.cli.main import cli
from modeldex.identify.identify import iter_targets

FIELDS = [
    "path", "kind", "base", "variant", "prediction", "algo", "format", "unsafe", "unsafe_globals", "error",
    "civitai_type", "evidence",
]  # fmt: skip


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["identify", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def library(factory: ModelFactory) -> Path:
    """A small download folder: models, a nested folder, a diffusers pipeline and junk."""
    factory.checkpoint("sdxl", name="b-model.safetensors")
    factory.lora("sd1", "loha", name="a-style.safetensors")
    factory.vae("sdxl", name="sub/sdxl_vae.safetensors")
    factory.embedding("sd1", name="sub/deeper/neg.safetensors", negative=True)
    factory.diffusers_pipeline("sd1", name="sub/pipeline")
    factory.lfs_pointer("c-pointer.safetensors")
    (factory.root / ".hidden-notes.txt").write_text("not a model\n", encoding="utf-8")
    return factory.root


def test_json_lines_have_the_contract_fields_in_order(factory: ModelFactory) -> None:
    path = factory.lora("sdxl", "lokr")
    code, out, _ = run("--json", str(path))
    assert code == 0
    (rec,) = records(out)
    assert list(rec) == FIELDS
    assert rec["path"] == str(path)
    assert (rec["kind"], rec["base"], rec["algo"], rec["civitai_type"]) == ("lora", "sdxl", "lokr", "LoCon")


def test_paths_keep_the_order_given_and_the_spelling_given(
    factory: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.vae("sd1", name="z.safetensors")
    factory.checkpoint("sd1", name="a.safetensors")
    monkeypatch.chdir(factory.root)
    code, out, _ = run("--json", "z.safetensors", "./a.safetensors", "missing.ckpt")
    assert code == 0
    got = records(out)
    assert [r["path"] for r in got] == ["z.safetensors", "./a.safetensors", "missing.ckpt"]
    assert [r["kind"] for r in got] == ["vae", "checkpoint", "unknown"]
    assert got[2]["error"]


def test_recursive_lists_each_folder_in_sorted_path_order(library: Path) -> None:
    code, out, _ = run("--json", "--recursive", str(library))
    assert code == 0
    got = records(out)
    rel = [str(Path(str(r["path"])).relative_to(library)) for r in got]
    assert rel == [
        ".hidden-notes.txt",
        "a-style.safetensors",
        "b-model.safetensors",
        "c-pointer.safetensors",
        "sub/deeper/neg.safetensors",
        "sub/pipeline",
        "sub/sdxl_vae.safetensors",
    ]
    kinds = {p: r["kind"] for p, r in zip(rel, got, strict=True)}
    assert kinds["sub/pipeline"] == "checkpoint"  # the diffusers folder is one record, not descended into
    assert kinds["a-style.safetensors"] == "lora" and kinds["sub/deeper/neg.safetensors"] == "embedding"
    assert kinds[".hidden-notes.txt"] == "unknown"
    by_path = {p: r for p, r in zip(rel, got, strict=True)}
    assert by_path["c-pointer.safetensors"]["error"] and "lfs" in str(by_path["c-pointer.safetensors"]["error"]).lower()
    assert by_path["sub/pipeline"]["format"] == "diffusers"


def test_recursive_paths_keep_the_folder_spelling(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(library.parent)
    code, out, _ = run("--json", "-r", f"./{library.name}/sub/")
    assert code == 0
    assert [r["path"] for r in records(out)] == [
        f"./{library.name}/sub/deeper/neg.safetensors",
        f"./{library.name}/sub/pipeline",
        f"./{library.name}/sub/sdxl_vae.safetensors",
    ]


def test_a_folder_without_recursive_is_one_error_record(library: Path) -> None:
    code, out, _ = run("--json", str(library))
    assert code == 0
    (rec,) = records(out)
    assert rec["kind"] == "unknown" and rec["error"] == "is a directory (use --recursive)"


def test_a_diffusers_folder_is_identified_without_recursive(factory: ModelFactory) -> None:
    folder = factory.diffusers_pipeline("sdxl")
    code, out, _ = run("--json", str(folder))
    (rec,) = records(out)
    assert (code, rec["kind"], rec["base"], rec["format"]) == (0, "checkpoint", "sdxl", "diffusers")


def test_human_table(factory: ModelFactory, tmp_path: Path) -> None:
    good = factory.lora("sd1", "loha", name="style.safetensors")
    evil = factory.malicious_pickle(tmp_path / "CANARY", name="evil.ckpt")
    empty = factory.zero_byte()
    code, out, _ = run(str(good), str(evil), str(empty))
    assert code == 0
    flat = " ".join(out.split())
    for header in ("path", "kind", "base", "variant", "algo", "format", "problem"):
        assert header in out
    assert "lora" in out and "loha" in out and "safetensors" in out
    assert "UNSAFE:" in out and "system" in out
    assert "empty" in flat
    assert "3 paths:" in flat and "1 unsafe" in flat and "1 unreadable" in flat
    assert not (tmp_path / "CANARY").exists()


@pytest.mark.parametrize("args", [[], ["--no-such-option", "x"]], ids=["no-paths", "unknown-option"])
def test_usage_errors_exit_2(args: list[str]) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert "Usage" in err or "Error" in err


def test_every_bad_file_is_a_record_and_the_exit_status_stays_0(factory: ModelFactory, tmp_path: Path) -> None:
    paths = [
        factory.zero_byte(),
        factory.truncated(),
        factory.random_bytes(),
        factory.oversized_header(),
        factory.lfs_pointer(),
        factory.html_page(),
        factory.dangling_symlink(),
        factory.symlink_loop(),
        factory.malicious_pickle(tmp_path / "CANARY"),
        tmp_path / "does-not-exist.safetensors",
    ]
    code, out, _ = run("--json", *map(str, paths))
    assert code == 0
    got = records(out)
    assert [r["path"] for r in got] == [str(p) for p in paths]
    assert all(r["kind"] == "unknown" for r in got)
    assert all(r["error"] for r in got[:8] + got[9:])
    assert got[8]["unsafe"] is True and got[8]["error"] is None
    assert not (tmp_path / "CANARY").exists()


def test_unicode_names(factory: ModelFactory) -> None:
    names = ["ünïcødé 名前 🎨.safetensors", "スタイル (v2) [final].safetensors", "ملف نموذج.safetensors"]
    paths = [factory.lora("sd1", name=n) for n in names]
    code, out, _ = run("--json", *map(str, paths))
    assert code == 0
    assert [r["path"] for r in records(out)] == [str(p) for p in paths]
    code, out, _ = run(*map(str, paths))
    assert "🎨" in out and "[final]" in " ".join(out.split()) or "[fin" in out


def test_undecodable_name_does_not_break_output(factory: ModelFactory) -> None:
    src = factory.lora("sd1")
    odd = os.fsencode(str(factory.root)) + b"/bad-\xff-name.safetensors"
    os.rename(src, odd)
    code, out, _ = run("--json", "--recursive", str(factory.root))
    assert code == 0
    (rec,) = records(out)
    assert rec["kind"] == "lora" and "\\xff" in str(rec["path"])


def test_iter_targets_skips_special_files_and_follows_folder_symlinks_once(
    tmp_path: Path, factory: ModelFactory
) -> None:
    lora = factory.lora("sd1", name="inner/x.safetensors")
    (factory.root / "inner" / "again").symlink_to(factory.root)  # a loop back to the top
    (factory.root / "outside").symlink_to(factory.root / "inner")  # a second way into inner
    os.mkfifo(factory.root / "pipe")
    found = list(iter_targets([factory.root], recursive=True))
    assert lora in found
    assert factory.root / "pipe" not in found
    assert len(found) == len(set(p.resolve() for p in found)) == 1


def test_real_subprocess_run(factory: ModelFactory) -> None:
    path = factory.checkpoint("flux1", "schnell")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "modeldex", "identify", "--json", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (rec,) = records(proc.stdout)
    assert list(rec) == FIELDS
    assert (rec["kind"], rec["base"], rec["variant"]) == ("checkpoint", "flux1", "schnell")
    assert "torch" not in proc.stderr
