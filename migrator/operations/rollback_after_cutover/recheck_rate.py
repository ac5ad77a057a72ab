"""How long the switch back's recheck under the fence would take, predicted from the rechecks
outside it (attempts.py): an attempt engages the fence only when the drain and the recheck of
what is pending are predicted to fit `cutover.max_write_freeze`, so that no fence is held for
an attempt bound to be abandoned (docs/architecture.md, "Cutover and rollback after cutover").

The rounds outside the fence compare the same kind of references the recheck under it does
(phases/touched.py), so their pace, in seconds per reference, predicts it; their pace in
documents per second is what the messages show."""

from __future__ import annotations

from dataclasses import dataclass

# The share of max_write_freeze a predicted freeze may take: the drain under the fence also
# carries what the target took since the last round, and a busy machine's pace varies.
FIT_SHARE = 0.8


@dataclass
class RecheckRate:
    """The pace of the rechecks measured so far (every round that compared something)."""

    references: int = 0
    documents: int = 0
    seconds: float = 0.0

    def record(self, references: int, documents: int, seconds: float) -> None:
        """One recheck: `references` compared, naming `documents` documents, in `seconds`."""
        if references > 0 and seconds > 0:
            self.references += references
            self.documents += documents
            self.seconds += seconds

    @property
    def measured(self) -> bool:
        return self.references > 0

    def documents_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    def predict(self, references: int) -> float | None:
        """Seconds to recheck `references` references at the pace measured; None before any."""
        if not self.measured:
            return None
        return references * self.seconds / self.references


@dataclass(frozen=True)
class Forecast:
    """The freeze an attempt would hold: the drain (reverse sync's last catch-up) and the
    recheck of `references` (None: no pace measured yet), against `max_write_freeze`."""

    references: int
    drain: float
    recheck: float | None
    documents_per_second: float
    max_write_freeze: float

    @property
    def freeze(self) -> float:
        return self.drain + (self.recheck or 0.0)

    def fits(self, unmeasured_limit: int | None) -> bool:
        """Whether the freeze fits its share of the budget; unmeasured, whether at most
        `unmeasured_limit` references are left (the fixed bound used before the pace is known;
        None: no bound, the budget under the fence decides)."""
        if self.recheck is None:
            return unmeasured_limit is None or self.references <= unmeasured_limit
        return self.freeze <= FIT_SHARE * self.max_write_freeze

    def describe(self) -> str:
        if self.recheck is None:
            return f"{self.references} document(s) for the recheck (its pace not measured yet)"
        return (
            f"{self.references} document(s) for the recheck, predicted {self.recheck * 1000:.0f} ms at "
            f"{self.documents_per_second:.0f} documents/s, plus the drain {self.drain * 1000:.0f} ms: "
            f"{self.freeze * 1000:.0f} ms of max_write_freeze {self.max_write_freeze:g} s "
            f"(at most {FIT_SHARE:.0%} of it is planned)"
        )


def forecast(rate: RecheckRate, references: int, drain: float, max_write_freeze: float) -> Forecast:
    return Forecast(
        references, drain, rate.predict(references), rate.documents_per_second(), max_write_freeze
    )
