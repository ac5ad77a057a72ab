"""The MongoDB applier's TargetLostWrites names positions as the source writes them: a WAL LSN
for PostgreSQL ("0/16B3748"), a binlog file and offset for MySQL ("000012:4567"); the target never
formats a source's position itself (docs/architecture.md, "Layers"). The loss is made as a server
that lost an acknowledged commit would: the checkpoint record goes back to an earlier one."""

from __future__ import annotations

from typing import Any

import pytest

from migrator.adapters.base import Positions, WriteOp
from migrator.adapters.mongodb.applier import STATE_COLLECTION, ChangeApplier
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.postgres import PostgresSource
from migrator.errors import TargetLostWrites

# (positions, three increasing positions, their texts as each source's users read them)
CASES = {
    "postgres": (
        PostgresSource.positions,
        (0x16B3748, 0x16B3800, 0x1_0000_0010),
        ("0/16B3748", "0/16B3800", "1/10"),
    ),
    "mysql": (
        MysqlSource.positions,
        (12 << 32 | 4567, 12 << 32 | 9000, 13 << 32 | 4),
        ("000012:4567", "000012:9000", "000013:4"),
    ),
}


def _apply(applier: ChangeApplier, positions: Positions, position: int) -> None:
    op = WriteOp("items", "update", {"_id": position}, {"$set": {"at": position}}, upsert=True)
    applier.apply([op], position, positions.text(position))


@pytest.mark.parametrize("source", sorted(CASES))
def test_lost_writes_name_positions_as_the_source_writes_them(mongo_db: Any, source: str) -> None:
    db = mongo_db
    positions, (first, second, third), (first_text, second_text, _) = CASES[source]
    checkpoint_id = f"lost-{source}"
    applier = ChangeApplier(db, checkpoint_id, transactions=True)
    _apply(applier, positions, first)
    earlier = db[STATE_COLLECTION].find_one({"_id": checkpoint_id})
    _apply(applier, positions, second)
    db[STATE_COLLECTION].replace_one({"_id": checkpoint_id}, earlier)  # the second commit is lost

    with pytest.raises(TargetLostWrites) as applying:
        _apply(applier, positions, third)
    assert f"is at {first_text}, but this run committed {second_text} " in applying.value.message

    # A new applier (a resumed run) that read the newer checkpoint, then finds it gone.
    db[STATE_COLLECTION].replace_one(
        {"_id": checkpoint_id}, {**earlier, "position": second, "position_text": second_text}
    )
    resumed = ChangeApplier(db, checkpoint_id, transactions=True)
    assert resumed.checkpoint() is not None
    db[STATE_COLLECTION].delete_one({"_id": checkpoint_id})
    with pytest.raises(TargetLostWrites) as reading:
        resumed.checkpoint()
    assert f"is at none, but this run committed {second_text} " in reading.value.message
    assert db["items"].count_documents({}) == 2  # the lost-write batch wrote nothing
