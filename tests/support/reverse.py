"""Helpers for reverse-sync tests that run reverse sync in a child process (killed with -9): the
child resolves the plan's collection mappings against the source itself."""

from __future__ import annotations

from migrator.adapters.postgres import PostgresSource
from migrator.mapping.spec import CollectionMapping, resolve, tables_of
from migrator.plan import load_plan


def child_mappings(plan: str, pg_url: str, mongo_url: str, database: str) -> list[CollectionMapping]:
    env = {"MIGRATOR_SOURCE_URL": pg_url, "MIGRATOR_TARGET_URL": mongo_url, "MIGRATOR_TARGET_DB": database}
    loaded = load_plan(plan, env=env)
    with PostgresSource(pg_url) as source:
        info = source.inspect([t for c in loaded.collections for t in tables_of(c)])
    return resolve(loaded.collections, info).collections
