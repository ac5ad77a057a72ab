"""The source's sequences brought past the target's at rollback after cutover, under the target's
fence, after the drain (docs/architecture.md, "Sequences at rollback after cutover"): the
application's inserts on the target took the target's sequence values, and reverse sync wrote
those keys to the source explicitly, which a PostgreSQL sequence does not follow (and a MySQL
counter never sees a key the target gave out to a row it deleted since). Each mapped column's
sequence on the source is set past the target's last value by `cutover.sequence_margin`, never
back, so the step is idempotent: a rollback resumed after a crash does it again."""

from __future__ import annotations

from collections.abc import Mapping

from migrator.engine.context import RunContext
from migrator.mapping.spec import CollectionMapping


def source_sequences(
    collections: list[CollectionMapping], by_target: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """The target's sequence values (target table -> field) as the source names them (source
    table -> column): the inverse of cutover's `target_sequences`."""
    out: dict[str, dict[str, int]] = {}
    for c in collections:
        doc = c.document
        columns = {k: k for k in doc.key} | {f.name: f.column.name for f in doc.fields}
        for name, value in by_target.get(c.name, {}).items():
            if name in columns:
                out.setdefault(doc.table, {})[columns[name]] = value
    return out


def set_source_sequences(ctx: RunContext) -> list[str]:
    """Read the target's sequences and set the source's past them; what was done, a line each."""
    collections = ctx.collections
    by_target = ctx.target.sequence_values([c.name for c in collections])
    values = source_sequences(collections, by_target)
    if not values:
        return []  # a target without sequences (MongoDB): nothing to ask of the source under the fence
    return ctx.source.set_sequences(values, ctx.plan.phases.cutover.sequence_margin)
