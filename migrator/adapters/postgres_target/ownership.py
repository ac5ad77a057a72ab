"""The target's ownership record (docs/architecture.md, "One owner"): which run of a plan owns the
plan's tables in this database, a row of `migrator.state` (records.py) beside the data.

The claim is an INSERT on the record's id: of two runs claiming at once, one inserts and the other
finds the row. The record's form and the refusal are the MongoDB target's (its OwnerRecord reads a
mapping of the same fields)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from migrator.adapters.ownership_record import OwnerRecord, refusal
from migrator.adapters.postgres_target import origin, records, reverse_objects
from migrator.adapters.postgres_target.connection import Connections
from migrator.plan.names import forward_origin_name, legacy_slot_name, owner_record_id, reverse_feed_name
from migrator.redact import redact_text


class Ownership:
    """The ownership record of one plan in the target database."""

    def __init__(self, connections: Connections, plan_name: str) -> None:
        self._connections = connections
        self.plan_name = plan_name
        self._id = owner_record_id(plan_name)

    @property
    def _database(self) -> str:
        return self._connections.endpoint.database

    def _call(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        return self._connections.run(work)

    def read(self) -> OwnerRecord | None:
        doc = self._call(lambda conn: records.read(conn, self._id))
        return None if doc is None else OwnerRecord.from_document(doc)

    def slot(self) -> str:
        owner = self.read()
        return owner.slot if owner is not None and owner.slot else legacy_slot_name(self.plan_name)

    def claim(
        self,
        *,
        run_id: str,
        started_at: str,
        host: str,
        state: str,
        slot: str,
        publication: str,
        replaceable: Callable[[OwnerRecord], bool] = lambda _owner: False,
    ) -> OwnerRecord:
        """Make run `run_id` the owner, or raise OwnedByAnotherRun naming the owner (see the
        MongoDB target's Ownership.claim: the same rules)."""
        fields = {
            "plan": self.plan_name,
            "run_id": run_id,
            "started_at": started_at,
            "host": host,
            "state": redact_text(state),
            "slot": slot,
            "publication": publication,
            "claimed_at": datetime.datetime.now(datetime.UTC),
        }

        def work(conn: psycopg.Connection[Any]) -> OwnerRecord:
            created = records.ensure(conn)
            inserted = conn.execute(
                "INSERT INTO migrator.state (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING RETURNING 1",
                [self._id, records.to_json({**fields, "created_collection": created, "facts": {}})],
            ).fetchone()
            if inserted is None:
                row = conn.execute(
                    "SELECT doc FROM migrator.state WHERE id = %s FOR UPDATE", [self._id]
                ).fetchone()
                assert row is not None  # a record is deleted only by its run's release
                owner = OwnerRecord.from_document(records.from_json(row[0]))
                if owner.run_id != run_id and not replaceable(owner):
                    raise refusal(owner, self._database)
                conn.execute(
                    "UPDATE migrator.state SET doc = doc || %s WHERE id = %s",
                    [records.to_json(fields), self._id],
                )
            doc = records.read(conn, self._id)
            assert doc is not None
            return OwnerRecord.from_document(doc)

        claimed: OwnerRecord = self._call(work)
        return claimed

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
            if owner is not None and owner.run_id != run_id:
                raise refusal(owner, self._database, this_run=run_id)
            removed = sum(records.delete(conn, r) for r in kept)
            name = forward_origin_name(self.plan_name, self._database)
            gone = reverse_objects.drop(conn, reverse_feed_name(self.plan_name, self._database))
            gone += [f"replication origin {name}"] if origin.drop(conn, name) else []
            dropped = f"; {', '.join(gone)} dropped" if gone else ""
            if owner is None:
                return f"{removed} record(s) deleted; there was no ownership record{dropped}"
            records.delete(conn, self._id)
            outcome = f"{removed} record(s) and the ownership record deleted{dropped}"
            left = conn.execute("SELECT count(*) FROM migrator.state").fetchone()
            if owner.created_collection and left is not None and left[0] == 0:
                conn.execute("DROP TABLE migrator.state")
                return outcome + "; migrator.state dropped (the run created it)"
            return outcome + "; migrator.state kept"

        result: str = self._call(work)
        return result
