"""What the long-running commands (run, cutover, verify, rollback) add for operators watching
them: structured logs, Prometheus metrics and the live dashboard (docs/dashboard.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from migrator import api
from migrator.cli.logs import LogFormat, LogLines
from migrator.cli.render import make_console
from migrator.engine.events import EventSink
from migrator.engine.live_state import LiveState
from migrator.engine.metrics import MetricsServer, RunMetrics
from migrator.errors import MigratorError
from migrator.redact import url_passwords

if TYPE_CHECKING:
    from migrator.cli.dashboard.server import DashboardServer


class Observed:
    """The run's optional observers: `--log-format` lines on stderr, the `--metrics-port`
    endpoint and the `--http-port` dashboard. `start()` returns the event sinks to pass to the
    run; `close()` stops serving. The dashboard's port comes from the command's context, where
    `--http-port` keeps it (cli/options.py, observe_options), unless given here."""

    def __init__(
        self,
        plan_file: str,
        log_format: str | None,
        metrics_port: int | None,
        metrics_addr: str,
        http_port: int | None = None,
        *,
        least: str = "debug",
    ) -> None:
        self.plan_file = plan_file
        self.least = least
        self.log_format: LogFormat | None = "json" if log_format == "json" else "text" if log_format else None
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        self.log: LogLines | None = None
        self.metrics: RunMetrics | None = None
        self.server: MetricsServer | None = None
        context = click.get_current_context(silent=True)
        if http_port is None and context is not None:
            http_port = context.meta.get("migrator.http_port")
        self.http_port = http_port
        self.command = context.info_name if context is not None and context.info_name else "run"
        self.live: LiveState | None = None
        self.dashboard: DashboardServer | None = None

    @classmethod
    def of(cls, plan_file: str, options: Mapping[str, Any], least: str) -> Observed:
        """From the command's `observe_options` values (cli/options.py), passed as keywords."""
        return cls(
            plan_file,
            options.get("log_format"),
            options.get("metrics_port"),
            options.get("metrics_addr") or "127.0.0.1",
            options.get("http_port"),
            least=least,
        )

    def start(self) -> list[EventSink]:
        sinks: list[EventSink] = []
        if self.log_format is not None:
            # The plan's passwords are masked as literals too, wherever a driver might echo one.
            plan = api.load(self.plan_file)
            secrets = url_passwords(plan.source.url.get_secret_value(), plan.target.url.get_secret_value())
            self.log = LogLines(self.log_format, secrets=secrets, least=self.least)
            sinks.append(self.log)
        if self.metrics_port is not None:
            self.metrics = RunMetrics()
            phases = api.load(self.plan_file).phases  # the limits alerts compare with (ops/)
            self.metrics.set_budgets(
                phases.cdc.max_lag, phases.cdc.max_retained_wal, phases.cutover.max_write_freeze
            )
            self.server = MetricsServer(self.metrics, self.metrics_port, self.metrics_addr)
            sinks.append(self.metrics)
            if self.log is not None:
                self.log.write("info", "metrics.serving", {"url": self.server.url})
            else:
                make_console(stderr=True).print(f"serving metrics at {self.server.url}", markup=False)
        if self.http_port is not None:
            sinks.append(self._serve_dashboard(self.http_port))
        return sinks

    def _serve_dashboard(self, port: int) -> LiveState:
        from migrator.cli.dashboard.server import DashboardServer

        self.live = LiveState(self.command)
        plan = api.load(self.plan_file)
        phases = plan.phases
        self.live.set_budgets(
            phases.cdc.max_lag, phases.cdc.max_retained_wal, phases.cutover.max_write_freeze
        )
        secrets = url_passwords(plan.source.url.get_secret_value(), plan.target.url.get_secret_value())
        self.dashboard = DashboardServer(self.live, port, self.metrics_addr, secrets)
        if self.log is not None:
            self.log.write("info", "dashboard.serving", {"url": self.dashboard.url})
        else:
            make_console(stderr=True).print(f"serving the dashboard at {self.dashboard.url}", markup=False)
        return self.live

    def failed(self, error: MigratorError, command: str = "run") -> bool:
        """Log the error that ends the command (`run.failed`, `verify.failed`, ...); True when it
        was logged (then stderr holds only log lines)."""
        if self.live is not None:
            self.live.failed(type(error).__name__, error.message)
        if self.log is None:
            return False
        self.log.failure(error, f"{command}.failed")
        return True

    def announce(self, kind: str, message: str) -> bool:
        """A signal's effect as a log line; False without `--log-format` (the caller prints it)."""
        if self.log is None:
            return False
        self.log.write("warning", kind, {"message": message})
        return True

    def interrupted(self) -> bool:
        if self.log is None:
            return False
        self.log.write(
            "warning",
            "run.interrupted",
            {"message": "stopped at once; `migrator run` resumes from the last checkpoint"},
        )
        return True

    def close(self) -> None:
        if self.dashboard is not None:
            self.dashboard.close()
            self.dashboard = None
        if self.server is not None:
            self.server.close()
            self.server = None
