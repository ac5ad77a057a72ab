"""Secondary indexes and constraints built after the copy (docs/architecture.md, "After the
copy"), pgcopydb's order: every table copied first, then the indexes and the unique, check and
exclusion constraints, several at a time, then the foreign keys (which need the unique indexes
they reference), several at a time. Indexes built once over the copied rows cost less than
maintained row by row during the copy.

A table's first-wave statements (its primary key, indexes, unique, check and exclusion
constraints) need only its own rows, so they start as soon as its last chunk is copied, while the
other tables copy (`EarlyBuilds`, pgcopydb's overlap of index jobs with table jobs); the snapshot's
build-after-copy step then finds them built and skips them.

What is built is planned in mapping/post_copy.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from migrator.adapters.base import PostCopyStatement, PostCopyTarget, TargetAdapter
from migrator.engine.events import EventBus, SchemaObjectBuilt


def _builder(target: TargetAdapter, events: EventBus) -> Callable[[PostCopyStatement], None]:
    assert isinstance(target, PostCopyTarget)
    builder = target

    def one(statement: PostCopyStatement) -> None:
        started = time.monotonic()
        ran = builder.build_post_copy(statement)
        events.emit(
            SchemaObjectBuilt(
                statement.table, statement.name, statement.kind, ran, round(time.monotonic() - started, 3)
            )
        )

    return one


def build(
    target: TargetAdapter, statements: Sequence[PostCopyStatement], parallel: int, events: EventBus
) -> None:
    """Run `statements` wave by wave, `parallel` at a time (each skipped where built already)."""
    if not statements or not isinstance(target, PostCopyTarget):
        return
    one = _builder(target, events)
    with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="migrator-build") as pool:
        for wave in sorted({s.wave for s in statements}):
            # list(): every statement of the wave done (or its error raised) before the next wave.
            list(pool.map(one, [s for s in statements if s.wave == wave]))


class EarlyBuilds:
    """The first-wave statements of each table whose copy has ended, `parallel` at a time, while
    the other tables copy. `finish` waits for them and raises the first error (the run stops
    there, as the build-after-copy step would); `abandon` runs none that has not started."""

    def __init__(
        self, target: TargetAdapter, statements: Sequence[PostCopyStatement], parallel: int, events: EventBus
    ) -> None:
        self._first = [s for s in statements if s.wave == 0]
        self._one = _builder(target, events) if self._first and isinstance(target, PostCopyTarget) else None
        self._pool: ThreadPoolExecutor | None = None
        self._parallel = max(1, parallel)
        self._futures: list[Future[None]] = []

    def table_copied(self, table: str) -> None:
        """Every chunk of `table` (a target table) is copied: build its first wave."""
        if self._one is None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._parallel, thread_name_prefix="migrator-build")
        self._futures += [self._pool.submit(self._one, s) for s in self._first if s.table == table]

    def finish(self) -> None:
        if self._pool is None:
            return
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()

    def abandon(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
