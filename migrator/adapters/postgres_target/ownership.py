"""The target's ownership record (docs/architecture.md, "One owner"): which run of a plan owns the
plan's tables in this database, a row of `migrator.state` (records.py) beside the data.

The claim is an INSERT on the record's id: of two runs claiming at once, one inserts and the other
finds the row (locked FOR UPDATE for the rest of the claim's transaction). What a claim decides
is adapters/ownership_claim.py's, the MongoDB target's too; the record's form is OwnerRecord's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg

from migrator.adapters import ownership_claim
from migrator.adapters.ownership_record import OwnerRecord
from migrator.adapters.postgres_target import origin, records, reverse_objects
from migrator.adapters.postgres_target.connection import Connections
from migrator.plan.names import forward_origin_name, owner_record_id, reverse_feed_name

T = TypeVar("T")


class Ownership(ownership_claim.ClaimingOwnership):
    """The ownership record of one plan in the target database (claim and slot: ClaimingOwnership)."""

    def __init__(self, connections: Connections, plan_name: str) -> None:
        self._connections = connections
        self.plan_name = plan_name
        self._id = owner_record_id(plan_name)

    @property
    def database_name(self) -> str:
        return self._connections.endpoint.database

    def _call(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        return self._connections.run(work)

    def read(self) -> OwnerRecord | None:
        doc = self._call(lambda conn: records.read(conn, self._id))
        return None if doc is None else OwnerRecord.from_document(doc)

    def _with_store(self, work: Callable[[ownership_claim.ClaimStore], T]) -> T:
        """The claim in one transaction, the record's row locked once found."""
        result: T = self._call(lambda conn: work(_ClaimStore(conn, self._id)))
        return result

    def note(self, run_id: str, facts: Mapping[str, Any]) -> None:
        """Add facts (what the run created) to run `run_id`'s record."""
        self._call(
            lambda conn: conn.execute(
                "UPDATE migrator.state SET doc = jsonb_set(doc, '{facts}', "
                "COALESCE(doc->'facts', '{}'::jsonb) || %s) WHERE id = %s AND doc->>'run_id' = %s",
                [records.to_json(facts), self._id, run_id],
            )
        )

    def release(self, run_id: str, kept: list[str]) -> str:
        """Remove run `run_id`'s records (`kept`: their ids, then its ownership record), forward
        CDC's replication origin (origin.py), reverse sync's slot and publication here
        (reverse_objects.py), and the state table when the run created it and
        nothing else is left in it."""

        def work(conn: psycopg.Connection[Any]) -> str:
            current = records.read(conn, self._id)
            owner = None if current is None else OwnerRecord.from_document(current)
            ownership_claim.check_release(owner, run_id, self.database_name)
            removed = sum(records.delete(conn, r) for r in kept)
            gone = drop_run_objects(conn, self.plan_name, self.database_name)
            dropped = f"; {', '.join(gone)} dropped" if gone else ""
            if owner is None:
                return ownership_claim.release_outcome(removed, owner) + dropped
            records.delete(conn, self._id)
            outcome = ownership_claim.release_outcome(removed, owner) + dropped
            left = conn.execute("SELECT count(*) FROM migrator.state").fetchone()
            if owner.created_collection and left is not None and left[0] == 0:
                conn.execute("DROP TABLE migrator.state")
                return outcome + "; migrator.state dropped (the run created it)"
            return outcome + "; migrator.state kept"

        result: str = self._call(work)
        return result


def drop_run_objects(conn: psycopg.Connection[Any], plan_name: str, database: str) -> list[str]:
    """Reverse sync's slot and publication here (reverse_objects.py) and forward CDC's replication
    origin (origin.py) of plan `plan_name`: what rollback to the start (with the records) and
    `migrator finish` (before them) drop; what was dropped, named."""
    name = forward_origin_name(plan_name, database)
    gone = reverse_objects.drop(conn, reverse_feed_name(plan_name, database))
    return gone + ([f"replication origin {name}"] if origin.drop(conn, name) else [])


class _ClaimStore:
    """The ownership record's row in `migrator.state`, inside the claim's transaction."""

    def __init__(self, conn: psycopg.Connection[Any], record_id: str) -> None:
        self._conn, self._id = conn, record_id

    def ensure(self) -> bool:
        return records.ensure(self._conn)

    def insert(self, record: Mapping[str, Any]) -> bool:
        inserted = self._conn.execute(
            "INSERT INTO migrator.state (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING RETURNING 1",
            [self._id, records.to_json(record)],
        ).fetchone()
        return inserted is not None

    def read(self) -> OwnerRecord | None:
        row = self._conn.execute(
            "SELECT doc FROM migrator.state WHERE id = %s FOR UPDATE", [self._id]
        ).fetchone()
        return None if row is None else OwnerRecord.from_document(records.from_json(row[0]))

    def replace(self, previous_run: str, fields: Mapping[str, Any]) -> bool:
        updated = self._conn.execute(
            "UPDATE migrator.state SET doc = doc || %s WHERE id = %s AND doc->>'run_id' = %s",
            [records.to_json(fields), self._id, previous_run],
        )
        return updated.rowcount > 0
