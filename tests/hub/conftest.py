"""Fixtures shared by the hub tests: fault-injecting servers on 127.0.0.1 (see faultserver.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultserver import FaultServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A scriptable server standing in for CivitAI (API and download redirects)."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def file_host() -> Iterator[FaultServer]:
    """A second server on another port: the file host a download redirects to (a different origin)."""
    with FaultServer() as server:
        yield server
