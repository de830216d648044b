"""A database filled by the first release upgrades to the current schema with every row still readable.

The rows are plain SQL against the schema of revision FIRST_RELEASE (frozen here, never generated from the models),
so when a later revision changes a table this test migrates real data through it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import select, text

from modeldex.db.engine import make_engine, session_factory
from modeldex.db.migrate import alembic_config, current_revisions, ensure_schema, head_revision
from modeldex.db.models import (
    Creator,
    FileHash,
    Image,
    Job,
    LocalFile,
    Model,
    ModelVersion,
    SortOp,
    SortRun,
    SyncState,
    VersionFile,
)
from modeldex.db.search import search_models

FIRST_RELEASE = "0002"

FIRST_RELEASE_ROWS = [
    "INSERT INTO creator (id, username, image_url, raw) VALUES (1, 'alice', NULL, '{\"username\": \"alice\"}')",
    "INSERT INTO model (id, name, type, description, nsfw, tags, creator_id, mode, raw, fetched_at) VALUES "
    "(10, 'Frozen LoRA', 'LORA', '<p>kept</p>', 0, '[\"style\"]', 1, NULL, '{}', '2024-05-01 10:00:00.000000')",
    "INSERT INTO model_version (id, model_id, name, base_model, base_model_type, trained_words, description, "
    "published_at, early_access_ends_at, status, download_url, raw, fetched_at) VALUES "
    "(100, 10, 'v1', 'SD 1.5', 'Standard', '[\"frozenword\"]', NULL, '2024-04-01 00:00:00.000000', NULL, "
    "'Published', 'https://civitai.com/api/download/models/100', '{}', NULL)",
    'INSERT INTO version_file (id, version_id, name, type, size_kb, format, fp, size, "primary", download_url, '
    "pickle_scan_result, virus_scan_result, raw) VALUES "
    "(1000, 100, 'frozen.safetensors', 'Model', 144000.5, 'SafeTensor', 'fp16', 'pruned', 1, NULL, 'Success', "
    "'Success', '{}')",
    "INSERT INTO file_hash (id, file_id, algo, value) VALUES (1, 1000, 'SHA256', 'AB' || substr(hex(zeroblob(31)), 1, 62))",
    "INSERT INTO image (id, version_id, url, width, height, nsfw_level, type, hash, meta, cached_path) VALUES "
    "(5000, 100, 'https://image.civitai.com/x.jpeg', 512, 768, 1, 'image', 'UAHV', '{\"seed\": 1}', NULL)",
    "INSERT INTO local_file (id, path, size, mtime_ns, inode, sha256, autov1, autov2, autov3, crc32, blake3, kind, "
    "base, variant, prediction, algo, format, unsafe, unsafe_globals, error, evidence, version_file_id, "
    "user_overrides, scanned_at) VALUES (1, '/models/frozen.safetensors', 147456512, 1714557600000000000, 42, NULL, "
    "NULL, 'ABCDEF0123', NULL, NULL, NULL, 'lora', 'sd1', NULL, NULL, 'lora', 'safetensors', 0, '[]', NULL, '[]', "
    "1000, '{}', '2024-05-01 10:00:00.000000')",
    "INSERT INTO sort_run (id, started_at, finished_at, source, root, options, state) VALUES "
    "(1, '2024-05-01 10:00:00.000000', NULL, '/downloads', '/webui', '{}', 'done')",
    "INSERT INTO sort_op (id, run_id, seq, action, source, destination, sha256, reason, state, error) VALUES "
    "(1, 1, 0, 'move', '/downloads/a.safetensors', '/webui/models/Lora/a.safetensors', NULL, 'lora', 'done', NULL)",
    "INSERT INTO job (id, kind, payload, state, attempts, lease_until, progress, bytes_done, bytes_total, error, "
    "result, created_at, updated_at) VALUES (1, 'download', '{\"version_id\": 100}', 'queued', 0, NULL, 0.0, 0, "
    "NULL, NULL, NULL, '2024-05-01 10:00:00.000000', '2024-05-01 10:00:00.000000')",
    "INSERT INTO sync_state (key, value, updated_at) VALUES ('cursor', '{\"next\": 2}', NULL)",
]


def test_first_release_database_upgrades_with_its_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'release1.db'}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), FIRST_RELEASE)
        for statement in FIRST_RELEASE_ROWS:
            conn.execute(text(statement))
    ensure_schema(engine)
    with engine.connect() as conn:
        assert current_revisions(conn) == (head_revision(),)
    with session_factory(engine)() as session:
        for model_class in [
            Creator,
            Model,
            ModelVersion,
            VersionFile,
            FileHash,
            Image,
            LocalFile,
            SortRun,
            SortOp,
            Job,
        ]:
            assert len(session.scalars(select(model_class)).all()) == 1, model_class.__name__
        model = session.get(Model, 10)
        assert model is not None and model.creator is not None and model.creator.username == "alice"
        assert model.fetched_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        assert model.versions[0].files[0].hashes[0].value.startswith("AB")
        local = session.scalars(select(LocalFile)).one()
        assert local.version_file is not None and local.version_file.name == "frozen.safetensors"
        assert session.get(SyncState, "cursor") is not None
        image = session.get(Image, 5000)
        assert image is not None and image.meta == {"seed": 1} and image.raw is None  # raw arrived in 0003
        assert [m.id for m in search_models(session, "frozenword", 10)] == [10]
    engine.dispose()
