"""Rollback after cutover: the source becomes primary again, with nothing written on the
target since the cutover lost.

  check      no process follows the plan (the slot is free); the run is cut over; reverse
             sync was on (without it the source lacks the target's writes: refused)
  verify     a verify pass of source against target through the mapping while the target
             still takes writes (reverse sync follows meanwhile): what it does not find equal,
             and every document either direction changes from its start on, is recorded
  -- each attempt, as cutover's (phases/cutover.py), up to 1 + cutover.retries --
  lag        outside the fence, in rounds: what was recorded is rechecked, then reverse sync
             catches up with a marker written on the target now (recording what changed
             meanwhile), until the catch-up took at most `cdc.max_lag` and the drain and the
             recheck of what is left are predicted to fit `cutover.max_write_freeze` at the
             rounds' pace (recheck_rate.py), or what is left stops falling; then forward CDC
             applies one committed on the source now, within `cdc.max_lag` too; a lag over it,
             or a predicted freeze over the budget, abandons the attempt before any fence
  fence      target writes refused (a validator on the mapped collections, or the
             operator's command fence with MIGRATOR_DIRECTION=back)        -- the freeze starts;
             the collections' own options are recorded first ('fencing')
  drain      reverse sync applies everything written on the target before the fence (forward
             CDC's marker came before the fence: a late source write is carried after the flip)
  recheck    the recorded documents compared at rest: all equal, else the fence is lifted and
             the target stays primary (CheckFailed)
  budget     drain and recheck must end within `cutover.max_write_freeze` of the fence: else
             the fence is lifted (writes were only delayed), the attempt is recorded as
             abandoned, and the next one starts after `retry_pause` (AttemptsAbandoned at last)
  sequences  the source's sequences set past the target's last values (plus `sequence_margin`),
             never back, where the source has sequences: the application's next insert on the
             source takes no key the target gave out (sequences.py)
  flipping   recorded just before the flip
  flip       the switch names the source                              -- the point of no return
  -- then --
  drain      reverse sync once more: a delete the validator let through, a write in flight
  unfence    the fence is lifted                                       -- the freeze ends, measured
  forget     reverse sync's checkpoint and replication origin leave the source
  hook       on_rollback
  done       the cutover phase is marked rolled back: forward CDC goes on, the migration is
             where it was before `migrator cutover` (which may run again; a second
             `migrator rollback` removes the migration entirely)

Why the recheck is enough: a document the pass found equal, that neither direction changed
since the pass began, is still equal; every other one is rechecked once nothing moves. So the
freeze lasts the drain and the recheck of what changed, not a whole verify pass (as cutover's
freeze lasts the check of what changed since its gate's pass).

Each step is recorded as a 'rollback' checkpoint of the current cutover (those after its
'switched' checkpoint). A crash before 'flipping' lifts a fence it left (back to the options
recorded with 'fencing') and starts over. A crash after 'flipping' and before the flip's own
checkpoint flips (again): the recheck had passed under a fence that outlives the process, and
starting over would lift it while the switch may already name the source (both sides writable).
After the flip, the recorded steps are not redone. MIGRATOR_TEST_KILL_AT makes the process kill
itself between an action and its checkpoint, for the kill -9 tests only (crash.py).

Forward CDC runs on a thread meanwhile: the verify step waits for it to apply its markers,
and it carries a late write that reached the source.

The package: switchback.py (the steps in order, and resuming them), attempts.py (the gate and
the freeze budget of each attempt), recheck_rate.py (the freeze predicted before the fence), drain.py (reverse sync and forward CDC caught up), fence.py
(the target's fence), sequences.py (the source's sequences past the target's), steps.py (the step list and the result), crash.py (the kill -9 points).
"""

from __future__ import annotations

from migrator.operations.rollback_after_cutover.crash import KILL_AT_ENV
from migrator.operations.rollback_after_cutover.fence import BackCommandFence
from migrator.operations.rollback_after_cutover.steps import SwitchbackResult, SwitchbackStep, steps_of
from migrator.operations.rollback_after_cutover.switchback import Switchback

__all__ = ["KILL_AT_ENV", "BackCommandFence", "Switchback", "SwitchbackResult", "SwitchbackStep", "steps_of"]
