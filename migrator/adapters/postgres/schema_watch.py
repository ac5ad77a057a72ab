"""Is each relation on the stream still what the plan maps? The schema checks of a run that
follows a PostgreSQL source (docs/architecture.md, "Schema changes", "The run's publication").

A Relation message says how the changes after it were logged; the catalog is ahead of the
stream and the only witness of what the stream never shows (a dropped column that nobody
updates, a publication altered, a partition attached with rows). Each check compares what it
sees with what the mapping was built on and raises a TerminalError that says what changed and
how to go on; a column the mapping takes that was added since flows through (the phase maps
it, SchemaHost.table_changed) and the publication is widened to carry it.

The mapping's side comes in as plain data (adapters/base.py MappedColumns); what only the phase
can do (map again, tell the user, mark a column for its backfill) it asks of its SchemaHost.
The relations announced on the stream (adapters/postgres/relations.py) are kept here too: the
ChangeReader of each stream decodes with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from migrator.adapters.base import (
    CaptureStream,
    Change,
    ColumnInfo,
    MappedColumns,
    SchemaHost,
    SourceInfo,
    TableInfo,
)
from migrator.adapters.postgres.changes import ChangeReader
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.generated import GeneratedColumns, StoredColumn
from migrator.adapters.postgres.inspect import PostgresInspector, split_table
from migrator.adapters.postgres.partitions import Partitions, quoted, quoted_identifier
from migrator.adapters.postgres.pgoutput import UNCHANGED, Relation
from migrator.adapters.postgres.publication import publishing, restore_statements
from migrator.adapters.postgres.relations import Relations, RelationState, column_parsers, computed_columns
from migrator.adapters.postgres.replication import PollingStream, ReplicationStream
from migrator.adapters.postgres.shapes import (
    SchemaChange,
    ShapeReader,
    TableShape,
    compare,
    compare_publication,
    shapes_from_json,
)
from migrator.adapters.postgres.snapshot import PublicationManager
from migrator.adapters.postgres.values import ValueParser
from migrator.errors import TerminalError


class SchemaWatch:
    """The schema checks of one CDC phase (adapters/base.py ChangeSchema). `recorded` gives the
    snapshot's recorded shape of the mapped tables (JSON), None for a run begun before it was
    recorded: then the catalog's when the first check runs is the baseline."""

    def __init__(
        self,
        endpoint: PgEndpoint,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> None:
        self._endpoint = endpoint
        self.publication = publication
        self._host = host
        self._recorded = recorded
        self._parser = ValueParser()
        # The relations announced on the stream: how their changes are read
        # (adapters/postgres/changes.py); registered here, since what a table's columns must be is
        # the mapping's.
        self._relations = Relations()
        self._partitions = Partitions(endpoint)
        self._generated = GeneratedColumns(endpoint)
        self._shapes = ShapeReader(endpoint)
        # The mapped tables' shape that changes are checked against: the snapshot's, else (a run
        # begun before it was recorded) the catalog's when CDC started.
        self._baseline: dict[str, TableShape] | None = None
        self._accepted_leaves: set[int] = set()  # partitions added since, checked: no rows from before
        # The source's WAL position before the last publication check that found the run's
        # publication whole: no checkpoint goes past it unchecked (docs/architecture.md, "The
        # run's publication").
        self._publication_vouched = 0
        self._widened: set[tuple[str, str]] = set()  # (table, column) added since and now published
        self.remap(source_info, mapped)

    @property
    def vouched(self) -> int:
        return self._publication_vouched

    @property
    def baseline(self) -> Mapping[str, TableShape] | None:
        return self._baseline

    def remap(self, source_info: SourceInfo, mapped: MappedColumns) -> None:
        self._source_info = source_info
        self._mapped = mapped
        tables = source_info.tables
        self._expected_columns: dict[str, dict[str, ColumnInfo]] = {
            name: {c.name: c for c in info.columns} for name, info in tables.items()
        }
        # Per table, the publication's column list (None: every column is published): a Relation
        # message names only these (docs/architecture.md, "Publication column lists").
        version = source_info.server.version_num
        self._published: dict[str, frozenset[str] | None] = {}
        for name, info in tables.items():
            listed = publishing(info, mapped.read.get(name), version).columns
            self._published[name] = None if listed is None else frozenset(listed)
        # Per table, the key columns that say which document or element its row is (mapping's).
        self._locating: Mapping[str, tuple[str, ...]] = mapped.locating

    def reader(self, stream: CaptureStream, *, applied: Callable[[], int], skip_origin: str) -> ChangeReader:
        assert isinstance(stream, ReplicationStream | PollingStream)  # this source's own (change_stream)
        return ChangeReader(
            stream, self._relations, self._partitions, applied=applied, skip_origin=skip_origin
        )

    def restart(self) -> None:
        self._relations.clear()  # a new stream sends its Relation messages again

    def close(self) -> None:
        self._partitions.close()
        self._generated.close()
        self._shapes.close()

    def table(self, table: str) -> TableInfo | None:
        with self._endpoint.connect() as conn:
            return PostgresInspector(conn, self._endpoint.name, self._endpoint.secrets).table(table)

    # -- relations ---------------------------------------------------------------------------------

    def relation(self, relation: Any) -> None:
        message: Relation = relation
        if message.relation_id in self._relations:
            # Sent again within a stream: the relation's catalog entry changed (DDL). Some DDL
            # changes nothing a Relation message shows (a column dropped and added again keeps
            # name and type): compare the shapes now rather than within 5 s (docs/architecture.md,
            # "Schema changes").
            self.check_schema()
        found = self._mapped_table(message)
        if found is None:
            return  # not a mapped table (a publication is never wider than the plan, but be safe)
        table, leaf = found
        unsure = self._leaf_identity(message, leaf, table)
        absent = self._check_columns(message, table)
        expected = self._expected_columns[table]
        mapped = self._mapped.columns(table)
        computed = computed_columns(
            message,
            table,
            {n: c for n, c in absent.items() if n in mapped},
            expected,
            self._generated,
            self._parser,
        )
        state = RelationState(
            table,
            tuple(c.name for c in message.columns),
            column_parsers(message, expected, self._parser, self._mapped.undecoded.get(table, ())),
            [c.is_key for c in message.columns],
            leaf=leaf,
            unsure=unsure,
            computed=computed,
        )
        self._relations.register(message.relation_id, state)

    def columns_of(self, relation: Any) -> tuple[str, frozenset[str]] | None:
        message: Relation = relation
        state = self._relations.get(message.relation_id)
        if state is None:
            return None
        return state.table, frozenset(c.name for c in message.columns)

    def _mapped_table(self, message: Relation) -> tuple[str, str | None] | None:
        """The mapped table (as the plan names it) whose changes the relation's are, and the leaf
        partition's own name where the relation is one; None: not a mapped table."""
        table = message.table
        if table in self._expected_columns:
            return table, None
        renamed = self._renamed(message)
        if renamed is not None:
            return renamed, None
        # A leaf partition of a mapped partitioned table (docs/architecture.md, "Partitioned
        # tables"): its rows are the root's, read by column name (a leaf may order its columns
        # otherwise, or have dropped ones).
        root = self._partitions.root_of(message.relation_id)
        if root is None or root not in self._expected_columns:
            return None
        return root, table

    def _check_columns(self, message: Relation, table: str) -> dict[str, StoredColumn]:
        """Compare the relation's columns with what the mapping was built on (a difference stops
        the run or rebuilds the mapping: columns_changed); the stored generated columns the
        message leaves out are returned."""
        current = {c.name: c.type_oid for c in message.columns}
        # Stored generated columns are the relation's even where the message leaves them out.
        stored = self._generated.stored(message.relation_id)
        absent = {n: c for n, c in stored.items() if n not in current}
        current.update({n: c.type_oid for n, c in absent.items()})
        listed = self._published.get(table)
        known = {
            n: c.type_oid
            for n, c in self._expected_columns[table].items()
            if listed is None or n in listed or c.generated is not None or n in stored
        }
        if current != known:
            self.columns_changed(table, current)
        return absent

    def _renamed(self, message: Relation) -> str | None:
        """The mapped table (as the plan names it) that `message` names otherwise: the same oid
        under a name given since the snapshot. Its change may come before the periodic catalog
        check sees the rename, so the run stops here, naming both. Renamed back since (the
        catalog names it as the plan does), the changes logged in between are its own: followed."""
        if self._baseline is None:
            return None
        table = next((t for t, shape in self._baseline.items() if shape.oid == message.relation_id), None)
        if table is None:
            return None
        live = self._shapes.read([table], self._baseline).get(table)
        if live is None:
            self._schema_change(SchemaChange(table, "table dropped", self._baseline[table].name), False)
        elif live.name != self._baseline[table].name:
            self._schema_change(SchemaChange(table, "table renamed", live.name), False)
        return table

    def _leaf_identity(self, message: Relation, leaf: str | None, root: str) -> tuple[str, ...]:
        """Check, before any change of mapped table `root` (or of its leaf partition `leaf`) is
        applied, that its replica identity carries what the mapping was validated against: the
        table's identity columns, key-flagged in its Relation message, or REPLICA IDENTITY FULL.
        A table's identity may change while the run follows (ALTER TABLE ... REPLICA IDENTITY,
        which makes pgoutput send a new Relation message). The identity flagged is the one the
        changes that follow were logged under; if the catalog has it fixed since, those changes
        are checked one by one instead (the columns returned)."""
        info = self._source_info.tables[root]
        # What the mapping keys by, of the identity it was validated against: a FULL identity
        # names every column, but only the key columns say which document or element a change is
        # (an identity narrowed to the key loses nothing the mapping needs).
        locating = set(self._locating.get(root, ()))
        needed = tuple(c for c in info.identity_columns if c in locating) or info.identity_columns
        flagged = {c.name for c in message.columns if c.is_key}
        missing = [c for c in needed if c not in flagged]
        if message.replica_identity == "f" or not missing:
            return ()
        now = self._partitions.identity(message.relation_id, [c.name for c in message.columns])
        if now is not None and now.covers(needed):
            return tuple(needed)
        if leaf is None:
            usable = (
                info.primary_key and not info.primary_key_deferrable and set(needed) <= set(info.primary_key)
            )
            fix = (
                f"ALTER TABLE {quoted(root)} REPLICA IDENTITY DEFAULT;"
                if usable
                else f"ALTER TABLE {quoted(root)} REPLICA IDENTITY FULL;"
            )
            identity = now.describe() if now is not None else f"({', '.join(sorted(flagged)) or 'none'})"
            raise TerminalError(
                f"the replica identity of {root} was changed on the source while the migration ran: it is now "
                f"{identity}, without {', '.join(missing)}, which the mapping keys by: its updates and deletes "
                "would not say which document they change",
                hint=f"{fix} then `migrator run` again (a change logged meanwhile whose old row lacks "
                f"{', '.join(missing)} stops the run again: then roll back and run again)",
            )
        raise TerminalError(
            f"partition {leaf} of {root} has a replica identity ({', '.join(sorted(flagged)) or 'none'}) without "
            f"{', '.join(missing)}: its updates and deletes would not say which document of {root} they change",
            hint=f"ALTER TABLE {quoted(leaf)} REPLICA IDENTITY FULL; then `migrator run` again (or REPLICA IDENTITY "
            f"USING INDEX on a unique index of {leaf} over {', '.join(needed)})",
        )

    def check_located(self, table: str, new: dict[str, Any]) -> None:
        """An UPDATE whose row still lacks a key column after fill_unchanged (stored out of line,
        unchanged, and not in the replica identity, so neither tuple carries it): the change cannot
        be placed. Stop rather than write the marker or guess. (Preflight refuses a key outside the
        replica identity, so this guards a mapping that changed its identity mid-run.)"""
        for column in self._locating.get(table, ()):
            if new.get(column) is UNCHANGED:
                break
        else:
            return
        missing = [c for c in self._locating[table] if new.get(c) is UNCHANGED]
        raise TerminalError(
            f"an UPDATE of {table} does not carry {', '.join(missing)} (a value stored out of line that it "
            "did not change, and not in the replica identity): which document or element it changes is not known",
            hint=f"ALTER TABLE {quoted(table)} REPLICA IDENTITY FULL, so that PostgreSQL logs it; then roll back "
            "(`migrator rollback`) and run again, since changes logged before cannot be placed",
        )

    # -- stored generated columns (docs/architecture.md, "Stored generated columns") ---------------

    def to_compute(self, change: Change) -> frozenset[str]:
        assert change.computed is not None and change.texts is not None and change.new is not None
        return frozenset(change.computed.to_compute(change.table, change.new, change.texts))

    def complete(self, pending: Sequence[tuple[Change, frozenset[str]]]) -> None:
        """Compute the generated columns of changes decoded without them: one statement per
        relation (and set of columns)."""
        groups: dict[tuple[int, frozenset[str]], list[Change]] = {}
        for change, compute in pending:
            if compute:
                groups.setdefault((id(change.computed), compute), []).append(change)
        for (_, names), members in groups.items():
            computed = members[0].computed
            assert computed is not None
            generated = computed.generated
            if names != set(generated.columns):
                generated = generated.only(names)
            results = self._generated.evaluate(generated, [c.texts or {} for c in members])
            for change, values in zip(members, results, strict=True):
                new = change.new
                assert new is not None
                for name, value in zip(generated.columns, values, strict=True):
                    new[name] = None if value is None else computed.parsers[name](value)

    # -- the catalog -------------------------------------------------------------------------------

    def check_schema(self) -> None:
        """Compare the mapped tables' shape with the catalog's: what would make rows vanish or
        appear without a change, or the mapping read what is no longer there, stops the run
        (terminal: the checkpoint stays where it was). The catalog is ahead of the stream, so
        this may stop before the change that made it is reached: that is fine."""
        tables = list(self._source_info.tables)
        first = self._baseline is None
        if self._baseline is None:
            recorded = self._recorded()
            if recorded is None:
                self._baseline = self._shapes.read(tables)
                return
            self._baseline = shapes_from_json(recorded)
        live = self._shapes.read(tables, self._baseline)
        for change in compare(self._baseline, live):
            self._schema_change(change, first)
        for table, relation in self._shapes.unlogged(live):
            what = relation if relation == table else f"partition {relation} of {table}"
            raise TerminalError(
                f"{what} is UNLOGGED (made or created so on the source while the migration ran): its changes are "
                "not written to the WAL, so they never reach the target",
                hint=f"ALTER TABLE {quoted(relation)} SET LOGGED; then roll back (`migrator rollback`) and run again: "
                "rows written while it was UNLOGGED never passed through the stream",
            )

    def check_publication(self) -> None:
        """The run's publication must still publish what the run needs: pgoutput sends nothing of
        a table, a column or a kind of change it no longer publishes, so the catalog is the only
        witness (docs/architecture.md, "The run's publication"). Terminal, naming what changed."""
        version = self._source_info.server.version_num
        tables = list(self._source_info.tables)
        position, state = self._shapes.publication(self.publication, version)
        live = self._shapes.read(tables, self._baseline)
        needed: dict[str, frozenset[str]] = {}
        ordered: dict[str, list[str] | None] = {}
        for table in tables:
            listed = self._published.get(table)
            expected = self._expected_columns.get(table, {})
            ordered[table] = None if listed is None else [c for c in expected if c in listed]
            needed[table] = (
                listed
                if listed is not None
                else frozenset(n for n, c in expected.items() if c.generated is None)
            )
        changes = compare_publication(state, live, needed)
        if not changes:
            self._publication_vouched = position
            return
        statements = restore_statements(
            self.publication,
            ordered,
            version,
            options=any(c.options for c in changes),
            table_set=state is not None and any(not c.options for c in changes),
        )
        raise TerminalError(
            f"publication {self.publication}, through which this run receives the source's changes, was altered "
            f"on the source while the migration ran: {'; '.join(c.what for c in changes)}. PostgreSQL sends "
            "nothing of what a publication does not publish, so changes made since may be missing from the target",
            hint=f"restore it: {' '.join(statements)} then `migrator run` resumes, and `migrator verify --repair` "
            "copies what changed meanwhile (or roll back with `migrator rollback` and run again)",
        )

    def _schema_change(self, change: SchemaChange, first: bool) -> None:
        if change.kind in ("table dropped", "table renamed"):
            self._table_gone(change)
        elif change.kind.startswith("column"):
            self._column_change(change, first)
        elif change.kind.startswith("partition"):
            self._partition_change(change)

    def _table_gone(self, change: SchemaChange) -> None:
        table, subject = change.table, change.subject
        if change.kind == "table dropped":
            raise TerminalError(
                f"table {table} was dropped (DROP TABLE) on the source while the migration ran",
                hint="restore it, or roll back (`migrator rollback`) and run again with a plan without it",
            )
        raise TerminalError(
            f"table {table} was renamed to {subject} ({_rename_kind(table, subject)}) on the source while the "
            "migration ran: the plan names it as it was",
            hint=f"{_rename_back(table, subject, self._shapes.schema_exists(split_table(table)[0]))} or roll back "
            f"(`migrator rollback`) and run again with a plan that names {subject}",
        )

    def _column_change(self, change: SchemaChange, first: bool) -> None:
        table, subject = change.table, change.subject
        mapped = subject in self._mapped.columns(table) or self._mapped.takes_by_default(table, subject)
        if change.kind == "column dropped" and not mapped and first:
            self._host.notice(
                "info",
                f"column {table}.{subject}, which the plan does not map, was dropped on the source since the "
                "snapshot: no document changes",
            )
        if not mapped:
            return
        if change.kind == "column dropped":
            raise TerminalError(
                f"column {table}.{subject} was dropped (or renamed) on the source while the migration ran; "
                "the mapping uses it",
                hint="restore the column, or roll back and start again with a plan that does not use it",
            )
        if change.kind == "column re-added":
            raise TerminalError(
                f"column {table}.{subject} was dropped and added again (ALTER TABLE ... DROP {subject}, ADD {subject}) "
                "on the source while the migration ran: the source lost its values (the new column holds NULL or "
                "its default) and PostgreSQL logs no row change for that, so documents keep the old ones; the "
                "mapping uses it",
                hint="roll back (`migrator rollback`) and run again, so that a new snapshot reads the column as it "
                "is now; or restore the old values in the source",
            )
        if change.kind == "column retyped":
            raise TerminalError(
                f"column {table}.{subject} changed type on the source while the migration ran; the mapping "
                "converts it as it was",
                hint="roll back and start again, so that the snapshot and the changes agree on the type",
            )
        if change.kind == "column added":
            self._mapped_column_added(table, subject)

    def _mapped_column_added(self, table: str, column: str) -> None:
        if self._published.get(table) is not None and (table, column) not in self._widened:
            # The publication's column list was fixed when it was made: a column added since is
            # not published until the list names it. Widen it, so that changed rows carry the
            # column from here on, as they do where every column is published (before the marker
            # the host commits, so that every change after the marker carries it).
            self._widened.add((table, column))
            self._widen_publication(table, column)
        self._host.column_added(table, column)

    def _partition_change(self, change: SchemaChange) -> None:
        table, subject = change.table, change.subject
        if change.kind == "partition detached":
            gone = not self._shapes.existing([change.oid])
            raise TerminalError(
                f"partition {subject} of {table} was "
                + ("dropped (DROP TABLE)" if gone else "detached (DETACH PARTITION)")
                + f" on the source while the migration ran: its rows left {table} without a change that says so",
                hint="roll back (`migrator rollback`) and run again: a new snapshot reads the table as it is",
            )
        if change.kind == "partition added" and change.oid not in self._accepted_leaves:
            # A partition created since is followed like the others (its Relation message is
            # checked); one attached with rows brought them in without a change.
            if self._shapes.holds_rows_from_before(change.oid, subject):
                raise TerminalError(
                    f"partition {subject} was attached to {table} (ATTACH PARTITION) on the source while the "
                    f"migration ran, with rows it held before: they entered {table} without a change that says so",
                    hint="roll back (`migrator rollback`) and run again: a new snapshot reads them",
                )
            self._accepted_leaves.add(change.oid)

    def columns_changed(self, table: str, current: dict[str, int]) -> None:
        """A relation message whose columns differ from what the mapping was built on: an added
        column flows through where the mapping takes every column (the host maps it); a dropped or
        retyped mapped column stops the run (nothing silent)."""
        mapped = self._mapped.columns(table)
        before = self._expected_columns[table]
        info = self.table(table)
        if info is None:
            raise TerminalError(f"table {table} disappeared from the source while the migration ran")
        # The mapping was built on the catalog as it is now, which may be newer than the changes
        # being replayed (a run resumed after DDL): a column the catalog still has, with its type,
        # but the stream does not yet, was added later in the stream.
        now = {c.name: c.type_oid for c in info.columns}
        later = sorted(n for n in mapped if n not in current and now.get(n) == before[n].type_oid)
        dropped = [n for n in sorted(mapped) if n not in current and n not in later]
        # ... and a column the stream has but the catalog no longer has was dropped later in the
        # stream: the mapping built on the newer catalog silently lost it if it takes every column.
        dropped += [
            n
            for n in sorted(set(current) - set(before) - set(now))
            if self._mapped.takes_by_default(table, n)
        ]
        if dropped:
            raise TerminalError(
                f"column {table}.{dropped[0]} was dropped (or renamed) on the source while the migration ran; "
                "the mapping uses it",
                hint="restore the column, or roll back and start again with a plan that does not use it",
            )
        for name in sorted(mapped):
            if name in current and before[name].type_oid and current[name] != before[name].type_oid:
                raise TerminalError(
                    f"column {table}.{name} changed type on the source while the migration ran; the mapping "
                    "converts it as it was",
                    hint="roll back and start again, so that the snapshot and the changes agree on the type",
                )
        self._host.table_changed(table, info)

    def _widen_publication(self, table: str, column: str) -> None:
        """Publish `column`, added to `table` since the publication was made, where the mapping
        takes it: the publication is made to list what the mapping on today's catalog reads."""
        info = self.table(table)
        if info is None:
            return  # dropped meanwhile: the next schema check stops the run
        read = self._host.reads_with(table, info)
        if read is None:
            return  # the Relation message that carries the column stops the run, saying why
        PublicationManager(self._endpoint).ensure_publication(self.publication, read)
        listed = publishing(info, read.get(table), self._source_info.server.version_num).columns
        self._published[table] = None if listed is None else frozenset(listed)
        self._host.notice(
            "warn",
            f"column {column} added to {table} since the snapshot: publication {self.publication} now publishes "
            "it, and changed rows carry it from here on; the documents of the others are brought up to date "
            "once the stream reaches this point",
        )


def _rename_kind(old: str, new: str) -> str:
    (old_schema, old_name), (new_schema, new_name) = split_table(old), split_table(new)
    if old_schema == new_schema:
        return "ALTER TABLE ... RENAME"
    if old_name == new_name:
        return "ALTER SCHEMA ... RENAME, or ALTER TABLE ... SET SCHEMA"
    return "renamed and moved to another schema"


def _rename_back(old: str, new: str, old_schema_exists: bool) -> str:
    """The statements that give the table its old name back, so that the run goes on."""
    (old_schema, old_name), (new_schema, new_name) = split_table(old), split_table(new)
    steps = []
    if old_schema != new_schema:
        # A schema renamed took the table (and its other tables) along: rename it back. Else the
        # table was moved out of a schema that still exists: move it back.
        steps.append(
            f"ALTER TABLE {quoted(new)} SET SCHEMA {quoted_identifier(old_schema)};"
            if old_schema_exists
            else f"ALTER SCHEMA {quoted_identifier(new_schema)} RENAME TO {quoted_identifier(old_schema)};"
        )
        new = f"{old_schema}.{new_name}"
    if old_name != new_name:
        steps.append(f"ALTER TABLE {quoted(new)} RENAME TO {quoted_identifier(old_name)};")
    return " ".join(steps)
