"""CDC batches into the target tables with their checkpoint (invariant 3): a batch's writes (to
the effect of their order, batch.py) and the checkpoint row of `migrator.state` commit in one transaction
(docs/architecture.md, "Tables as collections").

A table is a flat collection, so a batch holds only whole-row and column writes by primary key:
`replace` (upsert the row), `update` (`$set` of columns; a row that is not there stays absent, as
MongoDB's update without upsert), `rekey` (the key changed: the row moves), `delete`, and
`delete_many` (a TRUNCATE applied). Anything else is refused: it would come from an embed.

Each batch commits under the plan's forward replication origin (origin.py), so that reverse sync,
reading the target's changes, skips it (docs/architecture.md, "Echo prevention on a PostgreSQL
target").
"""

from __future__ import annotations

import dataclasses
import datetime
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from migrator.adapters.base import WriteOp
from migrator.adapters.postgres_target import origin, records, staging
from migrator.adapters.postgres_target.batch import TableWrites, steps
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.rows import TargetTable, document_of
from migrator.adapters.postgres_target.writer import delete_keys, update_columns, upsert, upsert_each
from migrator.errors import AuthenticationFailed, TargetLostWrites, TerminalError

CurrentRow = Callable[[str, Any], dict[str, Any] | None]


class TableApplier:
    def __init__(
        self,
        connections: Connections,
        checkpoint_id: str,
        current: CurrentRow | None = None,
        *,
        origin_name: str | None = None,
    ) -> None:
        self._connections = connections
        self._id = checkpoint_id
        self._current = current
        self._origin = origin_name  # None: batches are not tagged (no reverse sync to spare)
        self._tagged = False  # the origin was bound once (so it exists and may be bound)
        # The checkpoint this applier committed last (or first read): a stored one behind it
        # means the target lost acknowledged writes (as the MongoDB applier checks).
        self._written: int | None = None
        # The staging tables each connection has (staging.py): created in a batch's
        # transaction, so known only once it committed.
        self._staging: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = (
            weakref.WeakKeyDictionary()
        )

    def ensure_indexes(self, paths: dict[str, set[str]]) -> list[str]:
        if any(paths.values()):
            raise TerminalError("a PostgreSQL target takes flat tables: no embedded paths to index")
        return []

    def checkpoint(self) -> dict[str, Any] | None:
        stored = self._connections.run(lambda conn: records.read(conn, self._id))
        position = None if stored is None or stored.get("position") is None else int(stored["position"])
        if self._written is not None and (position is None or position < self._written):
            raise self._lost(position)
        if position is not None:
            self._written = position
        return stored

    def _lost(self, stored: int | None) -> TargetLostWrites:
        assert self._written is not None
        text = "none" if stored is None else str(stored)
        return TargetLostWrites(
            f"the target lost writes it had acknowledged: its CDC checkpoint ({records.STATE_TABLE} {self._id}) is "
            f"at {text}, but this run committed {self._written} and confirmed the source's slot up to "
            "it, so the changes in between are neither in the target nor kept by the source",
            hint="the target did not keep a committed transaction (fsync or synchronous_commit off, a restore): "
            "copy the tables again (migrator rollback, then migrator run)",
        )

    def apply(
        self,
        ops: Sequence[WriteOp],
        position: int | None,
        position_text: str | None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply `ops` to the effect of applying them in order (batch.py folds each row's writes
        and groups them per table); with `position`, record it as the checkpoint in the same
        transaction (with `fields` beside it: what lag is measured from)."""

        for op in ops:
            self._check(op)
        planned = steps([self._writable(op) for op in ops])
        staged: set[str] = set()  # staging tables this batch wrote into (staging.py)
        name = self._origin
        session: list[psycopg.Connection[Any]] = []

        def work(conn: psycopg.Connection[Any]) -> None:
            staged.clear()
            session[:] = [conn]
            # As PostgreSQL's own subscriber: the source checked foreign keys (and ran triggers)
            # at commit, and a batch writes table by table, so the target checks neither
            # (docs/architecture.md, "After the copy").
            self._begin(conn)
            kept: list[psycopg.Cursor[Any]] = []

            # The checkpoint goes with the last staged table's merge, in its pipeline (one round
            # trip less a batch); it is checked once the pipeline has its results.
            def record(c: psycopg.Connection[Any]) -> None:
                assert position is not None
                kept.append(self._update_record(c, position, position_text, fields or {}))

            pipelined = position is not None and self._written is not None
            for number, step in enumerate(planned, start=1):
                if isinstance(step, TableWrites):
                    last = pipelined and number == len(planned)
                    self._write_table(conn, step, staged, then=record if last else None)
                else:
                    self._write(conn, step)
            if position is not None and not kept:
                self._record(conn, position, position_text, fields or {})
            elif kept:
                self._check_record(conn, kept[0])

        try:
            if name is not None and not self._tagged:
                self._connections.outside_transaction(lambda conn: origin.ensure(conn, name))
            self._connections.run_opened(work, origin.commit(released=name is not None))
        except AuthenticationFailed as exc:
            if self._origin is not None and not self._tagged:
                exc.hint = origin.PRIVILEGE_HINT  # the origin functions are what it may not run
            raise
        # A failed batch's connection was closed (Connections.run_opened), which released the origin.
        if staged:
            self._staging.setdefault(session[0], set()).update(staged)
        if position is not None:
            self._written = position

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        """Open the batch's transaction as PostgreSQL's own subscriber writes (replica role),
        bound to the forward origin (origin.py): BEGIN and one statement sent together, one
        round trip (a batch's round trips are most of its time when the reading thread keeps
        the interpreter busy: docs/architecture.md, "How a batch is written"). The COMMIT
        releases the origin in the same way (`origin.commit`)."""
        if self._origin is None:
            conn.execute(origin.begin(None))
            return
        try:
            conn.execute(origin.begin(self._origin))
        except psycopg.errors.ObjectInUse:
            raise origin.in_use(self._origin) from None
        except psycopg.errors.ConfigurationLimitExceeded:
            raise origin.states_full(self._origin, self._connections.endpoint.name) from None
        self._tagged = True

    def _record(
        self, conn: psycopg.Connection[Any], position: int, text: str | None, fields: Mapping[str, Any]
    ) -> None:
        if self._written is None:
            record = {
                **fields,
                "position": position,
                "position_text": text,
                "updated_at": datetime.datetime.now(datetime.UTC),
            }
            records.ensure(conn)
            conn.execute(
                "INSERT INTO migrator.state (id, doc) VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET doc = state.doc || EXCLUDED.doc",
                [self._id, records.to_json(record)],
            )
            return
        self._check_record(conn, self._update_record(conn, position, text, fields))

    def _update_record(
        self, conn: psycopg.Connection[Any], position: int, text: str | None, fields: Mapping[str, Any]
    ) -> psycopg.Cursor[Any]:
        """The checkpoint written over the one this applier committed last (or this one, a
        retry); its cursor says whether it was there (`_check_record`)."""
        record = {
            **fields,
            "position": position,
            "position_text": text,
            "updated_at": datetime.datetime.now(datetime.UTC),
        }
        return conn.execute(
            "UPDATE migrator.state SET doc = doc || %s WHERE id = %s "
            "AND (doc->>'position')::numeric = ANY(%s::numeric[]) RETURNING 1",
            [records.to_json(record), self._id, [self._written, position]],
        )

    def _check_record(self, conn: psycopg.Connection[Any], cursor: psycopg.Cursor[Any]) -> None:
        if cursor.fetchone() is None:
            stored = records.read(conn, self._id)
            raise self._lost(None if stored is None else stored.get("position"))

    def _writable(self, op: WriteOp) -> WriteOp:
        """`op` without the values of the table's GENERATED columns (rows.py `writable`): CDC
        computes a source's stored generated columns, and the target computes its own."""
        if op.kind not in ("update", "rekey"):
            return op  # a whole row is written by its writable columns only
        generated = self._connections.table(op.collection).generated
        if not generated:
            return op
        if op.kind == "update":
            changes = {k: v for k, v in op.update.get("$set", {}).items() if k not in generated}
            return dataclasses.replace(op, update={"$set": changes})
        extra = dict(op.extra)
        for part in ("set", "defaults"):
            extra[part] = {k: v for k, v in (extra.get(part) or {}).items() if k not in generated}
        return dataclasses.replace(op, extra=extra)

    def _check(self, op: WriteOp) -> None:
        if op.reads:
            raise TerminalError(
                f"{op.collection}: a change reads embedded content, which a table does not have"
            )
        if op.kind == "update" and (not isinstance(op.update, dict) or set(op.update) - {"$set"}):
            raise TerminalError(f"{op.collection}: update {op.update!r} is not a column update")
        if op.kind not in ("replace", "update", "delete", "delete_many", "rekey"):
            raise TerminalError(f"{op.collection}: a PostgreSQL target cannot apply a '{op.kind}' write")

    def _write_table(
        self,
        conn: psycopg.Connection[Any],
        writes: TableWrites,
        staged: set[str],
        *,
        then: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        """One table's rows of a batch: deletes, whole rows, then column updates (batch.py);
        many of them through a staging table (staging.py)."""
        table = self._connections.table(writes.table)
        if len(writes) >= staging.MIN_ROWS:
            name = staging.staging_name(table)
            if name not in staged and name not in self._staging.get(conn, ()):
                staging.create(conn, table, name)
            staging.write(conn, table, writes, name, fresh=name not in staged, then=then)
            staged.add(name)
            return
        if writes.deletes:
            delete_keys(conn, table, list(writes.deletes.values()))
        if writes.rows:
            upsert_each(conn, table, list(writes.rows.values()))
        for names, changes in writes.column_updates():
            update_columns(conn, table, names, changes)

    def _write(self, conn: psycopg.Connection[Any], op: WriteOp) -> None:
        table = self._connections.table(op.collection)
        if op.kind == "replace":
            upsert(conn, table, [op.update])
        elif op.kind == "update":
            self._update(conn, table, op)
        elif op.kind == "delete":
            query = sql.SQL("DELETE FROM {} WHERE {}").format(table.identifier, table.key_match())
            conn.execute(query, table.key_values(op.filter["_id"]))
        elif op.kind == "delete_many":
            conn.execute(sql.SQL("DELETE FROM {}").format(table.identifier))
        elif op.kind == "rekey":
            self._rekey(conn, table, op)
        else:
            raise TerminalError(f"{op.collection}: a PostgreSQL target cannot apply a '{op.kind}' write")

    def _update(self, conn: psycopg.Connection[Any], table: TargetTable, op: WriteOp) -> None:
        changes = dict(op.update.get("$set", {}))
        if set(op.update) - {"$set"}:
            raise TerminalError(f"{op.collection}: update {sorted(op.update)} is not a column update")
        if not changes:
            return
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(n), table.placeholder(n)) for n in changes
        )
        query = sql.SQL("UPDATE {} SET {} WHERE {}").format(table.identifier, assignments, table.key_match())
        params = [table.value(n, v) for n, v in changes.items()] + table.key_values(op.filter["_id"])
        conn.execute(query, params)

    def _rekey(self, conn: psycopg.Connection[Any], table: TargetTable, op: WriteOp) -> None:
        """The row's key changed: move it (its stored columns, with the change's over them)."""
        new_id = op.extra["new_id"]
        query = sql.SQL("DELETE FROM {} WHERE {} RETURNING *").format(table.identifier, table.key_match())
        with conn.cursor(row_factory=dict_row) as cur:
            old = cur.execute(query, table.key_values(op.filter["_id"])).fetchone()
        if old is None and self._current is not None:
            # Not stored (a snapshot read the row after the change): the row as the source has it now.
            document = self._current(op.collection, new_id)
            if document is None:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {}").format(table.identifier, table.key_match()),
                    table.key_values(new_id),
                )
                return
        else:
            document = {} if old is None else document_of(table, old)
            document.update(op.extra["defaults"] or {})
            document.update(op.extra["set"])
        document["_id"] = new_id
        upsert(conn, table, [document])
