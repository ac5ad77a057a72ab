"""Verify by checksums in the sum form, PostgreSQL -> PostgreSQL (docs/architecture.md, "Verify by
checksums"): each row's 64-bit hashtextextended of its text, summed over a key range.

Equal ranges hash equal on two clusters whose sessions print values otherwise (the settings are
pinned), and each digest is the exact sum of its rows' hashes read one by one; a one-character
change in one row of a 10,000-row range makes that range's digests differ and the row by row
comparison names the key and the field; two sides whose probes differ (another build's hash) fall
back to the md5 form both offer, and two sides without a common form compare row by row; a
database that is not UTF8 offers the md5 form only, whose digest is the md5 of its rows' md5s in
key order, computed here in Python from the rows' text.

Expectations come from the generated data (row counts, keys), from per-row hashes summed in
Python, and from plain SQL on both sides."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from migrator import api
from migrator.adapters.postgres import checksum_forms
from migrator.adapters.postgres.checksum_forms import MD5, SUM, forms_of, hash_of
from migrator.adapters.postgres.checksums import digest, digest_query, pin
from migrator.adapters.postgres_target import checksums as target_checksums
from migrator.engine.events import Collector, Notice
from migrator.phases.verify import VerifyReport
from tests.support.pg_target import PgToPg
from tests.support.servers import PgServer, admin_connection, drop_pg_database, unique_name, with_database

ROWS = 20_000
COLUMNS = ("id", "name", "amount", "score", "seen", "raw", "span", "flag")
SCHEMA = (
    "CREATE TABLE public.big (id integer PRIMARY KEY, name text NOT NULL, amount numeric, "
    "score float8, seen timestamptz, raw bytea, span interval, flag boolean)",
    "INSERT INTO big SELECT g, 'name-' || g || ' Grüße 東京 😀', g / 7.0, g / 3.0, "
    "'2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second 7 microseconds', "
    "'\\x00ff'::bytea || g::text::bytea, g * interval '1 day 3.000004 seconds', "
    f"CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END FROM generate_series(1, {ROWS}) g",
)
TABLES = "- {from: public.big}"
RANGES: tuple[tuple[Sequence[str] | None, Sequence[str] | None], ...] = (
    (None, ["5000"]),
    (["5000"], ["17500"]),
    (["17500"], None),
    (["30000"], None),  # no row
)
# The target's sessions print every value otherwise, unless the hash pins them.
TARGET_DEFAULTS = (
    "SET TimeZone = 'Asia/Tokyo'",
    "SET DateStyle = 'SQL, DMY'",
    "SET IntervalStyle = 'iso_8601'",
    "SET extra_float_digits = 0",
    "SET bytea_output = 'escape'",
)


def _copied(pg2pg: PgToPg, chunk_rows: int = 10_000) -> Any:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES, phases=f"verify: {{chunk_rows: {chunk_rows}}}")
    pg2pg.run(plan)
    return plan


def _verify(pg2pg: PgToPg, plan: Any) -> tuple[VerifyReport, Collector]:
    collector = Collector()
    report = api.verify(plan, state=pg2pg.state_path, env=pg2pg.env, sinks=[collector])
    return report, collector


def _digests(url: str, form: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        found = []
        for lo, hi in RANGES:
            with conn.transaction():
                pin(conn)
                query, params = digest_query(form, "public.big", COLUMNS, ["id"], ["integer"], lo, hi)
                found.append(digest(conn, query, params))
        return found


def _row_hashes(url: str) -> dict[int, int]:
    """Each row's hash, read one by one with the hash's settings pinned."""
    with psycopg.connect(url) as conn, conn.transaction():
        pin(conn)
        rows = conn.execute(
            f'SELECT id, hashtextextended((ROW({", ".join(COLUMNS)})::text) COLLATE "C", 0) FROM big'
        ).fetchall()
    return {int(key): int(hashed) for key, hashed in rows}


def _in_range(key: int, lo: Sequence[str] | None, hi: Sequence[str] | None) -> bool:
    return (lo is None or key > int(lo[0])) and (hi is None or key <= int(hi[0]))


def test_equal_ranges_hash_equal_on_two_clusters_whatever_their_sessions_print(pg2pg: PgToPg) -> None:
    _copied(pg2pg)
    pg2pg.target(*(f"ALTER DATABASE {pg2pg.target_database} {setting}" for setting in TARGET_DEFAULTS))
    # The target's sessions do print otherwise.
    assert pg2pg.target_rows("SELECT seen::text FROM big WHERE id = 1") != pg2pg.source_rows(
        "SELECT seen::text FROM big WHERE id = 1"
    )
    with psycopg.connect(pg2pg.source_url) as source, psycopg.connect(pg2pg.target_url) as target:
        source_forms = forms_of(source, "public.big", COLUMNS, ["id"])
        target_forms = forms_of(target, "public.big", COLUMNS, ["id"])
    assert [hash_of(f) for f in source_forms] == [SUM, MD5]
    assert source_forms == target_forms

    sums = _digests(pg2pg.source_url, source_forms[0])
    assert sums == _digests(pg2pg.target_url, target_forms[0])
    assert _digests(pg2pg.source_url, source_forms[1]) == _digests(pg2pg.target_url, target_forms[1])
    # Each digest: the range's count and the exact sum (no wrap-around) of its rows' hashes.
    hashes = _row_hashes(pg2pg.source_url)
    assert hashes == _row_hashes(pg2pg.target_url)
    expected = []
    for lo, hi in RANGES:
        inside = [h for key, h in hashes.items() if _in_range(key, lo, hi)]
        expected.append((len(inside), str(sum(inside)) if inside else ""))
    assert sums == expected
    assert [n for n, _ in sums] == [5000, 12_500, 2500, 0]


def test_one_character_in_one_row_of_a_large_range_is_found(pg2pg: PgToPg) -> None:
    plan = _copied(pg2pg)
    # Row 12345 takes row 12346's name: one character, a value the table holds elsewhere.
    pg2pg.target("UPDATE big SET name = 'name-12346 Grüße 東京 😀' WHERE id = 12345")
    with psycopg.connect(pg2pg.source_url) as source:
        [form, _] = forms_of(source, "public.big", COLUMNS, ["id"])
    source_sums, target_sums = _digests(pg2pg.source_url, form), _digests(pg2pg.target_url, form)
    assert [s == t for s, t in zip(source_sums, target_sums, strict=True)] == [True, False, True, True]
    assert source_sums[1][0] == target_sums[1][0] == 12_500

    report, _ = _verify(pg2pg, plan)
    assert report.verdict == "different"
    assert [(m.id, m.kind, [d.path for d in m.diffs]) for m in report.mismatches] == [
        (12345, "mismatched", ["name"])
    ]
    # The range holding 12345 went row by row; the others were settled by their digests.
    assert report.ranges >= 2 and report.hashed == report.ranges - 1
    assert report.totals.checked == ROWS and report.totals.equal == ROWS - 1


def _other_probe(forms: list[str], hashes: Sequence[str]) -> list[str]:
    """`forms` as another build would give them: the given hashes' forms otherwise."""
    changed = []
    for form in forms:
        parsed = json.loads(form)
        if parsed["hash"] in hashes:
            parsed["probe"] = "another build"
        changed.append(json.dumps(parsed, sort_keys=True))
    return changed


@pytest.mark.parametrize(("differing", "hashed_in"), [((SUM,), MD5), ((SUM, MD5), None)])
def test_sides_whose_forms_differ_fall_back_to_a_common_form_or_row_by_row(
    pg2pg: PgToPg,
    monkeypatch: pytest.MonkeyPatch,
    differing: tuple[str, ...],
    hashed_in: str | None,
) -> None:
    plan = _copied(pg2pg, chunk_rows=5000)
    pg2pg.target("UPDATE big SET score = 1.5 WHERE id = 777")

    def target_forms(conn: Any, table: str, columns: Sequence[str], key: Sequence[str]) -> list[str]:
        return _other_probe(checksum_forms.forms_of(conn, table, columns, key), differing)

    used: list[str] = []

    def target_query(form: str, *args: Any) -> Any:
        used.append(hash_of(form))
        return digest_query(form, *args)

    monkeypatch.setattr(target_checksums, "forms_of", target_forms)
    monkeypatch.setattr(target_checksums, "digest_query", target_query)
    report, events = _verify(pg2pg, plan)

    assert [(m.id, m.kind, [d.path for d in m.diffs]) for m in report.mismatches] == [
        (777, "mismatched", ["score"])
    ]
    assert report.totals.checked == ROWS
    notices = [n.message for n in events.of(Notice) if "hash its rows differently" in n.message]
    if hashed_in is None:
        assert (report.hashed, used) == (0, [])
        assert len(notices) == 1 and notices[0].startswith("public.big: compared row by row")
    else:
        assert report.ranges >= 4 and report.hashed == report.ranges - 1
        assert set(used) == {hashed_in} and notices == []


def test_a_database_not_utf8_offers_the_md5_form_only(
    pg_target_server: PgServer, request: pytest.FixtureRequest
) -> None:
    dbname = unique_name(request.node.name, prefix="latin")
    with admin_connection(pg_target_server.url) as admin:
        admin.execute(
            f"CREATE DATABASE {dbname} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    try:
        url = with_database(pg_target_server.url, dbname)
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE public.t (id integer PRIMARY KEY, name text, score float8)")
            conn.execute("INSERT INTO t SELECT g, 'Grüße ' || g, g / 3.0 FROM generate_series(1, 500) g")
            conn.commit()
            forms = forms_of(conn, "public.t", ["id", "name", "score"], ["id"])
            assert [hash_of(f) for f in forms] == [MD5]
            assert json.loads(forms[0])["encoding"] == "LATIN1"
            with conn.transaction():
                pin(conn)
                query, params = digest_query(
                    forms[0], "public.t", ["id", "name", "score"], ["id"], ["integer"], ["100"], ["400"]
                )
                found = digest(conn, query, params)
                texts = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT ROW(id, name, score)::text FROM t WHERE id > 100 AND id <= 400 ORDER BY id"
                    )
                ]
        # md5() hashes the text's bytes in the database's encoding.
        hashes = "".join(hashlib.md5(t.encode("latin-1")).hexdigest() for t in texts)
        assert found == (300, hashlib.md5(hashes.encode()).hexdigest())
    finally:
        drop_pg_database(pg_target_server.url, dbname)
