"""Range checksums on a PostgreSQL target (adapters/base.py RangeChecksums; docs/architecture.md,
"Verify by checksums"): the same forms, SQL and pinned text settings as a PostgreSQL source's
(adapters/postgres/checksum_forms.py, checksums.py), so that a PostgreSQL -> PostgreSQL verify hashes each key
range on both servers and compares row by row only where the digests differ.

The target's tables are named as the collections and hold the mapped columns under their target
names; key ranges are the source's key text, cast to the key's type (the target's key columns
have the source's types).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.base import RangeDigest
from migrator.adapters.postgres.checksum_forms import forms_of
from migrator.adapters.postgres.checksums import digest, digest_query, pin
from migrator.adapters.postgres_target.connection import Connections


class TargetChecksums:
    """Hashes on the target through its per-thread connections, each in a transaction of its
    own (the pinned settings last as long)."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections

    def forms(self, table: str, columns: Sequence[str], key: Sequence[str]) -> list[str]:
        found: list[str] = self._connections.run(lambda conn: forms_of(conn, table, columns, key))
        return found

    def checksum(
        self,
        form: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> RangeDigest:
        query, params = digest_query(form, table, columns, key, key_types, lo, hi)

        def work(conn: psycopg.Connection[Any]) -> tuple[int, str]:
            pin(conn)
            return digest(conn, query, params)

        rows, hashed = self._connections.run(work)
        return RangeDigest(rows, hashed)

    def close(self) -> None:
        pass  # the connections are the target's (closed with it)
