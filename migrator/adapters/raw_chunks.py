"""Undecoded chunks (docs/architecture.md, "Undecoded copy"): a source whose copy readers can
stream a key range in a named wire format, and a target that takes that format as it is, let the
snapshot move a flat table's rows without turning them into documents, when both agree on the
format for the columns. The snapshot phase compares format names only; which formats exist is the
adapters' business.

Optional, as runtime-checkable protocols: a source or target without them takes the document
path, and adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from migrator.adapters.inspection import ColumnInfo


@dataclass(frozen=True)
class RawColumn:
    """A source column copied undecoded into the target column `target`."""

    column: ColumnInfo  # as inspection read it from the source (its name, its declared type)
    target: str


@runtime_checkable
class RawChunkSource(Protocol):
    def raw_format(self, table: str, columns: Sequence[ColumnInfo]) -> str | None:
        """The format this source's copy readers stream `columns` of `table` in, or None."""
        ...


@runtime_checkable
class RawChunkReader(Protocol):
    def raw_chunk(
        self,
        form: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> Iterator[bytes]:
        """The rows of `table` in the key range (lo, hi], only `columns`, as blocks of `form`,
        in the reader's current read (only these columns leave the source)."""
        ...


class RawWriter(Protocol):
    @property
    def columns(self) -> tuple[str, ...]:
        """The target columns the writer fills, in the stream's order: those of the columns it was
        asked for that it takes (a column the target computes itself is left out)."""
        ...

    def replace_range(
        self,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        blocks: Iterable[bytes],
        *,
        known_empty: bool = False,
    ) -> int:
        """Make the key range (lo, hi] of the table hold exactly the rows of `blocks`, in one
        transaction (a chunk written again replaces its rows); the number of rows written.
        `known_empty`: the caller proves that nothing was ever written in the range (the table
        was created by this run and no attempt at this chunk began), so there is nothing to
        remove first."""
        ...


@runtime_checkable
class RawChunkTarget(Protocol):
    def raw_writer(self, collection: str, form: str, columns: Sequence[RawColumn]) -> RawWriter | None:
        """A writer of `form` into `collection`'s table for `columns`, or None when the table's
        columns are not of the very types the source's are (the document path then)."""
        ...
