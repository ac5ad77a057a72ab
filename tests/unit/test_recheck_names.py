"""A recheck that finds differences under rollback's fence names the documents (the first five),
so that an operator knows where to look before `migrator verify --json`."""

from __future__ import annotations

from migrator.mapping.affected import DocumentId, ElementKey
from migrator.operations.rollback_after_cutover.attempts import _named


def test_the_first_five_documents_are_named_and_the_rest_counted() -> None:
    refs = [DocumentId("public.customers", i) for i in range(9, 16)]
    assert _named(refs) == (
        "public.customers 9, public.customers 10, public.customers 11, public.customers 12, "
        "public.customers 13 and 2 more"
    )


def test_a_reference_without_an_id_names_its_collection() -> None:
    refs = [DocumentId("orders", "a-1"), ElementKey("customers", "orders", (("id", 3),))]
    assert _named(refs) == "orders 'a-1', customers"
