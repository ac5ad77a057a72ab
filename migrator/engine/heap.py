"""The garbage collector while a stream is followed (docs/architecture.md, "A change's path"):
CDC makes a few short-lived containers for every change (a row, a write, its filter), and
every so many of them the collector's oldest generation is walked whole: every object the
process made before, its modules, plan and connections included. Frozen for the loop's
duration (gc.freeze), those are left out of every collection; the loop's own objects are
collected as before. Measured on the pg-cdc benchmark's changes in one thread: the collector
took 10 to 25% of the CPU of decoding, mapping and formatting them, about a tenth once frozen.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def startup_frozen() -> Iterator[None]:
    """Everything alive now left out of collections until the block ends. Collected first, so
    that no garbage is frozen with it; unfrozen after, so that what dies later is collected as
    ever (a library's caller may follow a stream many times in one process)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
