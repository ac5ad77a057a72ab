"""Fills the SourceRead placeholders of a batch from the source (mapping/reads.py says what they
are): one REPEATABLE READ transaction per batch, one query per embed and level, for all of the
batch's link values at once. The read shows every transaction of the batch, and every one of the
batches before it that no read has shown yet (`showing`: the source's own values for them, which
its reader waits for); and no checkpoint is written before the source shows them all (`confirm`;
docs/architecture.md, "Why reading 'now' converges")."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from migrator.adapters.base import LinkedReader, SourceAdapter, SourceRead
from migrator.errors import MigratorError
from migrator.mapping.reads import ORDINAL, EmbedRead

# Link values per query: the derived parent is one array parameter per link column.
VALUES_PER_READ = 1_000
# Transactions carried unconfirmed (no read since they arrived) past which the source is asked
# which of them it may still not show (LinkedReader.unshown): one short look per so many.
CARRIED = 1_000


class SourceReads:
    """The applier's source reader: one connection, opened on first use and kept for the next
    batch, dropped after an error (the next batch opens another)."""

    def __init__(self, source: SourceAdapter) -> None:
        self._source = source
        self._reader: LinkedReader | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        # The transactions applied or being applied that no read has shown yet, oldest first.
        self._unconfirmed: list[Any] = []
        self._look_at = CARRIED

    @property
    def visible(self) -> tuple[Any, ...]:
        """The transactions a read of the source now waits to be shown: the batch's being
        applied and those before it that no read has shown yet (`showing`)."""
        return tuple(self._unconfirmed)

    @contextlib.contextmanager
    def showing(self, visible: Sequence[Any]) -> Iterator[None]:
        """While a batch is applied: its reads wait until the source shows `visible` (the
        `visibility` of the batch's transactions, as the source's change events gave them), and
        what earlier batches carried. A batch that ends with its checkpoint has the source show
        them all first (`confirm`); one without (a part of a large transaction) leaves them to
        the next read or checkpoint: a transaction of it may still be unseen when a later batch
        reads a row it changed (docs/architecture.md, "Why reading 'now' converges")."""
        self.carry(visible)
        yield

    def carry(self, visible: Sequence[Any]) -> None:
        """Transactions the next read waits for, until one has shown them. Past CARRIED of them,
        the source says which it may still not show, and only those are kept."""
        self._unconfirmed.extend(v for v in visible if v is not None)
        if len(self._unconfirmed) > self._look_at:
            try:
                self._unconfirmed = list(self._open().unshown(self._unconfirmed))
            except MigratorError:
                self.close()
                raise
            # Many still unseen (commits held open): look again once as many more arrived.
            self._look_at = max(CARRIED, 2 * len(self._unconfirmed))

    def confirm(self) -> None:
        """Wait until the source shows every transaction carried: before a batch's checkpoint is
        written, so that no run, this one or one resumed from that checkpoint, reads the source
        before it shows what the target holds (docs/architecture.md, "Why reading 'now'
        converges"). The source is asked once which it may still not show (`unshown`: on
        PostgreSQL one short statement); only then is a read opened, waiting for those, and ended
        at once. Nothing carried: nothing asked, no connection opened."""
        visible = self.visible
        if not visible:
            return
        reader = self._open()
        try:
            unshown = reader.unshown(visible)
            if unshown:
                reader.begin(unshown)
                reader.end()
        except MigratorError:
            self.close()
            raise
        self.shown(visible)

    def shown(self, visible: Sequence[Any]) -> None:
        """A read waited for `visible` (what `visible` said before it) and its snapshot showed
        them: later snapshots show them too, so no read waits for them again."""
        del self._unconfirmed[: len(visible)]
        if not self._unconfirmed:
            self._look_at = CARRIED  # a burst of unseen ones, shown since: back to the bound

    def __call__(self, reads: Sequence[SourceRead]) -> list[Any]:
        out: list[Any] = [None] * len(reads)
        # spec -> link values (as text) -> the placeholders that ask for them
        groups: dict[int, tuple[EmbedRead, dict[tuple[str, ...], list[int]]]] = {}
        for i, read in enumerate(reads):
            spec = read.spec
            assert isinstance(spec, EmbedRead)
            if any(v is None for v in read.values):
                out[i] = spec.empty  # a NULL never joins
                continue
            texts = tuple(self._source.key_text(v) for v in read.values)
            groups.setdefault(id(spec), (spec, {}))[1].setdefault(texts, []).append(i)
        if not groups:
            return out
        reader = self._open()
        visible = self.visible
        try:
            reader.begin(visible)
            self.shown(visible)
            try:
                for spec, wanted in groups.values():
                    keys = list(wanted)
                    for start in range(0, len(keys), VALUES_PER_READ):
                        part = keys[start : start + VALUES_PER_READ]
                        for n, content in self._read(reader, spec, part):
                            for i in wanted[part[n]]:
                                out[i] = content
            finally:
                reader.end()
        except MigratorError:
            self.close()
            raise
        return out

    @staticmethod
    def _read(reader: LinkedReader, spec: EmbedRead, values: list[tuple[str, ...]]) -> list[tuple[int, Any]]:
        streams = reader.stream_linked(spec.assembler.reads(), spec.columns, values, ORDINAL)
        # Every position has a row in the derived parent, so every one gets its content ([] or
        # None when nothing joins).
        return [
            (int(ordinal) - 1, document[spec.embed.as_])
            for ordinal, document, _ in spec.assembler.documents(streams)
        ]

    def _open(self) -> LinkedReader:
        if self._reader is None:
            self._reader = self._source.linked_reader()
            # The applier that holds this reader has no end of its own: the connection closes
            # when the reader goes, at the latest when the process exits.
            self._finalizer = weakref.finalize(self, self._reader.close)
        return self._reader

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the connection (once)
        self._reader = None
        self._finalizer = None
