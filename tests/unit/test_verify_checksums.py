"""Verify by checksums (phases/verify_checksums.py; docs/architecture.md, "Verify by checksums"):
which tables both sides hash alike and in which form (the source's fastest that the target offers
too), and how a key range is settled by its digests: equal at first
look; different at first, equal once the target has applied the source's position of a second
look; or left to the row by row comparison (still different, or the target not there in time).

The two sides are fakes that hand out scripted digests and record what they were asked."""

from __future__ import annotations

from collections.abc import Sequence

from migrator.adapters.base import RangeDigest
from migrator.phases.verify_checksums import HashedTable, RangeHashes, agreed_tables

TABLE = HashedTable("public.t", "public.t", ("id", "v"), ("id", "w"), ("id",), ("integer",), "F")


class Side:
    """One side's checksums: the forms it offers by table, digests handed out in order."""

    def __init__(self, offered: dict[str, list[str]], digests: Sequence[RangeDigest] = ()) -> None:
        self.offered = offered
        self.digests = list(digests)
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.hashed_in: list[str] = []
        self.closed = 0

    def range_checksums(self) -> Side:
        return self

    def forms(self, table: str, columns: Sequence[str], key: Sequence[str]) -> list[str]:
        self.asked.append((table, tuple(columns)))
        return self.offered.get(table, [])

    def checksum(
        self,
        form: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> RangeDigest:
        self.asked.append((table, tuple(columns)))
        self.hashed_in.append(form)
        return self.digests.pop(0)

    def close(self) -> None:
        self.closed += 1


def test_a_table_is_hashed_where_both_sides_offer_a_common_form() -> None:
    source = Side({"public.t": ["F"], "public.u": ["F"]})
    target = Side({"public.t": ["F"], "public.u": ["G"]})
    other = HashedTable("public.u", "public.u", ("id",), ("id",), ("id",), ("integer",))
    unagreed = HashedTable("public.t", "public.t", ("id", "v"), ("id", "w"), ("id",), ("integer",))
    agreed, differing = agreed_tables(source, target, [unagreed, other])
    assert agreed == {"public.t": TABLE}
    assert differing == [
        "public.u: compared row by row, as source and target hash its rows differently (source F, target G)"
    ]
    # Each side is asked for its own columns (a renamed field: v on the source, w on the target).
    assert source.asked[0] == ("public.t", ("id", "v")) and target.asked[0] == ("public.t", ("id", "w"))
    assert (source.closed, target.closed) == (1, 1)
    # A side that does not hash at all: nothing agreed, nothing said.
    assert agreed_tables(source, object(), [TABLE]) == ({}, [])
    # A side that cannot hash a table (it lacks a column): nothing agreed, nothing said.
    assert agreed_tables(source, Side({}), [unagreed]) == ({}, [])


def test_the_sides_agree_on_the_sources_fastest_form_that_the_target_offers_too() -> None:
    unagreed = HashedTable("public.t", "public.t", ("id", "v"), ("id", "w"), ("id",), ("integer",))
    # Both offer the fast form: it is the one.
    agreed, _ = agreed_tables(
        Side({"public.t": ["fast", "md5"]}), Side({"public.t": ["fast", "md5"]}), [unagreed]
    )
    assert agreed["public.t"].form == "fast"
    # The target offers only the slow one (an older server), or its fast form differs (another
    # probe): the slow one both offer.
    for target in (["md5"], ["fast on another machine", "md5"]):
        agreed, differing = agreed_tables(
            Side({"public.t": ["fast", "md5"]}), Side({"public.t": target}), [unagreed]
        )
        assert (agreed["public.t"].form, differing) == ("md5", [])
    # The agreed form is the one each side hashes in.
    source = Side({"public.t": ["fast", "md5"]}, [RangeDigest(1, "d", "0/1")])
    target = Side({"public.t": ["md5"]}, [RangeDigest(1, "d")])
    agreed, _ = agreed_tables(source, target, [unagreed])
    assert RangeHashes(source, target, agreed).settle("public.t", None, None, lambda p: True) is not None
    assert (source.hashed_in, target.hashed_in) == (["md5"], ["md5"])


def test_equal_digests_settle_a_range_at_first_look_without_waiting() -> None:
    source = Side({}, [RangeDigest(3, "d", "0/10")])
    target = Side({}, [RangeDigest(3, "d")])
    waited: list[str] = []
    found = RangeHashes(source, target, {"public.t": TABLE}).settle(
        "public.t", None, ["5"], lambda p: waited.append(p) or True
    )
    assert found == RangeDigest(3, "d", "0/10") and waited == []
    assert (source.hashed_in, target.hashed_in) == (["F"], ["F"])


def test_a_range_in_flight_is_hashed_again_once_the_target_applied_the_second_position() -> None:
    source = Side({}, [RangeDigest(3, "new", "0/10"), RangeDigest(3, "new", "0/20")])
    target = Side({}, [RangeDigest(3, "old"), RangeDigest(3, "new")])
    waited: list[str] = []
    found = RangeHashes(source, target, {"public.t": TABLE}).settle(
        "public.t", None, None, lambda p: waited.append(p) or True
    )
    assert found == RangeDigest(3, "new", "0/20") and waited == ["0/20"]


def test_a_range_still_different_or_not_applied_in_time_goes_row_by_row() -> None:
    source = Side({}, [RangeDigest(3, "a", "0/10"), RangeDigest(3, "a", "0/20")])
    target = Side({}, [RangeDigest(3, "b"), RangeDigest(3, "b")])
    hashes = RangeHashes(source, target, {"public.t": TABLE})
    assert hashes.settle("public.t", None, None, lambda p: True) is None
    # The target did not get to the source's position: it is not hashed a second time.
    source.digests = [RangeDigest(3, "a", "0/30"), RangeDigest(3, "a", "0/40")]
    target.digests = [RangeDigest(2, "c")]
    assert hashes.settle("public.t", None, None, lambda p: False) is None
    assert target.digests == []
    # A collection not hashed on both sides is never hashed.
    assert hashes.settle("public.other", None, None, lambda p: True) is None
    hashes.reset()
    assert (source.closed, target.closed) == (1, 1)
