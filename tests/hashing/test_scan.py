"""The scan pipeline: walk, cache by (path, size, mtime_ns, inode), identify + hash the rest, vanished rows."""

from __future__ import annotations

import builtins
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hashing_helpers import write_lora, write_noise
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db import scanning as db_scanning
from modeldex.db.local_files import find_by_hash
from modeldex.db.models import LocalFile, Model, ModelVersion, VersionFile
from modeldex.db.scanning import ScanObserver, ScanSummary, scan
from modeldex.identify import scanning
from modeldex.identify.scanning import ScanRecord

Factory = sessionmaker[Session]


class Collect(ScanObserver):
    def __init__(self) -> None:
        self.records: list[ScanRecord] = []
        self.plan: tuple[int, int, int] | None = None

    def planned(self, files: int, to_examine: int, bytes_to_read: int) -> None:
        self.plan = (files, to_examine, bytes_to_read)

    def record(self, record: ScanRecord) -> None:
        self.records.append(record)


def run(paths: list[Path], db: Factory, **kwargs: Any) -> tuple[ScanSummary, list[ScanRecord], Collect]:
    observer = Collect()
    summary = scan(paths, db, observer=observer, **kwargs)
    return summary, observer.records, observer


def rows(db: Factory) -> dict[str, LocalFile]:
    with db() as session:
        return {row.path: row for row in session.scalars(select(LocalFile))}


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_lora(root / "Lora" / "a.safetensors", seed=1)
    write_lora(root / "Lora" / "sub" / "b.safetensors", seed=2)
    write_noise(root / "Stable-diffusion" / "noise.ckpt", 0x120000, seed=3)
    (root / "Lora" / "a.preview.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "Lora" / "a.civitai.info").write_text("{}")
    (root / "Lora" / "c.safetensors.part").write_bytes(b"half")
    return root


def test_first_scan_records_and_hashes_every_model_file(library: Path, db: Factory) -> None:
    summary, records, observer = run([library], db, jobs=2)
    paths = [Path(r.target.path) for r in records]
    assert paths == sorted(paths)
    assert {p.name for p in paths} == {"a.safetensors", "b.safetensors", "noise.ckpt"}  # previews, .part passed by
    assert summary.files == summary.examined == 3 and summary.cached == 0
    assert observer.plan == (3, 3, sum(p.stat().st_size for p in paths))
    stored = rows(db)
    assert set(stored) == {str(p) for p in paths}
    for record in records:
        data = Path(record.target.path).read_bytes()
        assert record.hashes is not None
        assert record.hashes.sha256 == hashlib.sha256(data).hexdigest()
        row = stored[record.target.path]
        assert (row.sha256, row.autov2, row.crc32, row.blake3) == (
            record.hashes.sha256,
            record.hashes.autov2,
            record.hashes.crc32,
            record.hashes.blake3,
        )
        assert row.kind == record.identification.kind
        assert row.size == len(data) and row.scanned_at is not None


def test_autov3_for_adapters_only_unless_asked(library: Path, db: Factory, tmp_path: Path) -> None:
    _, records, _ = run([library], db)
    by_name = {Path(r.target.path).name: r for r in records}
    lora = by_name["a.safetensors"]
    assert lora.identification.kind == "lora"
    assert lora.hashes is not None and lora.hashes.autov3 is not None
    data = Path(lora.target.path).read_bytes()
    start = 8 + int.from_bytes(data[:8], "little")
    assert lora.hashes.autov3 == hashlib.sha256(data[start:]).hexdigest()
    assert by_name["noise.ckpt"].hashes is not None and by_name["noise.ckpt"].hashes.autov3 is None


def test_autov3_flag_covers_every_safetensors_file(
    tmp_path: Path, db: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_lora(tmp_path / "x.safetensors")
    # Pretend identify called it a checkpoint: AutoV3 then comes only with the flag.
    original = scanning.identify_path

    def as_checkpoint(p: Path, display: str | None = None) -> Any:
        ident = original(p, display=display)
        ident.kind = "checkpoint"
        return ident

    monkeypatch.setattr(scanning, "identify_path", as_checkpoint)
    _, records, _ = run([path], db)
    assert records[0].hashes is not None and records[0].hashes.autov3 is None
    os.utime(path, ns=(1, 1))  # make the cache miss
    _, records, _ = run([path], db, autov3=True)
    assert records[0].hashes is not None and records[0].hashes.autov3 is not None


def test_rescan_of_unchanged_files_reads_no_content(
    library: Path, db: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first, _ = run([library], db, jobs=2)

    real_open = builtins.open
    opened: list[str] = []

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).startswith(str(library)):
            opened.append(str(file))
            raise AssertionError(f"content read on a cache hit: {file}")
        return real_open(file, *args, **kwargs)

    def no_examine(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("examined on a cache hit")

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(db_scanning, "examine", no_examine)
    summary, second, _ = run([library], db, jobs=2)
    assert opened == []
    assert summary.cached == 3 and summary.examined == 0
    assert [r.to_json() for r in second] == [r.to_json() for r in first]
    assert all(r.cached for r in second)

    # Touch one file: only that one is read again.
    touched = library / "Lora" / "a.safetensors"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    monkeypatch.setattr(builtins, "open", real_open)
    calls: list[str] = []
    real_examine = scanning.examine

    def counting_examine(target: Any, **kwargs: Any) -> Any:
        calls.append(target.path)
        return real_examine(target, **kwargs)

    monkeypatch.setattr(db_scanning, "examine", counting_examine)
    summary, _, _ = run([library], db)
    assert calls == [str(touched)]
    assert summary.cached == 2 and summary.examined == 1
    assert rows(db)[str(touched)].mtime_ns == st.st_mtime_ns + 1_000_000_000


def test_inode_change_alone_means_rehash(tmp_path: Path, db: Factory) -> None:
    path = write_noise(tmp_path / "m.bin", 5000, seed=1)
    _, first, _ = run([tmp_path], db)
    st = path.stat()
    # Same size and mtime, new inode and content: a file replaced by a rename, timestamps preserved.
    replacement = write_noise(tmp_path / "other" / "m.bin", 5000, seed=2)
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, path)
    new = path.stat()
    assert (new.st_size, new.st_mtime_ns) == (st.st_size, st.st_mtime_ns) and new.st_ino != st.st_ino
    summary, second, _ = run([path], db)
    assert summary.examined == 1
    assert second[0].hashes is not None and first[0].hashes is not None
    assert second[0].hashes.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() != first[0].hashes.sha256
    assert rows(db)[str(path)].inode == new.st_ino


def test_vanished_rows_go_only_under_scanned_folders(tmp_path: Path, db: Factory) -> None:
    a = write_noise(tmp_path / "one" / "a.bin", 100, seed=1)
    b = write_noise(tmp_path / "one" / "b.bin", 100, seed=2)
    c = write_noise(tmp_path / "two" / "c.bin", 100, seed=3)
    note = tmp_path / "one" / "notes.txt"
    note.write_text("not a model")
    run([tmp_path / "one", tmp_path / "two", note], db)
    assert set(rows(db)) == {str(a), str(b), str(c), str(note)}

    a.unlink()
    c.unlink()
    summary, _, _ = run([tmp_path / "one"], db)
    assert summary.vanished == [str(a)]
    # c is gone too but its folder was not scanned; notes.txt was passed by in the walk but still exists.
    assert set(rows(db)) == {str(b), str(c), str(note)}


def test_a_sibling_folder_with_a_longer_name_is_not_under_the_scanned_one(tmp_path: Path, db: Factory) -> None:
    a = write_noise(tmp_path / "lib" / "a.bin", 10)
    other = write_noise(tmp_path / "lib2" / "x.bin", 10)
    run([tmp_path / "lib", tmp_path / "lib2"], db)
    other.unlink()
    summary, _, _ = run([tmp_path / "lib"], db)
    assert summary.vanished == []
    assert set(rows(db)) == {str(a), str(other)}


def test_bad_files_are_recorded_with_an_error(tmp_path: Path, db: Factory) -> None:
    empty = tmp_path / "lib" / "empty.safetensors"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    truncated = tmp_path / "lib" / "truncated.safetensors"
    truncated.write_bytes(write_lora(tmp_path / "full.safetensors").read_bytes()[:300])
    noise = write_noise(tmp_path / "lib" / "noise.pt", 4096)
    dangling = tmp_path / "lib" / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "nowhere")
    missing = tmp_path / "missing.safetensors"
    summary, records, _ = run([tmp_path / "lib", missing], db)
    by_name = {Path(r.identification.path).name: r for r in records}
    assert set(by_name) == {"empty.safetensors", "truncated.safetensors", "noise.pt", "missing.safetensors"} | (
        {"dangling.safetensors"} if "dangling.safetensors" in by_name else set()
    )
    for name in ("empty.safetensors", "truncated.safetensors", "noise.pt", "missing.safetensors"):
        assert by_name[name].error, name
    # Readable files are hashed all the same: CivitAI may know them by hash.
    assert by_name["noise.pt"].hashes is not None
    assert by_name["missing.safetensors"].hashes is None
    stored = rows(db)
    assert stored[str(noise)].error and stored[str(noise)].sha256
    assert str(missing) not in stored
    assert summary.errors >= 4
    assert dangling.is_symlink()


def test_unreadable_file_is_retried_next_time(tmp_path: Path, db: Factory) -> None:
    path = write_noise(tmp_path / "lib" / "locked.bin", 100)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user that reads anything (root)")
        _, records, _ = run([tmp_path / "lib"], db)
        assert records[0].error and records[0].hashes is None
    finally:
        path.chmod(0o644)
    summary, records, _ = run([tmp_path / "lib"], db)
    assert summary.examined == 1 and records[0].hashes is not None


def test_changed_content_clears_the_civitai_link_but_keeps_user_overrides(tmp_path: Path, db: Factory) -> None:
    path = write_noise(tmp_path / "m.bin", 1000, seed=1)
    run([path], db)
    with db.begin() as session:
        session.add(Model(id=1, name="m", type="Checkpoint"))
        session.add(ModelVersion(id=2, model_id=1, name="v"))
        session.add(VersionFile(id=3, version_id=2, name="m.bin"))
        session.flush()
        row = session.scalars(select(LocalFile)).one()
        row.version_file_id = 3
        row.user_overrides = {"base": "sdxl"}

    os.utime(path, ns=(1, 2))  # same bytes, new mtime: rehashed, link kept
    run([path], db)
    row = rows(db)[str(path)]
    assert (row.version_file_id, row.user_overrides) == (3, {"base": "sdxl"})

    write_noise(path, 1000, seed=2)  # new bytes: the link no longer holds
    run([path], db)
    row = rows(db)[str(path)]
    assert row.version_file_id is None and row.user_overrides == {"base": "sdxl"}


def test_same_path_twice_is_scanned_once(tmp_path: Path, db: Factory) -> None:
    path = write_noise(tmp_path / "lib" / "m.bin", 100)
    summary, records, _ = run([tmp_path / "lib", path, tmp_path / "lib" / ".." / "lib" / "m.bin"], db, jobs=2)
    assert summary.files == 1 and len(records) == 1


def test_symlinked_file_takes_its_targets_stat(tmp_path: Path, db: Factory) -> None:
    real = write_noise(tmp_path / "store" / "m.bin", 3000)
    link = tmp_path / "lib" / "m.bin"
    link.parent.mkdir()
    link.symlink_to(real)
    _, records, _ = run([tmp_path / "lib"], db)
    assert [r.target.path for r in records] == [str(link)]
    assert records[0].to_json()["size"] == 3000
    assert rows(db)[str(link)].inode == real.stat().st_ino


def test_diffusers_folder_is_one_record_without_hashes(tmp_path: Path, db: Factory) -> None:
    folder = tmp_path / "lib" / "pipe"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}'
    )
    (folder / "unet" / "config.json").write_text('{"in_channels": 4, "cross_attention_dim": 768}')
    write_lora(folder / "unet" / "diffusion_pytorch_model.safetensors")
    summary, records, _ = run([tmp_path / "lib"], db)
    assert [r.target.path for r in records] == [str(folder)]
    assert records[0].hashes is None and records[0].identification.format == "diffusers"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert records[0].to_json()["size"] == size
    summary, again, _ = run([tmp_path / "lib"], db)
    assert summary.cached == 1 and again[0].to_json() == records[0].to_json()
    (folder / "unet" / "config.json").write_text('{"in_channels": 9, "cross_attention_dim": 768}')
    summary, _, _ = run([tmp_path / "lib"], db)
    assert summary.examined == 1


def test_batches_are_committed_as_they_fill(tmp_path: Path, db: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_scanning, "FLUSH_ROWS", 2)
    for i in range(5):
        write_noise(tmp_path / "lib" / f"{i}.bin", 10, seed=i)
    seen_in_db: list[int] = []

    class Peek(ScanObserver):
        def record(self, record: ScanRecord) -> None:
            seen_in_db.append(len(rows(db)))

    scan([tmp_path / "lib"], db, observer=Peek())
    assert seen_in_db == [0, 2, 2, 4, 4]
    assert len(rows(db)) == 5


def test_find_by_hash_accepts_every_printed_form(tmp_path: Path, db: Factory) -> None:
    path = write_lora(tmp_path / "a.safetensors")
    _, records, _ = run([path], db)
    hashes = records[0].hashes
    assert hashes is not None and hashes.autov3 is not None
    with db() as session:
        for value in (hashes.sha256.upper(), hashes.autov2, hashes.autov3[:12].upper(), hashes.crc32, hashes.blake3):
            assert [r.path for r in find_by_hash(session, value)] == [str(path)], value
        assert find_by_hash(session, "zz") == [] and find_by_hash(session, "0" * 64) == []


def test_moved_library_rehashes_under_the_new_path(tmp_path: Path, db: Factory) -> None:
    write_noise(tmp_path / "old" / "m.bin", 100)
    run([tmp_path / "old"], db)
    shutil.move(tmp_path / "old", tmp_path / "new")
    summary, records, _ = run([tmp_path / "new", tmp_path / "old"], db)
    assert summary.examined == 1
    assert records[1].error is not None and "no such file" in records[1].error
    # A scanned folder that is missing altogether (an unmounted drive?) loses no rows.
    assert set(rows(db)) == {str(tmp_path / "new" / "m.bin"), str(tmp_path / "old" / "m.bin")}
    (tmp_path / "old").mkdir()
    summary, _, _ = run([tmp_path / "old"], db)
    assert summary.vanished == [str(tmp_path / "old" / "m.bin")]
    assert set(rows(db)) == {str(tmp_path / "new" / "m.bin")}


def test_fifo_is_reported_not_read(tmp_path: Path, db: Factory) -> None:
    fifo = tmp_path / "lib" / "pipe.safetensors"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    summary, records, _ = run([tmp_path / "lib", fifo], db)
    assert len(records) == 1 and records[0].error is not None and "not a regular file" in records[0].error
    assert rows(db) == {}
