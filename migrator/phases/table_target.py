"""What `plan` says about the source's tables when the target keeps them as tables (a PostgreSQL
target: docs/architecture.md, "Sequences at cutover", "Large objects"): the sequences cutover
will set, and the large objects it cannot carry."""

from __future__ import annotations

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
