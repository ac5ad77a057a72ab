"""The snapshot's progress bars count documents against the root table's estimate."""

from __future__ import annotations

import io

from rich.console import Console

from migrator.cli.progress import RichProgress
from migrator.engine.events import RowsCopied, TablePlanned


def test_a_bar_counts_documents_not_the_embedded_rows_read_with_them() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    with RichProgress(console) as progress:
        progress.emit(TablePlanned("customers", "public.customers", 100, 2, 0, 0, 0))
        # 40 customers written, read with 360 embedded rows: 40 of 100, not full.
        progress.emit(RowsCopied("customers", 400, 40))
        task = progress.progress.tasks[progress.tasks["customers"]]
        assert (task.completed, task.total) == (40, 100)


def test_a_resumed_bar_starts_at_the_documents_already_written() -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    with RichProgress(console) as progress:
        progress.emit(TablePlanned("customers", "public.customers", 100, 4, 2, 900, 50))
        task = progress.progress.tasks[progress.tasks["customers"]]
        assert (task.completed, task.total) == (50, 100)
