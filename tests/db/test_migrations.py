"""The migrations shipped in the package build exactly the schema the models describe, both ways, safely."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, event, inspect, text

from modeldex.db.engine import BUSY_TIMEOUT_MS, make_engine
from modeldex.db.migrate import (
    FTS_TABLE,
    HEAD_REVISION,
    alembic_config,
    current_revisions,
    ensure_schema,
    head_revision,
    include_object,
    script_directory,
)
from modeldex.db.models import Base
from modeldex.errors import DatabaseError


def schema_diff(engine: Engine, metadata: MetaData = Base.metadata) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
        return list(compare_metadata(context, metadata))


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_head_on_empty_database_matches_the_models(engine: Engine) -> None:
    assert set(Base.metadata.tables) <= table_names(engine)
    assert schema_diff(engine) == []
    with engine.connect() as conn:
        assert current_revisions(conn) == (head_revision(),)


def test_head_revision_constant_matches_the_migrations_folder() -> None:
    # Update HEAD_REVISION in modeldex/db/migrate.py when adding a revision.
    assert script_directory().get_heads() == [HEAD_REVISION]


AT_HEAD_SCRIPT = textwrap.dedent(
    """
    import sys
    from modeldex.db.engine import make_engine
    from modeldex.db.migrate import ensure_schema
    ensure_schema(make_engine("sqlite:///" + sys.argv[1]))
    print(sorted(m for m in sys.modules if m.split(".")[0] == "alembic"))
    """
)


def test_at_head_ensure_schema_does_not_import_alembic(engine: Engine, db_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", AT_HEAD_SCRIPT, str(db_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_comparison_does_see_a_difference(engine: Engine) -> None:
    # Guards the test above: a model change that no migration makes must show up as a diff.
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["job"].append_column(Column("priority", Integer))
    diff = schema_diff(engine, changed)
    assert [entry[0] for entry in diff if isinstance(entry, tuple)] == ["add_column"]


def test_fts_tables_exist_but_are_left_out_of_autogenerate(engine: Engine) -> None:
    fts_tables = {name for name in table_names(engine) if name.startswith(FTS_TABLE)}
    assert FTS_TABLE in fts_tables and len(fts_tables) > 1  # the virtual table and its shadow tables
    assert not any(include_object(None, name, "table", True, None) for name in fts_tables)
    assert include_object(None, "model", "table", True, None)


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert table_names(engine) == {"alembic_version"}
    ensure_schema(engine)
    assert schema_diff(engine) == []
    assert FTS_TABLE in table_names(engine)


def test_upgrade_from_the_first_revision_keeps_rows_and_indexes_them(db_path: Path) -> None:
    from modeldex.db.engine import session_factory
    from modeldex.db.search import search_models

    engine = make_engine(f"sqlite:///{db_path}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(text("INSERT INTO creator (id, username) VALUES (1, 'alice')"))
        conn.execute(
            text(
                "INSERT INTO model (id, name, type, nsfw, tags, creator_id) "
                "VALUES (10, 'Old Model', 'LORA', 0, '[\"style\"]', 1)"
            )
        )
        conn.execute(
            text("INSERT INTO model_version (id, model_id, name, trained_words) VALUES (100, 10, 'v1', '[\"zzword\"]')")
        )
    ensure_schema(engine)
    with session_factory(engine)() as session:
        assert [m.id for m in search_models(session, "zzword")] == [10]
        assert [m.id for m in search_models(session, "alice")] == [10]
    engine.dispose()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
        # The migration turns foreign keys off for its table rebuilds; the pooled connection must get them back.
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_at_head_ensure_schema_only_reads(engine: Engine) -> None:
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.strip().upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        started = time.perf_counter()
        ensure_schema(engine)
        elapsed = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements, "the revision must be read from the database"
    assert all(s.startswith(("SELECT", "PRAGMA")) for s in statements), statements
    assert elapsed < 1.0


def test_at_head_ensure_schema_does_not_wait_for_a_writer(engine: Engine, db_path: Path) -> None:
    writer = sqlite3.connect(db_path)
    writer.execute("BEGIN IMMEDIATE")
    try:
        done = threading.Event()

        def run() -> None:
            ensure_schema(engine)
            done.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=10)
        assert done.is_set(), "ensure_schema blocked behind another process's write transaction"
    finally:
        writer.rollback()
        writer.close()


def test_threads_with_their_own_engines_migrate_once(db_path: Path) -> None:
    engines = [make_engine(f"sqlite:///{db_path}") for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        barrier.wait()
        try:
            ensure_schema(engine)
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with engines[0].connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    assert schema_diff(engines[0]) == []
    for e in engines:
        e.dispose()


PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    from modeldex.db.engine import make_engine
    from modeldex.db.migrate import ensure_schema
    engine = make_engine("sqlite:///" + sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()  # the go signal, sent once every process is imported and waiting
    ensure_schema(engine)
    print("migrated", flush=True)
    """
)


def test_two_processes_starting_at_once_both_succeed(db_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, str(db_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "migrated"
    engine = make_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        assert current_revisions(conn) == (head_revision(),)
    assert schema_diff(engine) == []
    engine.dispose()


def test_database_from_a_newer_modeldex_is_refused_untouched(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        conn.execute(text("INSERT INTO sync_state (key) VALUES ('kept')"))
    with pytest.raises(DatabaseError, match=r"9999_future.*newer modeldex") as info:
        ensure_schema(engine)
    assert head_revision() in info.value.message
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "9999_future"
        assert conn.execute(text("SELECT key FROM sync_state")).scalar() == "kept"


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "modeldex.db"
    content = b"these are my holiday notes, not an SQLite file\n" * 200
    path.write_bytes(content)
    with pytest.raises(DatabaseError, match="not a database"):
        ensure_schema(make_engine(f"sqlite:///{path}"))
    assert path.read_bytes() == content


def test_a_database_of_another_program_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    with pytest.raises(DatabaseError, match=r"already holds tables \(notes\)"):
        ensure_schema(make_engine(f"sqlite:///{path}"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("notes",)]
        assert conn.execute("SELECT body FROM notes").fetchall() == [("keep me",)]


def test_a_folder_at_the_database_path_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "modeldex.db"
    path.mkdir()
    with pytest.raises(DatabaseError, match="cannot open the database"):
        ensure_schema(make_engine(f"sqlite:///{path}"))
