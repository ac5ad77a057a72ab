"""The words a source's change capture goes by in what users read: status, progress, errors,
hints, dry-run, rollback steps and the runbook (docs/architecture.md, "A source's words").

Phases and operations call every source's objects by the same protocol names (a "slot", a
"publication", positions in a change log); users must read the source's own names: PostgreSQL
keeps a replication slot and a publication and retains WAL, a MySQL/MariaDB binlog has neither
(our "slot" is a row of `_migrator_slots`, our "publication" the markers table beside it). Each
source adapter hands out its vocabulary as a class attribute, so that text can be written for a
plan without connecting (dry run, runbook, status of an unreachable source).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceVocabulary:
    """A source's nouns and the texts built from them. Templates take `{stream}`,
    `{publication}` (the protocol's names) and `{tables}` where they say so."""

    database: str  # the source as users name it: "PostgreSQL"
    change_log: str  # the log changes are read from: "WAL", "binlog"
    stream: str  # what holds a run's read position on the source: "replication slot"
    # The source's object that selects the tables whose changes are sent, or None where the change
    # log carries every table and there is nothing of the kind.
    publication: str | None
    # What CaptureSetup.ensure_publication creates and drop_publication drops, {publication}.
    capture_objects: str
    create_capture: str  # the snapshot's first source step, {publication} {tables}
    create_stream: str  # the slot step of the snapshot, {stream}
    read_how: str  # how changes are read in stream mode
    poll_how: str  # how they are read in poll mode (phases.cdc.mode), {changes}: changes a poll
    acknowledge: str  # what acknowledging the applied position does, {stream}
    marker: str  # how a marker is written into the change log (cutover, verify, heartbeats)
    statistics: str  # where estimated row counts come from
    reverse_tag: str  # how reverse sync's writes are told apart in the change log, {origin}
    reverse_state: str  # what reverse sync keeps on the source, which rollback removes
    drop_stream_sql: str  # how a DBA drops a leftover stream by hand, {stream}
    drop_capture_sql: str  # how a DBA drops the capture objects by hand, {publication}

    def capture(self, publication: str) -> str:
        """The capture objects of a plan, named: "publication p", "table `_migrator_markers`"."""
        return self.capture_objects.format(publication=publication)

    def changes_of(self, publication: str) -> str:
        """Whose changes a stream reads: "changes of publication p", or of the mapped tables
        where the source has no publication."""
        if self.publication is None:
            return "changes of the mapped tables"
        return f"changes of {self.publication} {publication}"

    def named_stream(self, stream: str) -> str:
        """ "replication slot s", "binlog stream s"."""
        return f"{self.stream} {stream}"

    def drop_stream_hint(self, stream: str) -> str:
        """The statement that drops a leftover stream by hand."""
        return self.drop_stream_sql.format(stream=stream)

    def drop_capture_hint(self, publication: str) -> str:
        """The statement that drops the capture objects by hand."""
        return self.drop_capture_sql.format(publication=publication)

    def to_go(self, gap: int | None) -> str:
        """How much change log lies ahead ("1,024 bytes of WAL to go"); `gap` None where the
        positions alone cannot tell (Positions.bytes_between)."""
        if gap is None:
            return f"more {self.change_log} to go"
        return f"{gap:,} bytes of {self.change_log} to go"

    def teardown(self, stream: str, publication: str) -> tuple[str, str]:
        """What undoing change capture does on the source, in order: drop the stream, then the
        capture objects (the snapshot's undo and rollback list these)."""
        return f"drop {self.named_stream(stream)}", f"drop {self.capture(publication)}"


@dataclass(frozen=True)
class Prerequisite:
    """One line of a source's prerequisites as the runbook lists them: what must hold, and which
    preflight check (`check`, for `subject` or all of its findings) decides it. Each adapter lists
    its own (PostgreSQL: wal_level, a free replication slot, ...; MySQL: log_bin, binlog_format,
    ...), so that the runbook shows a source's own steps without asking which source it is.
    `found_ok` is what was seen when the check passed; `inspected` whether the thing checked was
    read at all (a table that was not found, a source not reached: no)."""

    check: str
    requirement: str
    found_ok: str | None = None
    subject: str | None = None
    inspected: bool = False


# A document target's key words (MongoDB's, and the memory target's that stands in for it); also
# what `mapping.resolve` says when it is not told the target.
DOCUMENT_ID_ROLE = "the document _id of '{collection}'"
ARRAY_ID_REFUSED = "MongoDB refuses an array as _id"


@dataclass(frozen=True)
class TargetVocabulary:
    """A target's words in `plan`'s target checks (docs/architecture.md, "A source's words"):
    what reverse sync reads the target's changes through, and the fix for each capability the
    server lacks. A class attribute of each target adapter, as a source's vocabulary is."""

    reverse_feed: str  # "change streams"; a PostgreSQL target: logical decoding (wal_level)
    transactions_fix: str  # the hint of target.transactions' WARN
    reverse_feed_fix: str  # the hint of target.change_streams' WARN
    # The runbook's words (migrator/runbook/): what the target is and holds, and its checklist.
    database: str  # "MongoDB", "PostgreSQL"
    collection: str  # what a plan's collection is there: "collection", "table"
    document: str  # what a document is there: "document", "row"
    becomes: str  # what a collection's own table becomes, {key} its key columns
    value_types: str  # what `plan` shows the shapes with: "BSON types"
    transactions_requirement: str  # target.transactions' line in the runbook's checklist
    reverse_feed_requirement: str  # target.change_streams' line
    replica_sets: bool  # the topology names a replica set (or says standalone)
    rollback_fence: str  # how the fence of a rollback after cutover holds the application's writes
    copy_speed: str  # what the runbook's assumed copy throughput is about
    oversize: str  # what `phases.snapshot.on_oversize: skip` skips, and what to do
    switch_kinds: str  # the cutover switch kinds that work with this target, in words
    # `plan`'s refusal of a key column (mapping.key_type): what the key forms there, {collection}
    # the plan's collection; and why one array column alone cannot be that key.
    key_role: str  # "the document _id of '{collection}'"
    array_key: str  # "MongoDB refuses an array as _id"
    # `migrator finish`'s words (operations/finish.py): what reverse sync and forward CDC keep on
    # the target until the migration ends, and where the run's own records live there.
    finish_feed: str  # "nothing to drop: ..." (MongoDB); a slot, a publication, an origin (PostgreSQL)
    records: str  # "the `_migrator` collection", "table migrator.state"
