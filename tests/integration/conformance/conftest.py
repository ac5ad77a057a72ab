"""The conformance suite's `case`: one scenario's source (each adapter in turn, `source_db`),
target database, plan directory and state file (tests/support/conformance.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.conformance import Case
from tests.support.docs import Migration
from tests.support.servers import ExternalServer
from tests.support.sources import SourceDb


@pytest.fixture
def case(
    source_db: SourceDb, mongo_server: Any, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> Iterator[Case]:
    target = Migration(source_db.url, mongo_url, mongo_db_name, tmp_path, tmp_path / "state.db")
    c = Case(source_db, target, tmp_path, own_target=not isinstance(mongo_server, ExternalServer))
    try:
        yield c
    finally:
        c.close()
