"""What `migrator status` reads live from the databases, each asked separately so that one being
down never hides what the others know: the target's ownership record, its CDC checkpoint and
collection counts; the source's replication slot and reverse sync's checkpoint. The adapters are
built from the plan's URLs (adapters/registry.py), read once and closed; errors come back as the
section's `EndpointStatus` (its text without a password)."""

from __future__ import annotations

import datetime
from typing import Any

from migrator.adapters.base import OwnerRecord, SourceAdapter, TargetAdapter
from migrator.adapters.registry import source_for, target_for
from migrator.errors import MigratorError
from migrator.operations.status.report import EndpointStatus, SlotStatus
from migrator.operations.status.times import iso
from migrator.plan.models import Plan
from migrator.plan.names import cdc_checkpoint_id
from migrator.redact import endpoint_of, redact_text, url_passwords

STATUS_TIMEOUT_MS = 3_000  # the target's server selection; a status must not hang on a dead server


class LiveReads:
    """The plan's databases, asked read-only for one report."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._source_url = plan.source.url.get_secret_value()
        self._target_url = plan.target.url.get_secret_value()
        self._secrets = url_passwords(self._source_url, self._target_url)

    def clean(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _source(self) -> SourceAdapter:
        """The plan's source adapter (it connects on first use; close it)."""
        return source_for(self.plan.source.adapter, self._source_url, **self.plan.source_options)

    def _target(self) -> TargetAdapter:
        """The plan's target adapter, with a short server selection timeout (close it)."""
        return target_for(
            self.plan.target.adapter,
            self._target_url,
            self.plan.target.database,
            timeout_ms=STATUS_TIMEOUT_MS,
        )

    def source_endpoint(self) -> EndpointStatus:
        try:
            source = self._source()
        except MigratorError:
            return EndpointStatus(endpoint_of(self._source_url))
        source.close()
        return EndpointStatus(source.name)

    def target_endpoint(self) -> EndpointStatus:
        return EndpointStatus(f"{endpoint_of(self._target_url)} database {self.plan.target.database}")

    def owner(self) -> OwnerRecord | None:
        """The ownership record, or None when there is none or the target cannot be read (the
        target's section of the report says so)."""
        target = self._target()
        try:
            return target.ownership(self.plan.name).read()
        except MigratorError:
            return None
        finally:
            target.close()

    def target(
        self, status: EndpointStatus
    ) -> tuple[EndpointStatus, dict[str, int] | None, dict[str, Any] | None]:
        """The target reached or not, its collections' counts, and CDC's checkpoint record."""
        target = self._target()
        try:
            applied = target.checkpoint_record(cdc_checkpoint_id(self.plan.name))
            counts = target.existing_collections()
        except MigratorError as exc:
            return EndpointStatus(status.endpoint, False, self.clean(exc.message)), None, None
        finally:
            target.close()
        return EndpointStatus(status.endpoint, True), counts, applied

    def source(self, status: EndpointStatus, slot: SlotStatus) -> tuple[EndpointStatus, SlotStatus]:
        """The source reached or not, and the run's replication slot as it is now."""
        try:
            source = self._source()
            try:
                monitor = source.monitor()
                try:
                    state = monitor.state(slot.name)
                finally:
                    monitor.close()
            finally:
                source.close()
        except MigratorError as exc:
            return EndpointStatus(status.endpoint, False, self.clean(exc.message)), slot
        reached = EndpointStatus(status.endpoint, True)
        if state is None:  # before the snapshot created it, or after a rollback dropped it
            return reached, SlotStatus(slot.name, exists=False)
        return reached, SlotStatus(
            slot.name,
            exists=True,
            active=bool(state["active"]),
            confirmed_position=state["confirmed"],
            current_position=state["current"],
            retained_wal_bytes=int(state["retained_bytes"]),
        )

    def reverse(self) -> tuple[str | None, int | None]:
        """Reverse sync's checkpoint on the source: the cluster time of the last target change it
        covers (ISO) and the events covered; None where none is stored or the source was not
        reached (the source section says whether it was)."""
        try:
            source = self._source()
            try:
                checkpoint = source.reverse_checkpoint(self.plan.name)
            finally:
                source.close()
        except MigratorError:
            return None, None
        if checkpoint is None:
            return None, None
        applied_until = None
        if checkpoint.cluster_time is not None:
            applied_until = iso(datetime.datetime.fromtimestamp(checkpoint.cluster_time >> 32, datetime.UTC))
        return applied_until, checkpoint.events
