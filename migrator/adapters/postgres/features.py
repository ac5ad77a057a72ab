"""The source-feature matrix: how each mapped table's schema features meet logical replication.

For every mapped table (and each of its partitions) preflight classifies persistence (UNLOGGED),
partitioning, replica identity (per partition), deferrable or missing keys, generated columns,
keys that may be TOASTed, N:1 links, columns the plan leaves out, and user triggers. Each feature is either
supported (an INFO finding saying how it is followed) or refused (a FAIL finding with a fix that
PostgreSQL accepts). docs/preflight.md ("What the source may have") lists the same matrix with the tests
that prove each row; docs/architecture.md records the PostgreSQL facts behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migrator.adapters.base import (
    ColumnInfo,
    MappedCollection,
    MappedDocument,
    SourceInfo,
    TableInfo,
    TriggerInfo,
)
from migrator.adapters.postgres import fixes
from migrator.adapters.postgres.publication import (
    identity_problems,
    partitioned_unsupported,
    publishing,
)
from migrator.findings import Finding, Severity

# How many partitions a finding names before it counts the rest.
NAMED_PARTITIONS = 5


def source_features(
    source: SourceInfo,
    collections: Sequence[MappedCollection],
    read: Mapping[str, set[str]],
    *,
    reverse_sync: bool = True,
) -> list[Finding]:
    """The matrix's findings for the plan's resolved collections; `read`: the columns the mapping
    reads per table (mapping/columns.py), what a publication column list would carry. Triggers
    matter only to reverse sync (the plan's phases.cutover.reverse_sync): none without it."""
    version = source.server.version_num
    keys = _keys(collections)
    found: list[Finding] = []
    for table in source.tables.values():
        found += _unlogged(table)
        found += _partitioning(table, version)
        found += _identity(table, keys.get(table.name, ()))
        found += _document_keys(table, collections)
        found += _generated_keys(table, collections)
        if table.name in read:
            found += _excluded(table, read[table.name], version)
        if reverse_sync:
            found += [_trigger(t) for t in table.triggers]
    for collection in collections:
        for level in collection.levels:
            info = source.tables.get(level.table)
            if info is not None:
                found += _generated(info, level.document)
        found += _toastable_links(collection, source)
        found += _n_to_1(collection, source)
    return _once(found)


# -- persistence ------------------------------------------------------------------------------------


def _unlogged(table: TableInfo) -> list[Finding]:
    """An UNLOGGED relation writes no WAL: PostgreSQL refuses to publish such a table (SQLSTATE
    22023 at CREATE PUBLICATION, long after `plan`), and a partition's changes are never sent."""
    found = []
    for relation in table.unlogged:
        if relation == table.name:
            message = (
                f"{relation} is UNLOGGED: its changes are not written to the WAL, so logical replication "
                "cannot send them and PostgreSQL refuses to publish it"
            )
        else:
            message = (
                f"partition {relation} of {table.name} is UNLOGGED: its changes are not written to the WAL, "
                f"so the publication of {table.name} never sends them (they would be lost)"
            )
        found.append(
            Finding(
                "source.unlogged",
                Severity.FAIL,
                relation,
                message,
                f"{fixes.set_logged(relation)} (rewrites the table under an ACCESS EXCLUSIVE lock, writing it "
                "to the WAL once)",
            )
        )
    return found


# -- partitioning and inheritance -------------------------------------------------------------------


def _partitioning(table: TableInfo, version: int) -> list[Finding]:
    if table.inheritance_children:
        children = ", ".join(table.inheritance_children)
        return [
            Finding(
                "source.inheritance",
                Severity.FAIL,
                table.name,
                f"{table.name} has inheritance children ({children}): the snapshot reads their rows through "
                f"{table.name}, but their changes arrive under their own names, which the plan does not map",
                " ".join(
                    f"ALTER TABLE {fixes.table(child)} NO INHERIT {fixes.table(table.name)};"
                    for child in table.inheritance_children
                )
                + " (then map each table as a collection of its own: this changes what queries on the parent "
                "return) or convert the hierarchy to declarative partitioning",
            )
        ]
    if table.kind != "partitioned":
        return []
    refused = partitioned_unsupported(table, version)
    if refused is not None:
        return [
            Finding(
                "source.partitioned", Severity.FAIL, table.name, refused, "upgrade to PostgreSQL 13 or newer"
            )
        ]
    found = [
        Finding(
            "source.partitioned",
            Severity.FAIL,
            leaf,
            f"partition {leaf} of {table.name} is a foreign table: the snapshot reads its rows through "
            f"{table.name}, but its changes are made on another server and never reach this one's WAL",
            f"ALTER TABLE {fixes.table(table.name)} DETACH PARTITION {fixes.table(leaf)}; (its rows then leave "
            f"{table.name}: migrate them from the server that holds them)",
        )
        for leaf in table.foreign_partitions
    ]
    names = [leaf.name for leaf in table.leaves]
    shown = ", ".join(names[:NAMED_PARTITIONS]) + (
        f" and {len(names) - NAMED_PARTITIONS} more" if len(names) > NAMED_PARTITIONS else ""
    )
    key = ", ".join(table.partition_key) + (" and an expression" if table.partitioned_by_expression else "")
    found.append(
        Finding(
            "source.partitioned",
            Severity.INFO,
            table.name,
            f"partitioned table {table.name} ({len(names)} partitions{': ' + shown if names else ''}; "
            f"partition key {key}): changes arrive from each partition with that partition's replica "
            "identity, TRUNCATE of a single partition too; a partition created later is followed and takes "
            "the default replica identity (its primary key)",
        )
    )
    return found


# -- replica identity and keys ----------------------------------------------------------------------


def _identity(table: TableInfo, key: tuple[str, ...]) -> list[Finding]:
    found = [
        Finding("source.replica_identity", Severity.FAIL, p.relation, p.message, p.fix)
        for p in identity_problems(table, key)
    ]
    full = [table] if table.kind == "table" and table.replica_identity == "full" else []
    for relation in full:
        found.append(
            Finding(
                "source.replica_identity",
                Severity.WARN,
                relation.name,
                f"{relation.name} uses REPLICA IDENTITY FULL: every UPDATE and DELETE logs the whole old row",
                _narrower(relation) or "prefer a primary key",
            )
        )
    for leaf in table.leaves:
        if leaf.replica_identity == "full":
            found.append(
                Finding(
                    "source.replica_identity",
                    Severity.WARN,
                    leaf.name,
                    f"partition {leaf.name} of {table.name} uses REPLICA IDENTITY FULL: every UPDATE and DELETE "
                    "logs the whole old row",
                    fixes.replica_identity(leaf.name, "DEFAULT")
                    if leaf.primary_key
                    else "prefer a primary key",
                )
            )
    if table.kind == "partitioned" and table.replica_identity != "default":
        found.append(
            Finding(
                "source.replica_identity",
                Severity.INFO,
                table.name,
                f"REPLICA IDENTITY {table.replica_identity.upper()} of partitioned table {table.name} applies to "
                "none of its partitions: each partition's changes carry that partition's own replica identity",
            )
        )
    return found


def _narrower(table: TableInfo) -> str | None:
    if table.primary_key and not table.primary_key_deferrable:
        return fixes.replica_identity(table.name, "DEFAULT")
    if table.identity_indexes:
        return fixes.replica_identity_index(table.name, table.identity_indexes[0].name)
    return None


def _document_keys(table: TableInfo, collections: Sequence[MappedCollection]) -> list[Finding]:
    """A DELETE carries only the old row's replica identity: a document or element key outside it
    could not be found (the change would name no key)."""
    identity = set(table.identity_columns)
    if not identity:
        return []  # refused above, with its fix
    found: list[Finding] = []
    for collection in collections:
        for level in collection.levels:
            doc = level.document
            # An element key's link columns are the embed's business (mapping.embed_identity).
            if doc.table != table.name or set(doc.key) - set(level.link) <= identity:
                continue
            role = "document _id" if level.embed is None else "element key"
            index = next((i for i in table.identity_indexes if set(i.columns) <= set(doc.key)), None)
            options = (
                [fixes.replica_identity_index(table.name, index.name)]
                if index and table.kind == "table"
                else []
            )
            found.append(
                Finding(
                    "source.key_identity",
                    Severity.FAIL,
                    f"{table.name}({', '.join(doc.key)})",
                    f"collection '{collection.name}' keys {table.name} by ({', '.join(doc.key)}) ({role}), but its "
                    f"replica identity is ({', '.join(table.identity_columns)}): a DELETE carries only the "
                    "identity, so it could not say which document or element to remove",
                    " or ".join(
                        [*options, f"key it by its replica identity ({', '.join(table.identity_columns)})"]
                    ),
                )
            )
    return found


_NOT_SENT = (
    "PostgreSQL sends no stored generated column through logical replication, not even in the old row "
    "of an UPDATE or DELETE (before 18 never; 18 only with publish_generated_columns, which migrator "
    "does not set)"
)


def _generated_keys(table: TableInfo, collections: Sequence[MappedCollection]) -> list[Finding]:
    """A stored generated column in a replica identity, or in a document or element key: a DELETE
    (and an UPDATE's old row) would carry no value for it, so which document or element it
    changes could not be known (docs/architecture.md, "Stored generated columns")."""
    generated = {c.name for c in table.columns if c.generated is not None}
    if not generated:
        return []
    found: list[Finding] = []
    relations = (
        [(leaf.name, leaf.identity_columns) for leaf in table.leaves]
        if table.kind == "partitioned"
        else [(table.name, table.identity_columns)]
    )
    for relation, identity in relations:
        bad = [c for c in identity if c in generated]
        if bad:
            found.append(
                Finding(
                    "source.generated_key",
                    Severity.FAIL,
                    f"{relation}.{bad[0]}",
                    f"the replica identity of {relation} includes stored generated {_names(bad)}: {_NOT_SENT}, so "
                    "an UPDATE or DELETE could not say which row it changes",
                    _identity_without(table, relation, generated, bad),
                )
            )
    for collection in collections:
        for level in collection.levels:
            doc = level.document
            bad = [c for c in doc.key if c in generated] if doc.table == table.name else []
            if not bad:
                continue
            role = "document _id" if level.embed is None else "element key"
            found.append(
                Finding(
                    "source.generated_key",
                    Severity.FAIL,
                    f"{table.name}.{bad[0]}",
                    f"collection '{collection.name}' keys {table.name} by ({', '.join(doc.key)}) ({role}), which "
                    f"includes stored generated {_names(bad)}: {_NOT_SENT}, so a DELETE could not say which "
                    "document or element to remove",
                    _key_without(table, generated, bad),
                )
            )
    return found


def _identity_without(table: TableInfo, relation: str, generated: set[str], bad: Sequence[str]) -> str:
    """Replica identities of `relation` that PostgreSQL accepts and that hold no generated column."""
    options: list[str] = []
    if table.primary_key and not table.primary_key_deferrable and not set(table.primary_key) & generated:
        options.append(fixes.replica_identity(relation, "DEFAULT"))
    if table.kind == "table":
        options += [
            fixes.replica_identity_index(relation, i.name)
            for i in table.identity_indexes
            if not set(i.columns) & generated and i.columns != table.primary_key
        ]
    if not options and not table.primary_key:
        inputs = _inputs(table, bad)
        if inputs:
            options.append(
                f"{fixes.add_primary_key(table.name, inputs)} {fixes.replica_identity(relation, 'DEFAULT')} "
                f"(if ({', '.join(inputs)}) is unique)"
            )
    options.append(
        f"{fixes.replica_identity(relation, 'FULL')} (the old row then carries every ordinary column, which "
        "must hold the key)"
    )
    return " or ".join(options)


def _key_without(table: TableInfo, generated: set[str], bad: Sequence[str]) -> str:
    """Keys of ordinary columns that could serve instead."""
    keys = [k for k in (table.primary_key, *table.unique_keys) if k and not set(k) & generated]
    if keys:
        return " or ".join(f"key it by ({', '.join(k)})" for k in dict.fromkeys(keys))
    inputs = _inputs(table, bad)
    if inputs and not table.primary_key:
        return (
            f"{fixes.add_primary_key(table.name, inputs)} {fixes.replica_identity(table.name, 'DEFAULT')} "
            f"(if ({', '.join(inputs)}) is unique), then key it by ({', '.join(inputs)})"
        )
    return "key it by a unique key of ordinary (not generated) columns"


def _inputs(table: TableInfo, columns: Sequence[str]) -> list[str]:
    """The ordinary columns the generated `columns` are computed from."""
    out: list[str] = []
    for name in columns:
        column = table.column(name)
        out += [c for c in (column.generated_from if column is not None else ()) if c not in out]
    return out


# -- columns ----------------------------------------------------------------------------------------


def _excluded(table: TableInfo, read: set[str], version: int) -> list[Finding]:
    publication = publishing(table, read, version)
    found: list[Finding] = []
    if publication.left_out:
        found.append(
            Finding(
                "source.excluded_columns",
                Severity.INFO,
                table.name,
                f"{_names(publication.left_out)} of {table.name}, which the plan does not read, "
                f"{'stays' if len(publication.left_out) == 1 else 'stay'} in the source: "
                "the publication lists only the columns migrator needs. While it does, a change of the table's "
                "replica identity to FULL, or to an index over columns it leaves out, would make the application's "
                "UPDATE and DELETE on it fail",
            )
        )
    if publication.sent_unread:
        found.append(
            Finding(
                "source.excluded_columns",
                Severity.WARN,
                table.name,
                f"{_names(publication.sent_unread)} of {table.name}, which the plan does not read, "
                f"{'leaves' if len(publication.sent_unread) == 1 else 'leave'} the source: {publication.reason}. "
                "They reach migrator's process and are dropped on arrival: never written to the target, logged, "
                "or stored (except that a large transaction PostgreSQL streams before its commit passes through "
                "an unlinked temporary file until it commits)",
                publication.fix,
            )
        )
    return found


def _generated(table: TableInfo, doc: MappedDocument) -> list[Finding]:
    found: list[Finding] = []
    identity = set(table.identity_columns)
    for fld in doc.fields:
        column = fld.column
        if column.generated is None:
            continue
        subject = f"{table.name}.{column.name}"
        outside = [d for d in column.generated_from if _toastable(table.column(d)) and d not in identity]
        if outside:
            relations = [leaf.name for leaf in table.leaves] if table.kind == "partitioned" else [table.name]
            full = " ".join(fixes.replica_identity(r, "FULL") for r in relations)
            later = " (and on each partition created later)" if table.kind == "partitioned" else ""
            found.append(
                Finding(
                    "source.generated_column",
                    Severity.FAIL,
                    subject,
                    f"stored generated column {column.name} of {table.name} is computed from {_names(outside)}, which "
                    f"may be stored out of line (TOASTed) and {'is' if len(outside) == 1 else 'are'} not in the "
                    "replica identity: an UPDATE that leaves them unchanged does not send them, so the field could "
                    "not be computed for the document",
                    f"{full}{later} or add '{column.name}' to 'exclude' of {table.name}",
                )
            )
        else:
            sources = ", ".join(column.generated_from) or "no column"
            found.append(
                Finding(
                    "source.generated_column",
                    Severity.INFO,
                    subject,
                    f"stored generated column {column.name} of {table.name} = {column.generated}: PostgreSQL before "
                    f"18 does not send it through logical replication; migrator computes it on the source for each "
                    f"changed row, from {sources}",
                )
            )
    return found


def _toastable_links(collection: MappedCollection, source: SourceInfo) -> list[Finding]:
    found: list[Finding] = []

    def report(table_name: str, columns: Sequence[str], role: str) -> None:
        table = source.tables.get(table_name)
        if table is None:
            return
        toastable = [c for c in columns if _toastable(table.column(c))]
        if toastable:
            found.append(
                Finding(
                    "source.toastable_key",
                    Severity.INFO,
                    f"{table_name}({', '.join(toastable)})",
                    f"{role} {_names(toastable)} of {table_name} may be stored out of line (TOASTed): an UPDATE "
                    "that leaves such a value unchanged sends it as 'unchanged', and migrator takes it from the "
                    "old row's replica identity",
                )
            )

    for doc in (level.document for level in collection.levels):
        report(doc.table, doc.key, "key")
        for embed in doc.embeds:
            report(embed.child.table, [c for c, _p in embed.on], f"link of '{embed.as_}'")
            report(doc.table, [p for _c, p in embed.on], f"link of '{embed.as_}'")
    return found


def _n_to_1(collection: MappedCollection, source: SourceInfo) -> list[Finding]:
    """An embed through a link the *parent* holds (customer.address_id -> address.id): many
    documents may embed one row, so a change to that row must reach all of them."""
    found: list[Finding] = []
    for doc in (level.document for level in collection.levels):
        parent = source.tables.get(doc.table)
        if parent is None:
            continue
        for embed in doc.embeds:
            parent_columns = {p for _c, p in embed.on}
            if embed.many or any(set(u) <= parent_columns for u in parent.unique_keys):
                continue
            link = ", ".join(f"{doc.table}.{p} -> {embed.child.table}.{c}" for c, p in embed.on)
            found.append(
                Finding(
                    "source.n_to_1",
                    Severity.INFO,
                    f"{doc.table}({', '.join(p for _c, p in embed.on)})",
                    f"embed '{embed.as_}' of collection '{collection.name}' is N:1 ({link}): many documents may "
                    f"embed one {embed.child.table} row; a change to it is applied to every document that embeds "
                    "it, and a changed link re-embeds the row it now points to",
                )
            )
    return found


# -- triggers ---------------------------------------------------------------------------------------


def _trigger(trigger: TriggerInfo) -> Finding:
    what = f"{trigger.timing} {' or '.join(trigger.events)}"
    subject = f"{trigger.table}: trigger {trigger.name}"
    if trigger.enabled == "disabled":
        return Finding(
            "source.trigger", Severity.INFO, subject, f"trigger {trigger.name} ({what}) is disabled"
        )
    reverse = (
        "what it writes there carries reverse sync's replication origin, so forward CDC does not send it to "
        "the target: it stays in the source"
    )
    if trigger.enabled == "origin":
        return Finding(
            "source.trigger",
            Severity.INFO,
            subject,
            f"trigger {trigger.name} ({what}) fires on the application's writes, and what it writes in the same "
            "transaction reaches the target through CDC. After cutover, reverse sync writes under "
            "session_replication_role = replica where its role may set that, and the trigger does not fire; "
            f"where it may not, the trigger fires on reverse sync's writes too, and {reverse}",
        )
    if trigger.enabled == "always":
        return Finding(
            "source.trigger",
            Severity.WARN,
            subject,
            f"trigger {trigger.name} ({what}) is ENABLE ALWAYS: it fires also under session_replication_role = "
            f"replica, so also when reverse sync writes {trigger.table} after cutover; {reverse}",
            f"if it need not fire for replicated writes: {fixes.enable_trigger(trigger.table, trigger.name)}",
        )
    return Finding(
        "source.trigger",
        Severity.WARN,
        subject,
        f"trigger {trigger.name} ({what}) is ENABLE REPLICA: it does not fire on the application's writes, but "
        f"fires when reverse sync writes {trigger.table} under session_replication_role = replica after "
        f"cutover; {reverse}",
    )


# -- helpers ----------------------------------------------------------------------------------------


def _toastable(column: ColumnInfo | None) -> bool:
    """attstorage other than 'p' (plain): the value may be compressed or moved out of line."""
    return column is not None and column.storage != "p"


def _names(columns: Sequence[str]) -> str:
    return ("column " if len(columns) == 1 else "columns ") + ", ".join(columns)


def _keys(collections: Sequence[MappedCollection]) -> dict[str, tuple[str, ...]]:
    """The columns the plan keys each table by, where it says (for an ADD PRIMARY KEY fix)."""
    keys: dict[str, tuple[str, ...]] = {}
    for collection in collections:
        for level in collection.levels:
            keys.setdefault(level.table, level.key)
    return keys


def _once(findings: list[Finding]) -> list[Finding]:
    """A table mapped twice is reported once per finding."""
    return list(dict.fromkeys(findings))
