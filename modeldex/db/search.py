"""Find CivitAI models in the index by any word: name, tag, trained word, creator username or description.

SQLite uses the FTS5 table that migration 0002 keeps in sync with triggers, ranked by bm25; other backends (or a
SQLite built without FTS5) get a LIKE scan. Either way every word of the query must match somewhere, each word also
matches as a prefix ("pon" finds "pony"), and the user's text is never parsed as FTS syntax.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import ColumnElement, Text, and_, case, cast, exists, or_, select, text
from sqlalchemy.orm import Session

from modeldex.db.migrate import FTS_TABLE
from modeldex.db.models import Creator, Model, ModelVersion

# bm25 column weights, in the FTS table's column order: name, tags, trained_words, creator, description.
# A hit in the name counts most; a hit only somewhere in a long HTML description counts least.
_WEIGHTS = (10.0, 4.0, 4.0, 3.0, 1.0)


def query_words(query: str) -> list[str]:
    """The words of a user query: whitespace-separated, keeping only those with a letter or digit in them.

    Control characters separate words too: FTS5 reads a NUL as the end of the query ("unterminated string").
    """
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in query)
    return [word for word in cleaned.split() if any(ch.isalnum() for ch in word)]


def fts_match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression that means "every word, as a prefix", or None when the query has no words.

    Each word becomes a quoted string with its quotes doubled, so `AND`, `NEAR`, `*`, `(`, `:` and `"` in user
    text are plain characters and can never raise an FTS syntax error.
    """
    words = query_words(query)
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


def search_models(session: Session, query: str, limit: int = 50) -> list[Model]:
    """Models matching every word of `query`, best first; an empty or punctuation-only query finds nothing."""
    if limit <= 0 or not query_words(query):
        return []
    if not _has_fts(session):
        return search_models_like(session, query, limit)
    weights = ", ".join(str(w) for w in _WEIGHTS)
    rows = session.execute(
        text(
            f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match "
            f"ORDER BY bm25({FTS_TABLE}, {weights}), rowid LIMIT :limit"
        ),
        {"match": fts_match_expression(query), "limit": limit},
    ).all()
    ids = [row[0] for row in rows]
    by_id = {model.id: model for model in session.scalars(select(Model).where(Model.id.in_(ids)))}
    return [by_id[i] for i in ids if i in by_id]


def search_models_like(session: Session, query: str, limit: int = 50) -> list[Model]:
    """The portable fallback: case-insensitive substring match of every word, models with name hits first."""
    words = query_words(query)
    if limit <= 0 or not words:
        return []
    patterns = [_like_pattern(word) for word in words]
    creator_name = select(Creator.username).where(Creator.id == Model.creator_id).scalar_subquery()

    def anywhere(pattern: str) -> ColumnElement[bool]:
        in_words = exists().where(
            ModelVersion.model_id == Model.id, cast(ModelVersion.trained_words, Text).ilike(pattern, escape="\\")
        )
        return or_(
            Model.name.ilike(pattern, escape="\\"),
            cast(Model.tags, Text).ilike(pattern, escape="\\"),
            Model.description.ilike(pattern, escape="\\"),
            creator_name.ilike(pattern, escape="\\"),
            in_words,
        )

    name_hit = and_(*(Model.name.ilike(p, escape="\\") for p in patterns))
    statement = (
        select(Model)
        .where(*(anywhere(p) for p in patterns))
        .order_by(case((name_hit, 0), else_=1), Model.name, Model.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _has_fts(session: Session) -> bool:
    if session.get_bind().dialect.name != "sqlite":
        return False
    found = session.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": FTS_TABLE}
    ).first()
    return found is not None
