"""The SQLite index: models, engine, migrations and queries."""
