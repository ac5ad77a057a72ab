"""Secondary indexes and constraints built after the copy (docs/architecture.md, "After the
copy"), pgcopydb's order: every table copied first, then the indexes and the unique, check and
exclusion constraints, several at a time, then the foreign keys (which need the unique indexes
they reference), several at a time. Indexes built once over the copied rows cost less than
maintained row by row during the copy.

What is built is planned in mapping/post_copy.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from migrator.adapters.base import PostCopyStatement, PostCopyTarget, TargetAdapter
from migrator.engine.events import EventBus, SchemaObjectBuilt


def build(
    target: TargetAdapter, statements: Sequence[PostCopyStatement], parallel: int, events: EventBus
) -> None:
    """Run `statements` wave by wave, `parallel` at a time (each skipped where built already)."""
    if not statements or not isinstance(target, PostCopyTarget):
        return
    builder = target

    def one(statement: PostCopyStatement) -> None:
        started = time.monotonic()
        ran = builder.build_post_copy(statement)
        events.emit(
            SchemaObjectBuilt(
                statement.table, statement.name, statement.kind, ran, round(time.monotonic() - started, 3)
            )
        )

    with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="migrator-build") as pool:
        for wave in sorted({s.wave for s in statements}):
            # list(): every statement of the wave done (or its error raised) before the next wave.
            list(pool.map(one, [s for s in statements if s.wave == wave]))
