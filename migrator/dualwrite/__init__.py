"""migrator.dualwrite: for applications in the window in which they write both databases.

    from migrator.dualwrite import DualWrite

    dual = DualWrite.open("plans/shop.yaml")      # the migration's plan: its mapping, both URLs
    dual.install(SessionFactory)                   # SQLAlchemy: mirror what sessions commit
    customer = dual.shadow_read(lambda: session.get(Customer, 7), collection="customers", ids=[7])

Mismatches and failures go to a Reporter (default: LoggingReporter, logging + counters);
nothing is raised into the application once its own read or write is done.
"""

from migrator.dualwrite.core import DualWrite
from migrator.dualwrite.report import DUAL_WRITE, SHADOW_READ, LoggingReporter, Mismatch, Reporter

__all__ = ["DUAL_WRITE", "SHADOW_READ", "DualWrite", "LoggingReporter", "Mismatch", "Reporter"]
