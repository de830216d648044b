"""Alembic revisions: append-only, one file per schema change, each saying why it exists."""
