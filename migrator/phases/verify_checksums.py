"""Verify by server-side checksums (docs/architecture.md, "Verify by checksums").

Where the source and the target both hash key ranges in the server (adapters/base.py
OffersRangeChecksums) and offer a common form for a table (the same hash, text settings and
column types: equal rows hash alike; the source's fastest that the target offers too), each key range is hashed on both sides first, and only a
range whose digests differ is read row by row through the mapping (phases/verify.py), with its
explanations and rechecks.

A live source and a lagging target differ for a moment in every range being written, so a
digest that differs is looked at again as verify rechecks a key: hash the source (position P),
wait until the target has applied P, hash the target. Equal then, the range is equal; still
different (or the target did not get to P in time), it goes row by row. An equal digest settles
a range at once, as an equal document does.

Only flat collections whose fields carry the columns' values as they are qualify: a mapping that
embeds, or casts a column (the plan's `types`), makes documents the target's rows do not hold
column for column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from migrator.adapters.base import OffersRangeChecksums, RangeChecksums, RangeDigest
from migrator.mapping.spec import CollectionMapping


@dataclass(frozen=True)
class HashedTable:
    """A collection hashed on both sides: the source's table and the target's, the columns
    each side hashes, pair by pair (a field's source column and its target name), and the form
    both hash them in (agreed_tables)."""

    table: str
    collection: str
    source_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    key: tuple[str, ...]
    key_types: tuple[str, ...]
    form: str = ""


def hashed_table(mapping: CollectionMapping, key_types: Sequence[str]) -> HashedTable | None:
    """The columns a collection is hashed over, or None where its documents are not its rows
    column for column (embeds, casts)."""
    document = mapping.document
    if document.embeds or any(f.cast is not None or f.forward is not None for f in document.fields):
        return None
    key = tuple(document.key)
    fields = [f for f in document.fields if f.column.name not in key]
    # The key columns keep their names on the target (they are the table's primary key there).
    return HashedTable(
        mapping.table,
        mapping.name,
        key + tuple(f.column.name for f in fields),
        key + tuple(f.name for f in fields),
        key,
        tuple(key_types),
    )


def agreed_tables(
    source: object, target: object, candidates: Sequence[HashedTable]
) -> tuple[dict[str, HashedTable], list[str]]:
    """The collections both sides hash alike, by name, each with the form they agree on: the
    source's fastest that the target offers too; and, for each that the sides hash only
    otherwise, why it is compared row by row."""
    if not (isinstance(source, OffersRangeChecksums) and isinstance(target, OffersRangeChecksums)):
        return {}, []
    agreed: dict[str, HashedTable] = {}
    differing: list[str] = []
    sums = _Sides(source, target)
    try:
        for table in candidates:
            source_forms = sums.source.forms(table.table, table.source_columns, table.key)
            target_forms = sums.target.forms(table.collection, table.target_columns, table.key)
            common = [form for form in source_forms if form in target_forms]
            if common:
                agreed[table.collection] = replace(table, form=common[0])
            elif source_forms and target_forms:
                differing.append(
                    f"{table.collection}: compared row by row, as source and target hash its rows "
                    f"differently (source {' or '.join(source_forms)}, target {' or '.join(target_forms)})"
                )
    finally:
        sums.close()
    return agreed, differing


class _Sides:
    """A checksum session on each side, opened together."""

    def __init__(self, source: OffersRangeChecksums, target: OffersRangeChecksums) -> None:
        self.source: RangeChecksums = source.range_checksums()
        try:
            self.target: RangeChecksums = target.range_checksums()
        except BaseException:
            self.source.close()
            raise

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.target.close()


class RangeHashes:
    """A verify worker's checksum sessions, opened on first use and dropped after an error (a
    retry hashes on fresh ones)."""

    def __init__(self, source: object, target: object, tables: Mapping[str, HashedTable]) -> None:
        self._source = source
        self._target = target
        self._tables = tables
        self._sides: _Sides | None = None

    def _open(self) -> _Sides:
        if self._sides is None:
            assert isinstance(self._source, OffersRangeChecksums)
            assert isinstance(self._target, OffersRangeChecksums)
            self._sides = _Sides(self._source, self._target)
        return self._sides

    def settle(
        self,
        collection: str,
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        wait: Callable[[str], bool],
    ) -> RangeDigest | None:
        """The source's digest of the range when both sides hold the same rows in it: at first
        look, or once the target has applied the position of a second look (`wait`). None when
        the range is not hashed, or still differs: compare it row by row."""
        table = self._tables.get(collection)
        if table is None:
            return None
        sides = self._open()

        def source() -> RangeDigest:
            return sides.source.checksum(
                table.form, table.table, table.source_columns, table.key, table.key_types, lo, hi
            )

        def target() -> RangeDigest:
            return sides.target.checksum(
                table.form, table.collection, table.target_columns, table.key, table.key_types, lo, hi
            )

        # The first look hashes both sides at once (two servers, each its own connection): a
        # range costs the slower side's time, not the sum.
        expected, actual = _both(source, target)
        if (expected.rows, expected.digest) == (actual.rows, actual.digest):
            return expected
        expected = source()
        if expected.position is None or not wait(expected.position):
            return None  # the target did not get to the source's position in time
        actual = target()
        return expected if (expected.rows, expected.digest) == (actual.rows, actual.digest) else None

    def reset(self) -> None:
        if self._sides is not None:
            sides, self._sides = self._sides, None
            sides.close()


def _both(
    here: Callable[[], RangeDigest], there: Callable[[], RangeDigest]
) -> tuple[RangeDigest, RangeDigest]:
    """here() in this thread while there() runs in a thread of its own; both have finished on
    return (so that a connection is never closed under a running hash), the first error raised."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrator-verify-hash") as pool:
        other = pool.submit(there)
        mine = here()  # raised: the pool waits for there() first, on its way out
    return mine, other.result()
