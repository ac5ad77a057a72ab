"""Fixtures that change a setting of the session's PostgreSQL server for one test, and reset it.

Registered for every test through `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest


@pytest.fixture
def small_decoding_memory(pg_server: Any) -> Iterator[None]:
    """logical_decoding_work_mem at its minimum, so that large transactions are streamed."""
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        try:
            conn.execute("ALTER SYSTEM SET logical_decoding_work_mem = '64kB'")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("ALTER SYSTEM needs a superuser on the test server")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET logical_decoding_work_mem")
            conn.execute("SELECT pg_reload_conf()")
