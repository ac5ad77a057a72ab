"""What `plan` says about the source's tables when the target keeps them as tables (a PostgreSQL
target: docs/architecture.md, "Sequences at cutover", "Large objects"): the sequences cutover
will set, the large objects it cannot carry, the triggers the target tables do not get, and the
partitioned tables it creates as plain ones."""

from __future__ import annotations

from migrator.adapters.inspection import SourceInfo
from migrator.findings import Finding, Severity
from migrator.mapping.spec import CollectionMapping

# A large object lives in pg_largeobject; a table holds only its oid (type oid, or the lo
# extension's domain over it), which would arrive on the target naming nothing.
LARGE_OBJECT_TYPES = ("oid", "lo")


def sequence_findings(collections: list[CollectionMapping], margin: int) -> list[Finding]:
    """One finding per mapped column backed by a sequence (a serial default or an identity)."""
    found: list[Finding] = []
    for c in collections:
        doc = c.document
        carried = set(doc.key) | {f.column.name for f in doc.fields}
        for column in doc.all_columns:
            serial = column.default is not None and column.default.startswith("nextval(")
            if column.name in carried and (serial or column.identity):
                found.append(
                    Finding(
                        "target.sequences",
                        Severity.INFO,
                        f"{c.name}.{column.name}",
                        f"at cutover, under the fence, the target column's sequence is set {margin} steps past "
                        "the last value the source's gave out (phases.cutover.sequence_margin); at rollback "
                        "after cutover, the source's past the target's, never back",
                    )
                )
    return found


def large_object_findings(collections: list[CollectionMapping]) -> list[Finding]:
    """A FAIL per mapped column that holds large objects' oids: their content is not copied."""
    found: list[Finding] = []
    for c in collections:
        doc = c.document
        for f in doc.fields:
            if f.column.type_name in LARGE_OBJECT_TYPES:
                found.append(
                    Finding(
                        "source.large_objects",
                        Severity.FAIL,
                        f"{doc.table}.{f.column.name}",
                        f"column {f.column.name} holds large object oids ({f.column.type_name}): the objects "
                        "live in pg_largeobject, which logical decoding and the copy do not carry, so the "
                        "target would hold oids that name nothing",
                        f"store the content in the row: ALTER TABLE {doc.table} ALTER COLUMN {f.column.name} "
                        f"TYPE bytea USING lo_get({f.column.name}) (then lo_unlink the objects), or leave the "
                        "column out with `exclude`",
                    )
                )
    return found


def trigger_findings(collections: list[CollectionMapping], source: SourceInfo) -> list[Finding]:
    """A WARN per enabled trigger of a mapped table: the target table is created without it, so
    after cutover the application's writes there do not fire it (pagila's last_update stays)."""
    found: list[Finding] = []
    for c in collections:
        table = source.tables.get(c.document.table)
        for trigger in table.triggers if table is not None else ():
            if trigger.enabled == "disabled":
                continue
            what = f"{trigger.timing} {' or '.join(trigger.events)}"
            found.append(
                Finding(
                    "target.triggers",
                    Severity.WARN,
                    f"{trigger.table}: trigger {trigger.name}",
                    f"trigger {trigger.name} ({what}) of {trigger.table} is not created on the target table "
                    f"{c.name}: after cutover the application's writes there do not fire it",
                    f"create it on the target before cutover, after the function it executes, as the source "
                    f"defines it (its CREATE TRIGGER: `pg_dump --schema-only --section=post-data --table="
                    f"{trigger.table}` of the source database)",
                )
            )
    return found


def partition_findings(collections: list[CollectionMapping], source: SourceInfo) -> list[Finding]:
    """A WARN per partitioned source table: migrator creates its target table as a plain table
    (docs/architecture.md, "Tables as collections"); one made partitioned before the run is kept."""
    found: list[Finding] = []
    for c in collections:
        table = source.tables.get(c.document.table)
        if table is None or table.kind != "partitioned":
            continue
        key = ", ".join(table.partition_key) or "an expression"
        found.append(
            Finding(
                "target.partitions",
                Severity.WARN,
                table.name,
                f"{table.name} is partitioned on the source ({len(table.leaves)} partitions, by {key}); migrator "
                f"creates {c.name} on the target as a plain table holding every row, unless it exists there "
                "already",
                f"to keep it partitioned, create {c.name} on the target before the run as the source declares it "
                "(its CREATE TABLE ... PARTITION BY and each partition's CREATE TABLE ... PARTITION OF, from "
                "`pg_dump --schema-only` of the source), empty: the copy and CDC write into it",
            )
        )
    return found
