"""The `mig` fixture: one test's Migration (tests/support/docs.py) on fresh databases.

Registered for every test through `pytest_plugins` in tests/conftest.py. What differs between
test modules is a fixture of its own that the module overrides (pytest's fixture overriding):

- `source_schema`: SQL run on the source before the test (none by default);
- `source_url`: the source database (by default `pg_url`, a fresh database on the session's
  server; e.g. a URL with a password, or a database on a cluster with other settings).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.docs import Migration


@pytest.fixture
def source_url(pg_url: str) -> str:
    """The source database's URL: a fresh database on the session's PostgreSQL."""
    return pg_url


@pytest.fixture
def source_schema() -> Sequence[str]:
    """SQL statements the source database starts with: none, unless the test module overrides this."""
    return ()


@pytest.fixture
def mig(
    source_url: str,
    mongo_url: str,
    mongo_db_name: str,
    tmp_path: Path,
    tmp_state_path: Path,
    source_schema: Sequence[str],
) -> Iterator[Migration]:
    m = Migration(source_url, mongo_url, mongo_db_name, tmp_path, tmp_state_path)
    if source_schema:
        m.sql(*source_schema)
    try:
        yield m
    finally:
        m.close()
