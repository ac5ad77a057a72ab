"""Dual writes for SQLAlchemy sessions: what a session commits to mapped tables is mirrored.

- `after_flush`: the unit of work's rows of mapped tables (new, changed, deleted objects) are
  turned into the documents they touch (migrator.mapping.affected), with the old values the
  attribute history keeps, so a child that moved names both parents. Collected in
  `session.info`, nothing is read or written yet.
- `after_commit` / `after_rollback` remember how the transaction ended (a savepoint's events
  come first, the outermost transaction's last);
- `after_transaction_end` of the outermost transaction: committed, the collected documents
  are read from PostgreSQL through the mapping and replaced in MongoDB (DualWrite's mirror);
  rolled back, they are forgotten.

Mirroring happens in the committing thread, after the database commit: `session.commit()`
returns once the target has the documents (or the failure is reported). It never raises.
Writes the unit of work does not see (Core or text statements, ORM bulk UPDATE/DELETE) need
`DualWrite.touch(session, collection, ids)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction
from sqlalchemy.orm.attributes import NO_VALUE
from sqlalchemy.orm.exc import UnmappedColumnError

from migrator.mapping.affected import Affected, Row

if TYPE_CHECKING:
    from migrator.dualwrite.core import DualWrite

PENDING = "migrator.dualwrite.pending"
COMMITTED = "migrator.dualwrite.committed"
DEFAULT_SCHEMA = "public"


class SessionMirror:
    def __init__(self, dual: DualWrite, *, default_schema: str = DEFAULT_SCHEMA) -> None:
        self._dual = dual
        self._default_schema = default_schema
        self._tables = dual.tables

    def install(self, target: Any) -> None:
        """Listen on a Session, a sessionmaker or the Session class."""
        event.listen(target, "after_flush", self._after_flush)
        event.listen(target, "after_commit", self._after_commit)
        event.listen(target, "after_rollback", self._after_rollback)
        event.listen(target, "after_transaction_end", self._after_transaction_end)

    def remove(self, target: Any) -> None:
        event.remove(target, "after_flush", self._after_flush)
        event.remove(target, "after_commit", self._after_commit)
        event.remove(target, "after_rollback", self._after_rollback)
        event.remove(target, "after_transaction_end", self._after_transaction_end)

    @staticmethod
    def touch(session: Session, refs: list[Affected]) -> None:
        session.info.setdefault(PENDING, []).extend(refs)

    # -- events ----------------------------------------------------------------------------------

    def _after_flush(self, session: Session, flush_context: UOWTransaction) -> None:
        changes: list[tuple[str, Row | None, Row | None]] = []
        for kind, objects in (
            ("insert", session.new),
            ("update", session.dirty),
            ("delete", session.deleted),
        ):
            for obj in objects:
                changes.extend(self._rows(obj, kind))
        if changes:
            refs = self._dual.affected(changes)
            self.touch(session, refs)

    def _after_commit(self, session: Session) -> None:
        session.info[COMMITTED] = True

    def _after_rollback(self, session: Session) -> None:
        session.info[COMMITTED] = False

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is not None:
            return  # a savepoint or a flush's subtransaction: the outermost one decides
        refs = session.info.pop(PENDING, None)
        committed = session.info.pop(COMMITTED, False)
        if committed and refs:
            self._dual.mirror_refs(refs)

    # -- rows ------------------------------------------------------------------------------------

    def _rows(self, obj: Any, kind: str) -> list[tuple[str, Row | None, Row | None]]:
        """(table, old row, new row) for each mapped table the object's class writes to."""
        state = sqlalchemy.inspect(obj)
        mapper = state.mapper
        out: list[tuple[str, Row | None, Row | None]] = []
        for table in mapper.tables:
            name = f"{getattr(table, 'schema', None) or self._default_schema}.{getattr(table, 'name', '')}"
            if name not in self._tables:
                continue
            old: Row = {}
            new: Row = {}
            for column in table.columns:
                try:
                    prop = mapper.get_property_by_column(column)
                except UnmappedColumnError:
                    continue
                attr = state.attrs[prop.key]
                current = attr.loaded_value
                if current is not NO_VALUE:
                    new[column.name] = current
                history = attr.history
                if history.deleted:
                    old[column.name] = history.deleted[0]
                elif not history.added and current is not NO_VALUE:
                    old[column.name] = current
                # else: set without its old value ever loaded: the old row does not say.
            if kind == "insert":
                out.append((name, None, new))
            elif kind == "delete":
                out.append((name, old, None))
            else:
                out.append((name, old, new))
        return out
