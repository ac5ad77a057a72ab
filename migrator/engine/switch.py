"""The switch that tells applications which side is primary, and the operator's hooks.

Kinds (plan `phases.cutover.switch`): a routing file written atomically; a command; a routing
row in PostgreSQL or document in MongoDB. Flipping is idempotent (the same side twice is the
same state), so a cutover resumed after a crash may flip again safely. `primary()` reads the
switch back where that is possible, so `status` and a resumed cutover know where it stands.

One owner (docs/architecture.md, "One owner"): each flip records the run that made it beside
the side it names: a `run_id` column of the routing row, a `run_id` field of the routing
document, and for a routing file a sibling `<file>.owner` (the routing file itself keeps holding
only `source` or `target`, which is what applications read); a command gets MIGRATOR_RUN_ID.
`owner()` reads it back, so that a switch left naming the target by another run (or by hand)
is refused by name instead of taken for this run's own flip.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from migrator.adapters.base import SourceAdapter, TargetAdapter
from migrator.errors import OwnedByAnotherRun, TerminalError
from migrator.plan.models import Switch

Side = Literal["source", "target"]
COMMAND_TIMEOUT_S = 60.0
OWNER_SUFFIX = ".owner"


class SwitchOwnedByAnotherRun(OwnedByAnotherRun):
    """The switch names the target, but this run did not flip it: another run (or a hand) did."""


def run_command(argv: Sequence[str], plan: str, what: str, extra_env: dict[str, str] | None = None) -> str:
    """Run an operator's command (hook, fence or switch) with the plan's name in its environment;
    a non-zero exit or a timeout stops what called it, with the command's own words."""
    env = {**os.environ, "MIGRATOR_PLAN": plan, "MIGRATOR_EVENT": what, **(extra_env or {})}
    try:
        done = subprocess.run(
            list(argv), env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TerminalError(f"{what} command {argv[0]!r} could not run: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-500:]
        raise TerminalError(f"{what} command {argv[0]!r} exited with {done.returncode}: {tail}")
    return done.stdout.strip()


class RoutingSwitch:
    def __init__(
        self, plan: str, settings: Switch, source: SourceAdapter, target: TargetAdapter, run_id: str = ""
    ) -> None:
        self.plan = plan
        self.settings = settings
        self._source = source
        self._target = target
        self.run_id = run_id  # recorded with each flip

    def owner(self) -> str | None:
        """The run that made the switch's last flip, where it can be read back (None: unknown,
        as for a command, a switch never flipped, or one flipped by a version that did not say)."""
        s = self.settings
        if s.kind == "file":
            assert s.path is not None
            try:
                text = Path(s.path + OWNER_SUFFIX).read_text().strip()
            except FileNotFoundError:
                return None
            return text or None
        return self._recorded("run_id", "run_id")

    def refuse_foreign(self) -> None:
        """Raise unless the switch naming the target was flipped by this run: a switch another
        run left (or one set by hand) must not be taken for this run's flip."""
        owner = self.owner()
        if owner == self.run_id:
            return
        by = f"run {owner}" if owner else "a run that did not record itself (or by hand)"
        if self.settings.kind == "file":
            fix = (
                f"if that run is over (rolled back or abandoned), remove the routing file and its owner file "
                f"(rm {self.settings.path} {self.settings.path}{OWNER_SUFFIX}) and run `migrator cutover` "
                "again; if it is live, roll it back with its own state file first, or give this plan "
                "another phases.cutover.switch.path"
            )
        else:
            fix = (
                f"if that run is over, delete plan {self.plan}'s routing entry from {self.describe()} and run "
                "`migrator cutover` again; if it is live, roll it back with its own state file first"
            )
        raise SwitchOwnedByAnotherRun(
            f"{self.describe()} names the target, flipped by {by}, not by run {self.run_id} of plan "
            f"{self.plan}: it belongs to another run",
            hint=fix,
        )

    def describe(self) -> str:
        s = self.settings
        if s.kind == "file":
            return f"routing file {s.path}"
        if s.kind == "command":
            return f"command {' '.join(s.run or [])}"
        if s.kind == "postgres":
            return f"routing table {s.name} on the source"
        return f"routing collection {s.name} on the target"

    def flip(self, primary: Side) -> None:
        direction = "forward" if primary == "target" else "back"
        s = self.settings
        if s.kind == "file":
            assert s.path is not None
            # The owner first: a crash between the two leaves this run named beside the old side.
            _write_atomically(Path(s.path + OWNER_SUFFIX), f"{self.run_id}\n")
            _write_atomically(Path(s.path), f"{primary}\n")
        elif s.kind == "command":
            assert s.run is not None
            run_command(
                s.run,
                self.plan,
                "switch",
                {
                    "MIGRATOR_DIRECTION": direction,
                    "MIGRATOR_PRIMARY": primary,
                    "MIGRATOR_RUN_ID": self.run_id,
                },
            )
        elif s.kind == "postgres":
            self._flip_postgres(primary)
        else:
            self._flip_mongodb(primary)

    def primary(self) -> Side | None:
        """The side the switch names now, or None where it cannot be read back (a command)."""
        s = self.settings
        if s.kind == "file":
            assert s.path is not None
            try:
                text = Path(s.path).read_text().strip()
            except FileNotFoundError:
                return None
            return text if text in ("source", "target") else None  # type: ignore[return-value]
        side = self._recorded("primary_side", "primary")
        return side if side in ("source", "target") else None

    def _recorded(self, column: str, field: str) -> Any:
        """This plan's `column` in the switch table (postgres) or `field` in its document (mongodb);
        None where the table, the column, the row or the document is not there, and for a file or
        a command (their callers read those)."""
        s = self.settings
        if s.kind == "postgres":
            return self._source.routing_value(s.name, self.plan, column)
        if s.kind == "mongodb":
            doc = self._target.routing_document(s.name, self.plan)
            return None if doc is None else doc.get(field)
        return None

    def _flip_postgres(self, primary: Side) -> None:
        self._source.write_routing_row(self.settings.name, self.plan, primary, self.run_id)

    def _flip_mongodb(self, primary: Side) -> None:
        self._target.write_routing_document(self.settings.name, self.plan, primary, self.run_id)


def _write_atomically(path: Path, text: str) -> None:
    """Readers see the old content or the new, never a part: write a sibling, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
