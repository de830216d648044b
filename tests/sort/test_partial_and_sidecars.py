"""Partial downloads (by name, by aria2 control file, by growth) and sidecar grouping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sort_helpers import write

from modeldex.identify.sorting.partial import growing_files, partial_reason
from modeldex.identify.sorting.sidecars import attach_sidecars, looks_like_sidecar, model_stem


@pytest.mark.parametrize(
    "name", ["a.safetensors.part", "a.safetensors.incomplete", "a.crdownload", "A.SAFETENSORS.TMP", "a.download"]
)
def test_partial_suffixes(tmp_path: Path, name: str) -> None:
    reason = partial_reason(write(tmp_path / name))
    assert reason is not None and "partial" in reason


def test_aria2_control_file_marks_its_download_and_itself(tmp_path: Path) -> None:
    model = write(tmp_path / "model.safetensors")
    assert partial_reason(model) is None
    control = write(tmp_path / "model.safetensors.aria2")
    assert partial_reason(model) is not None and "aria2" in partial_reason(model)  # type: ignore[operator]
    assert partial_reason(control) is not None


def test_growing_file_is_found_with_one_wait_for_all(tmp_path: Path) -> None:
    still = write(tmp_path / "still.safetensors")
    growing = write(tmp_path / "growing.safetensors")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        with growing.open("ab") as f:
            f.write(b"more bytes")

    assert growing_files([still, growing], 0.5, sleep=sleep) == {growing}
    assert waits == [0.5]


def test_old_files_are_not_watched(tmp_path: Path) -> None:
    old = write(tmp_path / "old.safetensors")
    os.utime(old, (1_000_000_000, 1_000_000_000))

    def sleep(seconds: float) -> None:
        raise AssertionError("no recent file: no wait")

    assert growing_files([old], 5.0, sleep=sleep) == set()


def test_a_file_that_vanishes_while_watched_counts_as_growing(tmp_path: Path) -> None:
    gone = write(tmp_path / "gone.safetensors")
    assert growing_files([gone], 1.0, sleep=lambda _s: gone.unlink()) == {gone}


def test_sidecars_attach_to_the_model_with_their_stem(tmp_path: Path) -> None:
    model = write(tmp_path / "dreamy.v2.safetensors")
    other = write(tmp_path / "other.ckpt")
    names = [
        "dreamy.v2.preview.png", "dreamy.v2.preview.jpg", "dreamy.v2.civitai.info", "dreamy.v2.json",
        "dreamy.v2.cm-info.json", "dreamy.v2.metadata.json", "dreamy.v2.yaml", "other.json", "dreamy.json",
        "unrelated.preview.png",
    ]  # fmt: skip
    sidecars = [write(tmp_path / n) for n in names]
    sub = write(tmp_path / "sub" / "dreamy.v2.json")  # another folder: not a sidecar of this model
    assert all(looks_like_sidecar(s) for s in sidecars)
    found = attach_sidecars([model, other], sidecars + [sub])
    assert [p.name for p in found[model]] == sorted(names[:7])
    assert [p.name for p in found[other]] == ["other.json"]
    assert model_stem(model) == "dreamy.v2"
    assert not looks_like_sidecar(model)
