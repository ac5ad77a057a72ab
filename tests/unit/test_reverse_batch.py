"""How reverse sync batches the target's transactions (phases/reverse.py): forward CDC's own
(echo) are counted and skipped whole, documents named twice are read and written once."""

from __future__ import annotations

from migrator.adapters.mongodb.changes import ChangedDocument, Transaction
from migrator.phases.reverse import _Batch


def transaction(*documents: ChangedDocument, echo: bool = False, at: int = 1) -> Transaction:
    return Transaction(
        None,
        list(documents),
        echo=echo,
        events=len(documents) + echo,
        token={"_data": f"t{at}"},
        cluster_time=at,
    )


def test_an_echo_transaction_is_skipped_whole_but_moves_the_position() -> None:
    batch = _Batch()
    batch.add(transaction(ChangedDocument("customers", 1), echo=True, at=5))
    assert batch.documents == {}
    assert (batch.skipped, batch.events, batch.token, batch.cluster_time) == (1, 2, {"_data": "t5"}, 5)
    assert batch.cluster_times == []  # no lag measured over what was not applied
    assert not batch.empty


def test_documents_named_twice_are_kept_once_in_first_seen_order() -> None:
    batch = _Batch()
    batch.add(transaction(ChangedDocument("orders", 2), ChangedDocument("customers", 1), at=1))
    batch.add(transaction(ChangedDocument("customers", 1), ChangedDocument("customers", 1.0), at=2))
    assert list(batch.documents.values()) == [
        ChangedDocument("orders", 2),
        ChangedDocument("customers", 1),
        ChangedDocument("customers", 1.0),  # another BSON type: another document
    ]
    assert batch.cluster_times == [1, 2] and batch.events == 4 and batch.skipped == 0
