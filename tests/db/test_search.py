"""Model search: FTS5 over name, tags, trained words, creator and description, kept in sync by triggers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import ensure_schema
from modeldex.db.models import Creator, Model, ModelVersion
from modeldex.db.search import fts_match_expression, query_words, search_models, search_models_like

SEARCHERS = [search_models, search_models_like]


def add_catalogue(session: Session) -> None:
    """A small CivitAI-like catalogue, each model findable by a different field."""
    alice = Creator(username="alice_makes")
    bob = Creator(username="BobTheBuilder")
    session.add_all(
        [
            Model(
                id=1,
                name="Pony Diffusion V6 XL",
                type="Checkpoint",
                tags=["base model", "anime"],
                creator=alice,
                description="<p>The pony checkpoint everybody merges.</p>",
                versions=[ModelVersion(id=11, name="v6", trained_words=["score_9", "score_8_up"])],
            ),
            Model(
                id=2,
                name="Detail Tweaker",
                type="LORA",
                tags=["detail", "tool"],
                creator=bob,
                description="Adds or removes detail. Works on pony too.",
                versions=[
                    ModelVersion(id=21, name="v1", trained_words=[]),
                    ModelVersion(id=22, name="v2", trained_words=["add_detail"]),
                ],
            ),
            Model(
                id=3,
                name="Café Style",
                type="LORA",
                tags=["style", "café"],
                creator=alice,
                description="Warm colours (and coffee).",
                versions=[ModelVersion(id=31, name="v1", trained_words=["cafestyle", "latte art"])],
            ),
            Model(id=4, name="100% Real", type="Checkpoint", tags=[], description=None),
        ]
    )
    session.commit()


@pytest.fixture
def catalogue(session: Session) -> Session:
    add_catalogue(session)
    return session


def ids(models: list[Model]) -> list[int]:
    return [m.id for m in models]


@pytest.mark.parametrize("search", SEARCHERS)
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("add_detail", [2]),  # trained word of the second version
        ("cafestyle", [3]),  # trained word
        ("latte", [3]),  # one word of a multi-word trained word
        ("BobTheBuilder", [2]),  # creator
        ("bobthebuilder", [2]),  # case-insensitive
        ("anime", [1]),  # tag
        ("coffee", [3]),  # description
        ("tweaker", [2]),  # name
        ("alice_makes style", [3]),  # every word must match, each in any field
        ("nothing-like-this", []),
    ],
)
def test_finds_models_by_any_field(catalogue: Session, search: object, query: str, expected: list[int]) -> None:
    assert callable(search)
    assert sorted(ids(search(catalogue, query, 50))) == expected


def test_words_match_as_prefixes(catalogue: Session) -> None:
    assert ids(search_models(catalogue, "tweak", 50)) == [2]
    assert sorted(ids(search_models(catalogue, "sco", 50))) == [1]


def test_fts_ignores_accents(catalogue: Session) -> None:
    assert ids(search_models(catalogue, "cafe", 50)) == [3]
    assert ids(search_models(catalogue, "CAFÉ", 50)) == [3]


def test_name_hits_rank_above_description_hits(catalogue: Session) -> None:
    # "pony" is in model 1's name and only in model 2's description.
    assert ids(search_models(catalogue, "pony", 50)) == [1, 2]
    assert ids(search_models_like(catalogue, "pony", 50)) == [1, 2]


def test_limit(catalogue: Session) -> None:
    assert len(search_models(catalogue, "pony", 1)) == 1
    assert search_models(catalogue, "pony", 0) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"', []), ('"pony', [1, 2]), ("pony)", [1, 2]), ("(pony", [1, 2]), ("pony*", [1, 2]), ("^pony", [1, 2]),
        # Operators are plain words: "AND" matches the description "(and coffee)", "or" the word "or".
        ("AND", [3]), ("pony AND", []), ("OR pony", [2]), ("NOT", []), ("pony -detail", [2]),
        # Column filters and NEAR are not honoured: "name:pony" is the phrase "name pony".
        ("NEAR(pony", []), ("name:pony", []), ("{name}: pony", []),
        ("*", []), ("'", []), ("+", []), ("%", []), ("_", []), ("\\", []),
    ],
)  # fmt: skip
def test_fts_syntax_in_user_text_is_plain_text(catalogue: Session, query: str, expected: list[int]) -> None:
    assert sorted(ids(search_models(catalogue, query, 50))) == expected
    assert isinstance(search_models_like(catalogue, query, 50), list)


def test_punctuation_only_and_empty_queries_find_nothing(catalogue: Session) -> None:
    for query in ["", "   ", "*", "()", '"" ""', "%", "_"]:
        assert search_models(catalogue, query, 50) == []
        assert search_models_like(catalogue, query, 50) == []


def test_like_fallback_treats_percent_and_underscore_literally(catalogue: Session) -> None:
    assert ids(search_models_like(catalogue, "100%", 50)) == [4]
    assert ids(search_models_like(catalogue, "0% R", 50)) == [4]
    # "_" must not act as a one-character wildcard: "add detail" has a space where add_detail has "_".
    assert ids(search_models_like(catalogue, "add_detail", 50)) == [2]
    assert ids(search_models_like(catalogue, "score_9", 50)) == [1]
    assert ids(search_models_like(catalogue, "scorex9", 50)) == []


def test_match_expression_quotes_every_word() -> None:
    assert query_words('  pony  "  AND  ') == ["pony", "AND"]
    assert fts_match_expression('say "hi"') == '"say"* """hi"""*'
    assert fts_match_expression("* ( )") is None
    assert query_words("pony\x00score\x1f9") == ["pony", "score", "9"]


def fts_rows(session: Session) -> dict[int, tuple[str, ...]]:
    rows = session.execute(text("SELECT rowid, name, tags, trained_words, creator, description FROM model_fts"))
    return {row[0]: tuple(row[1:]) for row in rows}


def test_triggers_follow_model_version_and_creator_changes(catalogue: Session) -> None:
    pony = catalogue.get(Model, 1)
    assert pony is not None
    pony.versions[0].trained_words = ["newword"]
    catalogue.commit()
    assert ids(search_models(catalogue, "newword", 50)) == [1]
    assert search_models(catalogue, "score_9", 50) == []

    pony.versions.append(ModelVersion(id=12, name="v7", trained_words=["seventh"]))
    catalogue.commit()
    assert ids(search_models(catalogue, "seventh", 50)) == [1]
    assert ids(search_models(catalogue, "newword", 50)) == [1]

    catalogue.delete(pony.versions[1])
    catalogue.commit()
    assert search_models(catalogue, "seventh", 50) == []

    pony.tags = ["renamed tag"]
    pony.name = "Horse Diffusion"
    catalogue.commit()
    assert ids(search_models(catalogue, "horse renamed", 50)) == [1]
    assert search_models(catalogue, "anime", 50) == []

    assert pony.creator is not None
    pony.creator.username = "alice_renamed"
    catalogue.commit()
    assert sorted(ids(search_models(catalogue, "alice_renamed", 50))) == [1, 3]
    assert search_models(catalogue, "alice_makes", 50) == []


def test_deleting_a_model_or_creator_removes_it_from_the_index(catalogue: Session) -> None:
    detail = catalogue.get(Model, 2)
    catalogue.delete(detail)
    catalogue.commit()
    assert 2 not in fts_rows(catalogue)
    assert search_models(catalogue, "add_detail", 50) == []

    catalogue.execute(text("DELETE FROM creator WHERE username = 'alice_makes'"))
    catalogue.commit()
    catalogue.expire_all()
    assert search_models(catalogue, "alice_makes", 50) == []
    assert sorted(fts_rows(catalogue)) == [1, 3, 4]  # the models stay, without a creator


def test_index_matches_a_full_rebuild(catalogue: Session) -> None:
    before = fts_rows(catalogue)
    catalogue.execute(text("DELETE FROM model_fts"))
    catalogue.execute(text("UPDATE model SET name = name"))  # fires the update trigger for every model
    catalogue.commit()
    assert fts_rows(catalogue) == before


def test_malformed_json_does_not_block_writes(catalogue: Session) -> None:
    catalogue.execute(text("UPDATE model SET tags = 'not json', name = 'Broken Tags' WHERE id = 4"))
    catalogue.commit()
    # The row is indexed without its tags (loading the Model itself would fail on the bad JSON, hence raw rows).
    assert fts_rows(catalogue)[4][:2] == ("Broken Tags", None)


def test_fallback_is_used_without_the_fts_table(catalogue: Session) -> None:
    catalogue.execute(text("DROP TABLE model_fts"))
    catalogue.commit()
    assert ids(search_models(catalogue, "BobTheBuilder", 50)) == [2]


@pytest.fixture(scope="module")
def shared_catalogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    path: Path = tmp_path_factory.mktemp("search") / "modeldex.db"
    engine: Engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine)
    with session_factory(engine)() as session:
        add_catalogue(session)
        yield session
    engine.dispose()


@settings(max_examples=150, deadline=None)
@given(query=st.text(max_size=40))
def test_any_text_is_a_valid_query(shared_catalogue: Session, query: str) -> None:
    for search in SEARCHERS:
        assert isinstance(search(shared_catalogue, query, 10), list)
