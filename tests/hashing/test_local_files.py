"""The local_file queries on their own: folder ranges, many named files, upsert rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.local_files import IN_CHUNK, cached_rows, delete_paths, upsert_scanned
from modeldex.db.models import LocalFile

Factory = sessionmaker[Session]


def row(path: str, sha: str = "a" * 64) -> dict[str, Any]:
    return {"path": path, "size": 1, "mtime_ns": 2, "inode": 3, "sha256": sha, "kind": "lora", "base": "sd1",
            "format": "safetensors", "unsafe": False, "unsafe_globals": [], "evidence": ["x"]}  # fmt: skip


def test_folder_range_takes_only_what_is_under_it(db: Factory) -> None:
    paths = ["/lib/a", "/lib/sub/b", "/lib2/c", "/lib-x/d", "/li/e", "/lib"]
    with db.begin() as session:
        upsert_scanned(session, [row(p) for p in paths])
    with db() as session:
        assert sorted(cached_rows(session, roots=["/lib"])) == ["/lib/a", "/lib/sub/b"]
        assert sorted(cached_rows(session, roots=["/lib/"])) == ["/lib/a", "/lib/sub/b"]
        assert sorted(cached_rows(session, roots=["/"])) == sorted(paths)
        assert sorted(cached_rows(session, roots=["/lib"], files=["/lib2/c", "/nope"])) == [
            "/lib/a", "/lib/sub/b", "/lib2/c",
        ]  # fmt: skip
        assert cached_rows(session) == {}


def test_many_named_files_are_looked_up_in_chunks(db: Factory) -> None:
    paths = [f"/m/{i:05d}" for i in range(IN_CHUNK * 2 + 7)]
    with db.begin() as session:
        upsert_scanned(session, [row(p) for p in paths])
    with db() as session:
        assert set(cached_rows(session, files=paths + paths[:3])) == set(paths)


def test_upsert_updates_in_place_and_delete_counts(db: Factory, tmp_path: Path) -> None:
    with db.begin() as session:
        upsert_scanned(session, [row("/x"), row("/y")])
    with db.begin() as session:
        upsert_scanned(session, [dict(row("/x", sha="b" * 64), kind="vae", evidence=None)])
    with db() as session:
        stored = {r.path: r for r in session.scalars(select(LocalFile))}
        assert stored["/x"].sha256 == "b" * 64 and stored["/x"].kind == "vae" and stored["/x"].evidence == []
        assert stored["/x"].user_overrides == {}
        assert len(stored) == 2
    with db.begin() as session:
        assert delete_paths(session, ["/x", "/nope"]) == 1
    with db() as session:
        assert [r.path for r in session.scalars(select(LocalFile))] == ["/y"]


def test_portable_upsert_matches_the_native_one(db: Factory) -> None:
    from modeldex.db import local_files

    def stored(session: Session) -> list[tuple[Any, ...]]:
        return [(r.path, r.sha256, r.kind) for r in session.scalars(select(LocalFile).order_by(LocalFile.path))]

    def values(*rows: dict[str, Any]) -> list[dict[str, Any]]:
        return [{name: r.get(name) for name in local_files.SCAN_COLUMNS} for r in rows]

    with db.begin() as session:
        local_files._portable_upsert(session, values(row("/p"), row("/q")))
        local_files._portable_upsert(session, values(dict(row("/p", sha="c" * 64), kind="vae")))
        assert stored(session) == [("/p", "c" * 64, "vae"), ("/q", "a" * 64, "lora")]
