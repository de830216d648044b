"""identify_many: input order and results identical to identify_path, inline for small inputs, pool breakage."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from factory import ModelFactory

from modeldex.cli.main import cli
from modeldex.identify import bulk
from modeldex.identify.bulk import INLINE_BELOW, identify_many
from modeldex.identify.identify import identify_path
from modeldex.identify.records import Identification

POISON = "poison"


@pytest.fixture
def mixed(factory: ModelFactory) -> list[tuple[Path, str]]:
    """Good and bad files interleaved, repeated past the inline threshold; every display distinct."""
    templates = [
        factory.checkpoint("sd1"),
        factory.lora("sdxl"),
        factory.zero_byte(),
        factory.vae("sd1"),
        factory.truncated(),
        factory.random_bytes(),
        factory.lfs_pointer(),
        factory.dangling_symlink(),
        factory.embedding("sd1"),
        factory.root,  # a folder: reported as an error
    ]
    count = INLINE_BELOW * 2
    return [(templates[i % len(templates)], f"shown/{i:03d}") for i in range(count)]


def one_by_one(targets: list[tuple[Path, str]]) -> list[Identification]:
    return [identify_path(path, display) for path, display in targets]


def test_pool_keeps_input_order_and_matches_identify_path(mixed: list[tuple[Path, str]]) -> None:
    results = list(identify_many(mixed, jobs=2))
    assert [r.path for r in results] == [display for _, display in mixed]
    assert results == one_by_one(mixed)
    assert {r.error is None for r in results} == {True, False}  # both good and bad files went through the pool


def _pid_reporting(path: Path, display: str | None = None) -> Identification:
    return Identification(path=display or str(path), evidence=[str(os.getpid())])


def test_pool_runs_in_other_processes_and_small_inputs_run_inline(
    mixed: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "identify_path", _pid_reporting)
    here = str(os.getpid())
    pooled = {r.evidence[0] for r in identify_many(mixed, jobs=2, start_method="fork")}
    assert here not in pooled
    assert {r.evidence[0] for r in identify_many(mixed[: INLINE_BELOW - 1], jobs=2, start_method="fork")} == {here}
    assert {r.evidence[0] for r in identify_many(mixed, jobs=1)} == {here}


def _dies_in_a_worker(parent: int, inline: list[str]) -> object:
    def identify(path: Path, display: str | None = None) -> Identification:
        if os.getpid() != parent:
            if display == POISON:
                os._exit(3)  # a worker dying without a word, as when killed for memory
        else:
            inline.append(str(display))
        return identify_path(path, display)

    return identify


def test_a_broken_pool_falls_back_to_inline_without_losing_results(
    mixed: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = list(mixed)
    targets[INLINE_BELOW] = (targets[INLINE_BELOW][0], POISON)
    inline: list[str] = []
    monkeypatch.setattr(bulk, "identify_path", _dies_in_a_worker(os.getpid(), inline))
    results = list(identify_many(targets, jobs=2, start_method="fork"))
    assert POISON in inline  # the pool did break, and the rest was done here
    assert 0 < len(inline) < len(targets)  # the results from before the break were kept, not redone
    assert results == one_by_one(targets)


@pytest.mark.usefixtures("mixed")  # its good and bad files, and the folder, are under factory.root
def test_cli_jobs_2_prints_the_same_json_lines_as_jobs_1(factory: ModelFactory) -> None:
    for i in range(INLINE_BELOW):
        factory.lora("sd1", name=f"deep/{i:03d}.safetensors")
    factory.zero_byte("deep/empty.safetensors")
    factory.html_page("deep/page.safetensors")
    outputs = []
    for jobs in ("1", "2"):
        result = CliRunner().invoke(
            cli, ["identify", "--json", "-r", "--jobs", jobs, str(factory.root)], catch_exceptions=False
        )
        assert result.exit_code == 0
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    lines = [json.loads(line) for line in outputs[0].splitlines()]
    assert len(lines) > INLINE_BELOW
    assert any(rec["error"] for rec in lines) and any(rec["kind"] == "lora" for rec in lines)


def test_a_process_with_threads_starts_workers_without_fork(mixed: list[tuple[Path, str]]) -> None:
    release = threading.Event()
    waiter = threading.Thread(target=release.wait)
    waiter.start()
    try:
        assert bulk._context(None).get_start_method() in ("forkserver", "spawn")
        assert list(identify_many(mixed, jobs=2)) == one_by_one(mixed)
    finally:
        release.set()
        waiter.join()
