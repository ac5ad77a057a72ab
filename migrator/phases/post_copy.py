"""Secondary indexes and constraints built after the copy (docs/architecture.md, "After the
copy"), pgcopydb's order: every table copied first, then the indexes and the unique, check and
exclusion constraints, several at a time, then the foreign keys (which need the unique indexes
they reference), several at a time. Indexes built once over the copied rows cost less than
maintained row by row during the copy.

A table's first-wave statements (its primary key, indexes, unique, check and exclusion
constraints) need only its own rows, so they start as soon as its last chunk is copied, while the
other tables copy (`EarlyBuilds`, pgcopydb's overlap of index jobs with table jobs), and a foreign
key as soon as the first waves of its table and of the table it references are built; the
snapshot's build-after-copy step then finds them built and skips them.

What is built is planned in mapping/post_copy.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

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
    """Each table's first-wave statements once its copy has ended, and each foreign key once the
    first waves of its table and of the table it references are built, `parallel` at a time, while
    the other tables copy. `finish` waits for them and raises the first error (the run stops there,
    as the build-after-copy step would); `abandon` runs none that has not started.

    A foreign key waits for both first waves: adding it takes locks on both tables that their
    index builds' locks exclude, and it needs the key it references. One whose table is not copied
    by this run (a resumed run found it done) is left to the build-after-copy step."""

    def __init__(
        self, target: TargetAdapter, statements: Sequence[PostCopyStatement], parallel: int, events: EventBus
    ) -> None:
        self._first = [s for s in statements if s.wave == 0]
        self._keys = [s for s in statements if s.wave == 1 and s.references is not None]
        early = (self._first or self._keys) and isinstance(target, PostCopyTarget)
        self._one = _builder(target, events) if early else None
        self._pool: ThreadPoolExecutor | None = None
        self._parallel = max(1, parallel)
        self._lock = threading.Lock()
        self._futures: list[Future[None]] = []
        self._building: dict[str, int] = {}  # a table's first-wave statements not yet built
        self._built: set[str] = set()  # tables whose first wave is built
        self._closed = False

    def table_copied(self, table: str) -> None:
        """Every chunk of `table` (a target table) is copied: build its first wave."""
        if self._one is None:
            return
        first = [s for s in self._first if s.table == table]
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._parallel, thread_name_prefix="migrator-build")
            self._building[table] = len(first)
            for statement in first:
                self._submit(statement, table)
        if not first:
            self._first_built(table)

    def _submit(self, statement: PostCopyStatement, first_of: str | None) -> None:
        """Queue `statement` (the lock held). A first-wave statement of `first_of` counts as built
        before its future is done, so that `finish` finds the keys it queued."""
        assert self._pool is not None and self._one is not None
        one = self._one

        def run() -> None:
            one(statement)  # an error: the table's keys wait for the step, `finish` raises it
            if first_of is not None:
                self._first_built(first_of)

        self._futures.append(self._pool.submit(run))

    def _first_built(self, table: str) -> None:
        with self._lock:
            self._building[table] = max(0, self._building[table] - 1)
            if self._building[table] or self._closed:
                return
            self._built.add(table)
            for key in self._keys:
                if table in (key.table, key.references) and {key.table, key.references} <= self._built:
                    self._submit(key, None)

    def finish(self) -> None:
        """Wait for every statement queued, those queued meanwhile included; the first error."""
        if self._pool is None:
            return
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
            if not pending:
                break
            wait(pending)
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True)
        for future in self._futures:
            future.result()

    def abandon(self) -> None:
        with self._lock:
            self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
