"""`modeldex serve`: a read-only CivitAI-compatible API (v1 and downloads) over an index database.

`create_app(session_factory)` builds the FastAPI app; `modeldex.hub.serve.server` runs it with uvicorn (in the
foreground for the CLI, or in a thread on a free port for tests); `modeldex.hub.serve.catalog` loads a catalogue
file into a private database.
"""

from __future__ import annotations

from modeldex.hub.serve.app import create_app

__all__ = ["create_app"]
