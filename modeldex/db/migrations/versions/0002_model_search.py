"""Full-text search over models: name, tags, trained words, creator username and description (SQLite FTS5).

Why: the TUI and `modeldex search` look models up by any word a user remembers (a trigger word, a creator, a tag),
and LIKE over JSON columns is slow and unranked. Other backends get no index; modeldex.db.search falls back to LIKE.

The index is kept in sync by triggers, not by a `reindex()` call after sync writes: models, versions and creators
are written by several packages (hub sync, `modeldex serve` fixtures, tests, future importers) and one forgotten
call would leave search silently stale. A trigger rebuilds one model's row (a single indexed SELECT), and sync
writes a handful of versions per model, so the cost stays small. The FTS table stores its own copy of the text
(not external content) because its columns are assembled from three tables and JSON arrays.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the DDL (a migration never imports live code that may change later).
_CREATE_TABLE = """
CREATE VIRTUAL TABLE model_fts USING fts5(
    name, tags, trained_words, creator, description,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
)
"""

# Index rows rebuilt from the source tables for the models matching {where}. json_valid keeps a malformed JSON value
# from failing the write that fired the trigger: that model is then indexed without its tags or trained words.
_INSERT_ROWS = """
INSERT INTO model_fts (rowid, name, tags, trained_words, creator, description)
SELECT m.id,
       m.name,
       (SELECT group_concat(t.value, ' ')
          FROM json_each(CASE WHEN json_valid(m.tags) THEN m.tags END) AS t),
       (SELECT group_concat(w.value, ' ')
          FROM model_version AS v, json_each(CASE WHEN json_valid(v.trained_words) THEN v.trained_words END) AS w
         WHERE v.model_id = m.id),
       (SELECT c.username FROM creator AS c WHERE c.id = m.creator_id),
       m.description
  FROM model AS m
 WHERE {where};
"""


def _refresh(model_id: str) -> str:
    return f"DELETE FROM model_fts WHERE rowid = {model_id};" + _INSERT_ROWS.format(where=f"m.id = {model_id}")


def _refresh_by_creator(creator_id: str) -> str:
    return (
        f"DELETE FROM model_fts WHERE rowid IN (SELECT id FROM model WHERE creator_id = {creator_id});"
        + _INSERT_ROWS.format(where=f"m.creator_id = {creator_id}")
    )


_TRIGGERS = {
    "model_fts_model_insert": f"AFTER INSERT ON model BEGIN {_refresh('NEW.id')} END",
    "model_fts_model_update": (
        "AFTER UPDATE OF id, name, tags, description, creator_id ON model BEGIN "
        f"DELETE FROM model_fts WHERE rowid = OLD.id; {_refresh('NEW.id')} END"
    ),
    "model_fts_model_delete": "AFTER DELETE ON model BEGIN DELETE FROM model_fts WHERE rowid = OLD.id; END",
    "model_fts_version_insert": f"AFTER INSERT ON model_version BEGIN {_refresh('NEW.model_id')} END",
    "model_fts_version_update": (
        "AFTER UPDATE OF model_id, trained_words ON model_version BEGIN "
        f"{_refresh('OLD.model_id')} {_refresh('NEW.model_id')} END"
    ),
    "model_fts_version_delete": f"AFTER DELETE ON model_version BEGIN {_refresh('OLD.model_id')} END",
    "model_fts_creator_update": f"AFTER UPDATE OF username ON creator BEGIN {_refresh_by_creator('NEW.id')} END",
    # With foreign keys on, SET NULL on model.creator_id already fired the model trigger; this covers them off.
    "model_fts_creator_delete": f"AFTER DELETE ON creator BEGIN {_refresh_by_creator('OLD.id')} END",
}


def _fts5_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    return bool(bind.exec_driver_sql("SELECT sqlite_compileoption_used('ENABLE_FTS5')").scalar())


def upgrade() -> None:
    if not _fts5_available():
        return
    op.execute(_CREATE_TABLE)
    for name, body in _TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    # Models already in the database (an upgrade from 0001 with synced rows) get indexed now.
    op.execute(_INSERT_ROWS.format(where="1"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS model_fts")
