"""Which secondary objects a PostgreSQL target builds after the copy (adapters/postgres_target/post_copy.py)."""

from __future__ import annotations

from migrator.adapters.base import SchemaObject
from migrator.adapters.postgres_target.post_copy import post_copy

TARGETS = {"public.t": ("public.t", {"a": "a", "b": "b"})}


def test_an_object_calling_a_function_of_the_source_database_is_not_built_and_says_which() -> None:
    """Its build would fail on the target (42883) after the copy and stop the run (100_bugs.pl's
    index predicate): `plan` warns instead (docs/architecture.md, "After the copy")."""
    plain = SchemaObject("postgresql", "index", "public.t", "t_b", "USING btree (b)", columns=("b",))
    calling = SchemaObject(
        "postgresql",
        "index",
        "public.t",
        "t_b_partial",
        "USING btree (b) WHERE (a > public.double(1))",
        columns=("a", "b"),
        calls=("function public.double(integer)",),
    )
    built = post_copy([plain, calling], TARGETS)
    assert [s.name for s in built.statements] == ["t_b"]
    ((obj, why),) = built.skipped
    assert obj.name == "t_b_partial" and "function public.double(integer)" in why
