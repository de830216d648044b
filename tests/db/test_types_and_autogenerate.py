"""Timestamps keep their instant on SQLite, and new revisions are written without importing live model code."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from modeldex.db.models import Job, SyncState


def test_timestamps_come_back_aware_in_utc(session: Session, engine: Engine) -> None:
    plus_two = datetime(2024, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    session.add(SyncState(key="aware", updated_at=plus_two))
    session.add(SyncState(key="naive", updated_at=datetime(2024, 1, 1, 12, 0)))
    session.commit()
    session.expire_all()
    for key in ["aware", "naive"]:
        loaded = session.get(SyncState, key)
        assert loaded is not None and loaded.updated_at is not None
        assert loaded.updated_at == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
        assert loaded.updated_at.tzinfo is UTC
    with engine.connect() as conn:  # stored as UTC wall time, so SQL comparisons and ORDER BY work too
        assert conn.execute(text("SELECT updated_at FROM sync_state WHERE key = 'aware'")).scalar() == (
            "2024-01-01 12:00:00.000000"
        )


def test_lease_comparison_with_now_works(session: Session) -> None:
    now = datetime.now(UTC)
    session.add(Job(kind="download", lease_until=now - timedelta(seconds=1), created_at=now, updated_at=now))
    session.commit()
    session.expire_all()
    job = session.query(Job).one()
    assert job.lease_until is not None and job.lease_until < datetime.now(UTC)
    assert session.query(Job).filter(Job.lease_until < datetime.now(UTC)).count() == 1


AUTOGENERATE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from alembic import command
    from sqlalchemy import Column
    from modeldex.db.engine import make_engine
    from modeldex.db.migrate import MIGRATIONS_DIR, alembic_config, ensure_schema
    from modeldex.db.models import Base, UTCDateTime

    db, out = sys.argv[1], Path(sys.argv[2])
    engine = make_engine("sqlite:///" + db)
    ensure_schema(engine)
    Base.metadata.tables["job"].append_column(Column("probe_at", UTCDateTime(), nullable=True))
    with engine.begin() as conn:
        config = alembic_config(conn)
        config.set_main_option("version_locations", f"{MIGRATIONS_DIR / 'versions'} {out}")
        command.revision(config, message="probe", autogenerate=True, rev_id="probe", version_path=str(out))
    """
)


def test_autogenerate_writes_plain_column_types(tmp_path: Path) -> None:
    out = tmp_path / "versions"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", AUTOGENERATE, str(tmp_path / "dev.db"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (script,) = out.glob("*.py")
    body = script.read_text(encoding="utf-8")
    assert "batch_op.add_column(sa.Column('probe_at', sa.DateTime(timezone=True), nullable=True))" in body
    assert "UTCDateTime" not in body and "modeldex" not in body.split('"""', 2)[2]
