"""A randomized write workload against the demo schema (scripts/lib/demo_data.py), for CDC tests.

`Workload` runs in its own thread with its own psycopg connection and a seeded `random.Random`,
committing transactions of mixed shapes until `stop()` (or its bounds on count and time):

- customers inserted with their children (addresses, profile, orders with items), updated (one row
  or a range of rows in one statement), deleted with their children, and re-keyed
  (`UPDATE customers SET id = ...`, the children following through ON UPDATE CASCADE);
- addresses inserted, updated, deleted and moved to another customer (`SET customer_id = other`);
- profiles (1:1) inserted, updated and deleted;
- orders inserted, updated, deleted, moved to another customer with their items, and re-keyed with
  and without items (`UPDATE orders SET id = ...`);
- order items (the grandchildren) inserted, updated, deleted and moved to another order;
- products inserted, updated and deleted;
- TOASTed values: a large incompressible value written into customers.preferences, orders.notes or
  addresses.line2 in one transaction, while later transactions change other columns of the same
  rows (and move or re-key them), so that pgoutput sends the value as unchanged ('u');
- transactions rolled back whole (BEGIN ... ROLLBACK) and committed ones with a part rolled back
  (SAVEPOINT ... ROLLBACK TO SAVEPOINT, and RELEASE);
- on request (`request_big_transaction`), one large transaction of `rows` row changes (mostly
  product inserts, plus order items and product updates, with a rolled-back savepoint inside),
  preceded by a large transaction that is rolled back.

`prepare_source` makes the test-local schema variant the workload needs: ON UPDATE CASCADE on the
foreign keys, so that keys can change under children, and a small logical_decoding_work_mem for the
database, so that larger transactions reach the replication stream as streamed (protocol 2)
in-progress transactions.

With one writer and a seeded generator, the same seed on the same data gives the same sequence of
transactions, whatever the timing; the bounds only decide where it ends.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

# Foreign keys of the demo schema, re-created with ON UPDATE CASCADE (and their ON DELETE action).
_CASCADING_FKS = (
    ("addresses", "addresses_customer_id_fkey", "customer_id", "customers", "ON DELETE CASCADE"),
    ("customer_profiles", "customer_profiles_customer_id_fkey", "customer_id", "customers", "ON DELETE CASCADE"),
    ("orders", "orders_customer_id_fkey", "customer_id", "customers", ""),
    ("order_items", "order_items_order_id_fkey", "order_id", "orders", "ON DELETE CASCADE"),
)  # fmt: skip

NAMES = ("José", "Zoë", "Łukasz", "Søren", "さくら", "Дмитрий", "Ayşe", "Noah", "Renée", "健太", "Ζωή")
SURNAMES = ("García", "Müller", "Nguyễn", "O'Brien", "佐藤", "Иванова", "Øster", "Núñez", "Kim")
CITIES = (
    ("Zürich", "CH"),
    ("Kraków", "PL"),
    ("東京", "JP"),
    ("São Paulo", "BR"),
    ("Αθήνα", "GR"),
    ("Lyon", "FR"),
)
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
CURRENCIES = ("EUR", "USD", "CHF", "JPY", "GBP")
DISCOUNTS = (None, None, 0.05, 0.1, 0.15, 0.25, 0.5, 0.3333)
TAGS = ("new", "sale", "eco", "gift", "♻️", "outdoor")


def _blob(rng: random.Random, size: int) -> str:
    """`size` characters of incompressible text: TOASTed out of line, never compressed in line."""
    return base64.b64encode(rng.randbytes(size * 3 // 4 + 3)).decode()[:size]


def _ts(rng: random.Random) -> datetime:
    """A timestamp, microseconds about half the time (BSON keeps milliseconds)."""
    micros = rng.randrange(5 * 365 * 86_400 * 1_000_000)
    if rng.random() < 0.5:
        micros -= micros % 1000
    return datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _money(rng: random.Random, high: int = 500) -> Decimal:
    return Decimal(rng.randrange(0, high * 100)) / 100


def prepare_source(url: str, *, decoding_work_mem: str = "128kB", sender_timeout: str = "30s") -> None:
    """The test-local schema variant: foreign keys with ON UPDATE CASCADE; and, for the walsenders
    of later replication connections to the database, transactions over `decoding_work_mem` of
    changes streamed in progress (logical_decoding_work_mem), and a wal_sender_timeout shorter than
    the default 60 s, so that a consumer that stops answering while it applies a large transaction
    loses its connection even on a fast target."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table, name, column, parent, on_delete in _CASCADING_FKS:
            conn.execute(
                sql.SQL(
                    "ALTER TABLE {t} DROP CONSTRAINT {n}, ADD CONSTRAINT {n} FOREIGN KEY ({c}) "
                    "REFERENCES {p} (id) {d} ON UPDATE CASCADE"
                ).format(
                    t=sql.Identifier("public", table),
                    n=sql.Identifier(name),
                    c=sql.Identifier(column),
                    p=sql.Identifier("public", parent),
                    d=sql.SQL(on_delete),
                )
            )
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        for name, value in (
            ("logical_decoding_work_mem", decoding_work_mem),
            ("wal_sender_timeout", sender_timeout),
        ):
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(row[0]), sql.Identifier(name), sql.Literal(value)
                )
            )


@dataclass
class WorkloadStats:
    committed: int = 0  # transactions committed
    rolled_back: int = 0  # transactions rolled back whole
    savepoints_rolled_back: int = 0  # ROLLBACK TO SAVEPOINT inside committed transactions
    operations: Counter[str] = field(default_factory=Counter)  # committed operations by kind
    rows: int = 0  # row changes of committed statements (cascades not counted)
    big_rows: int = 0  # row changes of the large committed transaction(s)
    big_rolled_back_rows: int = 0

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.operations.items()))
        return (
            f"{self.committed} committed ({self.rows} rows, large: {self.big_rows}), {self.rolled_back} rolled "
            f"back, {self.savepoints_rolled_back} savepoints rolled back; {kinds}"
        )


class _Rollback(Exception):
    """Raised inside a transaction block to roll it back on purpose."""


class Workload:
    """Seeded random transactions against the demo schema, in a thread of their own.

    Bounded: at most `max_transactions` transactions and `max_seconds` seconds (the large
    transaction, when requested, runs whatever the bounds). `pace` is the mean pause between
    transactions, in seconds.
    """

    def __init__(
        self,
        url: str,
        seed: int,
        *,
        max_transactions: int = 100_000,
        max_seconds: float = 600.0,
        pace: float = 0.02,
        toast_size: tuple[int, int] = (3_000, 40_000),
    ) -> None:
        self.url = url
        self.seed = seed
        # Not Random(seed): demo_data draws its rows (and their unique UUIDs) from Random(seed).
        self.rng = random.Random(f"workload:{seed}")
        self._timing = random.Random(f"pauses:{seed}")  # independent of the transactions' sequence
        self.max_transactions = max_transactions
        self.max_seconds = max_seconds
        self.pace = pace
        self.toast_size = toast_size
        self.stats = WorkloadStats()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._idle = threading.Event()  # the bounds are reached: only a large transaction or stop() now
        self._big_rows: int | None = None
        self._big_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._toasted: dict[str, list[int]] = {"customers": [], "orders": [], "addresses": []}
        self._conn: psycopg.Connection[Any] | None = None
        self.big_tag: str | None = None  # products of the large transaction have skus 'BIG-<tag>-<n>'
        self.big_commit_lsn: str | None = None  # the WAL position just after it committed
        self.big_precommit_lsn: str | None = None  # ... and just before: its commit ends past this
        self.big_first_product: int | None = None  # the id of its first product insert (near its end)
        self._ops: list[tuple[Callable[[], str], int]] = [
            (self._new_customer, 6),
            (self._update_customer, 8),
            (self._update_customers_range, 2),
            (self._delete_customer, 3),
            (self._rekey_customer, 2),
            (self._new_address, 5),
            (self._update_address, 5),
            (self._delete_address, 3),
            (self._move_address, 4),
            (self._upsert_profile, 4),
            (self._delete_profile, 2),
            (self._new_order, 5),
            (self._update_order, 5),
            (self._delete_order, 2),
            (self._move_order, 3),
            (self._rekey_order, 3),
            (self._new_item, 6),
            (self._update_item, 5),
            (self._delete_item, 3),
            (self._move_item, 3),
            (self._new_product, 2),
            (self._update_product, 3),
            (self._delete_product, 1),
            (self._toast_write, 3),
            (self._toast_touch, 6),
        ]

    # -- control -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"workload-{self.seed}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 300.0) -> WorkloadStats:
        """Stop after the transaction in progress; re-raise what failed in the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), f"workload still running after {timeout}s"
        if self.error is not None:
            raise AssertionError(f"the workload failed: {self.error!r}") from self.error
        return self.stats

    def wait(self, timeout: float = 300.0) -> WorkloadStats:
        """Wait until the workload reaches its bounds (or fails), then stop it."""
        deadline = time.monotonic() + timeout
        while not self._idle.wait(0.1) and not self._finished.is_set():
            assert time.monotonic() < deadline, f"workload not finished after {timeout}s"
        return self.stop()

    def request_big_transaction(self, rows: int = 200_000) -> threading.Event:
        """Run a large transaction of `rows` row changes next; the event is set once committed."""
        self._big_done = threading.Event()  # before the request: the thread sets this one
        self._big_rows = rows
        return self._big_done

    @property
    def failed(self) -> bool:
        return self.error is not None

    # -- the thread --------------------------------------------------------------------------------

    def _main(self) -> None:
        started = time.monotonic()
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                self._conn = conn
                while not self._stop.is_set():
                    if self._big_rows is not None:
                        rows, self._big_rows = self._big_rows, None
                        self._big_transaction(rows)
                        self._big_done.set()
                        continue
                    done = self.stats.committed + self.stats.rolled_back
                    if done >= self.max_transactions or time.monotonic() - started >= self.max_seconds:
                        self._idle.set()
                        self._stop.wait(0.05)
                        continue
                    self.step()
                    if self.pace:
                        self._stop.wait(self._timing.uniform(0, 2 * self.pace))
        except BaseException as exc:  # noqa: BLE001 - handed to stop(), which re-raises it
            self.error = exc
        finally:
            self._conn = None
            self._finished.set()
            self._big_done.set()  # wake a waiter: it checks `failed`

    def run_sync(self, transactions: int) -> WorkloadStats:
        """Commit `transactions` transactions in the calling thread (no pauses)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            self._conn = conn
            try:
                for _ in range(transactions):
                    self.step()
            finally:
                self._conn = None
        return self.stats

    @property
    def conn(self) -> psycopg.Connection[Any]:
        assert self._conn is not None
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[list[str]]:
        """BEGIN ... COMMIT; `_Rollback` (or any error) rolls back. Yields the list of operations."""
        ops: list[str] = []
        rows_before = self.stats.rows
        self.conn.execute("BEGIN")
        try:
            yield ops
        except _Rollback:
            self.conn.execute("ROLLBACK")
            self.stats.rows = rows_before
            self.stats.rolled_back += 1
            return
        except BaseException:
            if not self.conn.closed:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self.stats.committed += 1
        self.stats.operations.update(ops)

    def _random_op(self) -> Callable[[], str]:
        ops, weights = zip(*self._ops, strict=True)
        return self.rng.choices(ops, weights=weights)[0]

    def step(self) -> None:
        """One transaction of a random shape."""
        shape = self.rng.choices(("single", "multi", "rollback", "savepoint"), weights=(50, 30, 8, 12))[0]
        with self._transaction() as ops:
            if shape == "single":
                ops.append(self._random_op()())
            elif shape == "multi":
                for _ in range(self.rng.randint(2, 6)):
                    ops.append(self._random_op()())
            elif shape == "rollback":
                for _ in range(self.rng.randint(1, 4)):
                    self._random_op()()
                raise _Rollback
            else:
                ops.append(self._random_op()())
                self.conn.execute("SAVEPOINT wl_a")
                rows_before = self.stats.rows
                for _ in range(self.rng.randint(1, 3)):
                    self._random_op()()
                self.conn.execute("ROLLBACK TO SAVEPOINT wl_a")
                self.stats.rows = rows_before
                self.stats.savepoints_rolled_back += 1
                ops.append(self._random_op()())
                if self.rng.random() < 0.5:
                    self.conn.execute("SAVEPOINT wl_b")
                    ops.append(self._random_op()())
                    self.conn.execute("RELEASE SAVEPOINT wl_b")

    # -- helpers -----------------------------------------------------------------------------------

    def _exec(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> psycopg.Cursor[Any]:
        cur = self.conn.execute(query, params)
        if cur.rowcount > 0 and query.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.stats.rows += cur.rowcount
        return cur

    def _one(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def _pick(self, table: str, where: str = "TRUE") -> int | None:
        """A random existing id of `table` (meeting `where`, on alias t), or None."""
        hi = self._one(f"SELECT max(id) FROM {table}")
        if hi is None:
            return None
        r = self.rng.randint(1, int(hi))
        found = self._one(f"SELECT id FROM {table} t WHERE id >= %s AND {where} ORDER BY id LIMIT 1", (r,))
        if found is None:
            found = self._one(
                f"SELECT id FROM {table} t WHERE id < %s AND {where} ORDER BY id DESC LIMIT 1", (r,)
            )
        return None if found is None else int(found)

    def _next_id(self, table: str) -> int:
        return int(self._one("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", (f"public.{table}",)))

    def _unique(self) -> str:
        self._counter += 1
        return f"{self.seed}-{self._counter}"

    def _maybe(self, value: Any, p_null: float = 0.3) -> Any:
        return None if self.rng.random() < p_null else value

    def _toast(self) -> str:
        return _blob(self.rng, self.rng.randint(*self.toast_size))

    # -- row values --------------------------------------------------------------------------------

    def _preferences(self, big: bool = False) -> dict[str, Any]:
        prefs: dict[str, Any] = {
            "language": self.rng.choice(("en", "de-CH", "ja", "pt-BR")),
            "theme": self.rng.choice(("light", "dark")),
            "newsletter": self.rng.random() < 0.5,
            "notifications": {"email": self.rng.random() < 0.5, "push": {"orders": True}},
            "score": self.rng.choice((0, 1.5, -2, 10**12, 3.25)),
            "nickname": self.rng.choice((None, "✨", "ミキ")),
        }
        if big:
            prefs["blob"] = self._toast()
        return prefs

    def _customer_values(self) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(NAMES), rng.choice(SURNAMES)
        return {
            "email": f"wl.{self._unique()}@workload.example",
            "full_name": f"{first} {last}",
            "password_hash": f"pbkdf2${rng.randbytes(8).hex()}",
            "status": rng.choice(("active", "suspended", "closed")),
            "external_id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "birth_date": self._maybe(date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))),
            "balance": Decimal(rng.randrange(-50_000, 2_000_000)) / 10_000,
            "loyalty_points": rng.randrange(0, 50_000),
            "is_vip": rng.random() < 0.1,
            "avatar": self._maybe(b"\x89PNG\x00" + rng.randbytes(rng.randrange(4, 40)), 0.7),
            "preferences": Jsonb(self._preferences()),
            "signed_up_at": _ts(rng),
            "last_login": self._maybe(_ts(rng).replace(tzinfo=None)),
        }

    def _address_values(self, customer_id: int, first: bool) -> dict[str, Any]:
        rng = self.rng
        city, country = rng.choice(CITIES)
        return {
            "customer_id": customer_id,
            "kind": "home" if first else rng.choice(("work", "billing")),
            "line1": f"{rng.randrange(1, 300)} Hauptstraße",
            "line2": self._maybe(f"Apt {rng.randrange(1, 80)}", 0.6),
            "city": city,
            "postal_code": self._maybe(str(rng.randrange(10_000, 99_999)), 0.1),
            "country": country,
            "is_default": first,
        }

    def _profile_values(self, customer_id: int) -> dict[str, Any]:
        rng = self.rng
        return {
            "customer_id": customer_id,
            "bio": self._maybe(rng.choice(("Coffee ☕", "東京在住", "", "Backslash \\ and 'quote'"))),
            "website": self._maybe(f"https://{rng.randrange(1000)}.example"),
            "social_links": self._maybe(Json({"twitter": f"@u{rng.randrange(1000)}", "mastodon": None})),
            "marketing_opt_in": rng.random() < 0.4,
            "updated_at": _ts(rng),
        }

    def _order_values(self, customer_id: int) -> dict[str, Any]:
        rng = self.rng
        shipping = {"carrier": rng.choice(("DHL", "ヤマト運輸")), "events": [{"at": "2024-01-01", "s": "ok"}]}
        return {
            "customer_id": customer_id,
            "status": rng.choice(STATUSES),
            "placed_at": _ts(rng),
            "total": _money(rng, 2000),
            "currency": rng.choice(CURRENCIES),
            "notes": self._maybe(
                rng.choice(("Leave at the door 🚪", "Line one\nline two", "Tab\there")), 0.6
            ),
            "shipping": self._maybe(Jsonb(shipping)),
        }

    def _item_values(self, order_id: int, line_no: int) -> dict[str, Any]:
        rng = self.rng
        return {
            "order_id": order_id,
            "line_no": line_no,
            "product_id": self._pick("products") or 1,
            "quantity": rng.randint(1, 10),
            "unit_price": _money(rng, 300),
            "discount": rng.choice(DISCOUNTS),
        }

    def _insert(self, table: str, values: dict[str, Any], returning: str | None = "id") -> Any:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in values)
        marks = sql.SQL(", ").join(sql.Placeholder() for _ in values)
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier("public", table), columns, marks
        )
        if returning:
            query += sql.SQL(" RETURNING {}").format(sql.Identifier(returning))
        cur = self.conn.execute(query, list(values.values()))
        self.stats.rows += 1
        return cur.fetchone()[0] if returning else None  # type: ignore[index]

    def _update(self, table: str, values: dict[str, Any], where: str, params: tuple[Any, ...]) -> int:
        sets = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
        )
        query = sql.SQL("UPDATE {} SET {} WHERE ").format(sql.Identifier("public", table), sets) + sql.SQL(
            where
        )  # type: ignore[arg-type]
        cur = self.conn.execute(query, [*values.values(), *params])
        self.stats.rows += max(cur.rowcount, 0)
        return cur.rowcount

    def _next_line(self, order_id: int) -> int:
        return int(
            self._one(
                "SELECT coalesce(max(line_no), 0) + 1 FROM order_items WHERE order_id = %s", (order_id,)
            )
        )

    def _pick_item(self) -> tuple[int, int] | None:
        order_id = self._pick("orders", "EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = t.id)")
        if order_id is None:
            return None
        lines = [
            r[0]
            for r in self.conn.execute(
                "SELECT line_no FROM order_items WHERE order_id = %s ORDER BY 1", (order_id,)
            )
        ]
        return order_id, self.rng.choice(lines)

    # -- operations (each returns its kind; "skip" when nothing fitted) ----------------------------

    def _new_customer(self) -> str:
        cid = self._insert("customers", self._customer_values())
        for a in range(self.rng.choice((0, 1, 1, 2, 3))):
            self._insert("addresses", self._address_values(cid, a == 0))
        if self.rng.random() < 0.5:
            self._insert("customer_profiles", self._profile_values(cid), returning=None)
        for _ in range(self.rng.choice((0, 1, 2, 3))):
            oid = self._insert("orders", self._order_values(cid))
            for line in range(1, self.rng.randint(0, 4) + 1):
                self._insert("order_items", self._item_values(oid, line), returning=None)
        return "customer.insert"

    def _update_customer(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        values = self._customer_values()
        values.pop("email")
        keys = self.rng.sample(sorted(values), self.rng.randint(1, 5))
        self._update("customers", {k: values[k] for k in keys}, "id = %s", (cid,))
        return "customer.update"

    def _update_customers_range(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        self._exec(
            "UPDATE customers SET loyalty_points = loyalty_points + 1, is_vip = NOT is_vip"
            " WHERE id BETWEEN %s AND %s",
            (cid, cid + self.rng.randint(5, 40)),
        )
        return "customer.update_range"

    def _delete_customer(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        self._exec("DELETE FROM orders WHERE customer_id = %s", (cid,))  # items cascade
        self._exec("DELETE FROM customers WHERE id = %s", (cid,))  # addresses and profile cascade
        return "customer.delete"

    def _rekey_customer(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        # Addresses, profile and orders follow through ON UPDATE CASCADE.
        self._exec("UPDATE customers SET id = %s WHERE id = %s", (self._next_id("customers"), cid))
        return "customer.rekey"

    def _new_address(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        self._insert("addresses", self._address_values(cid, False))
        return "address.insert"

    def _update_address(self) -> str:
        aid = self._pick("addresses")
        if aid is None:
            return "skip"
        values = self._address_values(0, self.rng.random() < 0.3)
        values.pop("customer_id")
        keys = self.rng.sample(sorted(values), self.rng.randint(1, 3))
        self._update("addresses", {k: values[k] for k in keys}, "id = %s", (aid,))
        return "address.update"

    def _delete_address(self) -> str:
        aid = self._pick("addresses")
        if aid is None:
            return "skip"
        self._exec("DELETE FROM addresses WHERE id = %s", (aid,))
        return "address.delete"

    def _move_address(self) -> str:
        aid, cid = self._pick("addresses"), self._pick("customers")
        if aid is None or cid is None:
            return "skip"
        extra = ", city = 'Moved City'" if self.rng.random() < 0.5 else ""
        self._exec(f"UPDATE addresses SET customer_id = %s{extra} WHERE id = %s", (cid, aid))
        return "address.move"

    def _upsert_profile(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        values = self._profile_values(cid)
        if self._one("SELECT 1 FROM customer_profiles WHERE customer_id = %s", (cid,)):
            values.pop("customer_id")
            self._update("customer_profiles", values, "customer_id = %s", (cid,))
            return "profile.update"
        self._insert("customer_profiles", values, returning=None)
        return "profile.insert"

    def _delete_profile(self) -> str:
        cid = self._pick("customers", "EXISTS (SELECT 1 FROM customer_profiles p WHERE p.customer_id = t.id)")
        if cid is None:
            return "skip"
        self._exec("DELETE FROM customer_profiles WHERE customer_id = %s", (cid,))
        return "profile.delete"

    def _new_order(self) -> str:
        cid = self._pick("customers")
        if cid is None:
            return "skip"
        oid = self._insert("orders", self._order_values(cid))
        for line in range(1, self.rng.randint(0, 5) + 1):
            self._insert("order_items", self._item_values(oid, line), returning=None)
        return "order.insert"

    def _update_order(self) -> str:
        oid = self._pick("orders")
        if oid is None:
            return "skip"
        values = self._order_values(0)
        values.pop("customer_id")
        keys = self.rng.sample(sorted(values), self.rng.randint(1, 3))
        self._update("orders", {k: values[k] for k in keys}, "id = %s", (oid,))
        return "order.update"

    def _delete_order(self) -> str:
        oid = self._pick("orders")
        if oid is None:
            return "skip"
        self._exec("DELETE FROM orders WHERE id = %s", (oid,))  # items cascade
        return "order.delete"

    def _move_order(self) -> str:
        # Items ride along: they reference the order, not the customer.
        oid = self._pick("orders", "EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = t.id)")
        cid = self._pick("customers")
        if oid is None or cid is None:
            return "skip"
        self._exec("UPDATE orders SET customer_id = %s WHERE id = %s", (cid, oid))
        return "order.move"

    def _rekey_order(self) -> str:
        with_items = self.rng.random() < 0.5
        exists = "EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = t.id)"
        oid = self._pick("orders", exists if with_items else f"NOT {exists}")
        if oid is None:
            return "skip"
        # Items (if any) follow through ON UPDATE CASCADE.
        self._exec("UPDATE orders SET id = %s WHERE id = %s", (self._next_id("orders"), oid))
        return "order.rekey_items" if with_items else "order.rekey"

    def _new_item(self) -> str:
        oid = self._pick("orders")
        if oid is None:
            return "skip"
        self._insert("order_items", self._item_values(oid, self._next_line(oid)), returning=None)
        return "item.insert"

    def _update_item(self) -> str:
        picked = self._pick_item()
        if picked is None:
            return "skip"
        values = self._item_values(*picked)
        keys = self.rng.sample(["product_id", "quantity", "unit_price", "discount"], self.rng.randint(1, 3))
        self._update("order_items", {k: values[k] for k in keys}, "order_id = %s AND line_no = %s", picked)
        return "item.update"

    def _delete_item(self) -> str:
        picked = self._pick_item()
        if picked is None:
            return "skip"
        self._exec("DELETE FROM order_items WHERE order_id = %s AND line_no = %s", picked)
        return "item.delete"

    def _move_item(self) -> str:
        picked, other = self._pick_item(), self._pick("orders")
        if picked is None or other is None or other == picked[0]:
            return "skip"
        self._exec(
            "UPDATE order_items SET order_id = %s, line_no = %s WHERE order_id = %s AND line_no = %s",
            (other, self._next_line(other), *picked),
        )
        return "item.move"

    def _new_product(self) -> str:
        rng = self.rng
        self._insert(
            "products",
            {
                "sku": f"WL-{self._unique()}",
                "name": rng.choice(("Mug ☕", "抹茶 Whisk", "Lamp")),
                "price": _money(rng),
                "weight_kg": self._maybe(round(rng.uniform(0.01, 20), 3)),
                "dimensions_mm": self._maybe([rng.randrange(10, 900) for _ in range(3)]),
                "tags": rng.sample(TAGS, rng.randint(0, 3)),
                "attributes": Jsonb({"color": rng.choice(("red", "灰色")), "dims": {"w": rng.randrange(50)}}),
                "active": rng.random() < 0.8,
                "created_at": _ts(rng),
            },
        )
        return "product.insert"

    def _update_product(self) -> str:
        pid = self._pick("products")
        if pid is None:
            return "skip"
        rng = self.rng
        choices: dict[str, Any] = {
            "price": _money(rng),
            "name": f"Renamed {self._unique()}",
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
            "attributes": Jsonb({"v": rng.randrange(100), "nested": {"a": [1, 2, None]}}),
            "active": rng.random() < 0.5,
            "weight_kg": self._maybe(rng.uniform(0, 5)),
        }
        keys = rng.sample(sorted(choices), rng.randint(1, 3))
        self._update("products", {k: choices[k] for k in keys}, "id = %s", (pid,))
        return "product.update"

    def _delete_product(self) -> str:
        pid = self._pick("products", "NOT EXISTS (SELECT 1 FROM order_items i WHERE i.product_id = t.id)")
        if pid is None:
            return "skip"
        self._exec("DELETE FROM products WHERE id = %s", (pid,))
        return "product.delete"

    def _toast_write(self) -> str:
        """A large incompressible value, stored out of line (TOAST)."""
        table = self.rng.choice(("customers", "orders", "addresses"))
        rid = self._pick(table)
        if rid is None:
            return "skip"
        if table == "customers":
            self._update("customers", {"preferences": Jsonb(self._preferences(big=True))}, "id = %s", (rid,))
        elif table == "orders":
            self._update("orders", {"notes": self._toast()}, "id = %s", (rid,))
        else:
            self._update("addresses", {"line2": self._toast()}, "id = %s", (rid,))
        self._toasted[table].append(rid)
        return f"toast.write.{table}"

    def _toast_touch(self) -> str:
        """Change other columns of a row holding a TOASTed value (sent as unchanged 'u'): an update,
        a move to another parent, or a key change."""
        table = self.rng.choice(("customers", "orders", "addresses"))
        ids = self._toasted[table]
        if not ids:
            return "skip"
        rid = self.rng.choice(ids)
        if not self._one(f"SELECT 1 FROM {table} WHERE id = %s", (rid,)):
            ids.remove(rid)
            return "skip"
        how = self.rng.choice(("update", "update", "move" if table != "customers" else "update", "rekey"))
        if how == "rekey":
            new_id = self._next_id(table)
            self._exec(f"UPDATE {table} SET id = %s WHERE id = %s", (new_id, rid))
            ids[ids.index(rid)] = new_id
        elif how == "move" and (cid := self._pick("customers")) is not None:
            self._exec(f"UPDATE {table} SET customer_id = %s WHERE id = %s", (cid, rid))
        elif table == "customers":
            self._exec(
                "UPDATE customers SET loyalty_points = loyalty_points + 7, full_name = %s WHERE id = %s",
                (f"Touched {self._unique()}", rid),
            )
        elif table == "orders":
            self._exec("UPDATE orders SET status = %s WHERE id = %s", (self.rng.choice(STATUSES), rid))
        else:
            self._exec("UPDATE addresses SET city = %s WHERE id = %s", (f"Touched {self._unique()}", rid))
        return f"toast.touch.{table}.{how}"

    # -- the large transaction ---------------------------------------------------------------------

    def _big_transaction(self, rows: int) -> None:
        """First a large transaction rolled back (streamed, then aborted), then one of `rows` row
        changes committed: order items across existing orders, every existing product updated, a
        savepoint of inserts rolled back, and product inserts for the rest."""
        tag = self._unique()
        with self._transaction():
            cur = self._exec(
                "INSERT INTO products (sku, name, price) SELECT 'RB-' || %s || '-' || g, 'rolled back', 1"
                " FROM generate_series(1, %s) g",
                (tag, max(rows // 4, 1)),
            )
            self.stats.big_rolled_back_rows = cur.rowcount
            raise _Rollback
        with self._transaction() as ops:
            before = self.stats.rows
            # About rows/100 items (each costs the target more than a product), every `step`th order.
            n_orders = int(self._one("SELECT count(*) FROM orders"))
            step = max(1, n_orders // max(rows // 100, 1))
            self._exec(
                "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, discount)"
                " SELECT o.id, m.next + g, p.ids[1 + (o.id + g) %% array_length(p.ids, 1)], 1 + g %% 7,"
                "        (o.id %% 9000) / 100.0 + g, CASE WHEN g %% 3 = 0 THEN NULL ELSE 0.25 END"
                " FROM orders o"
                " CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM products) p"
                " CROSS JOIN LATERAL (SELECT coalesce(max(line_no), 0) AS next FROM order_items i"
                "                     WHERE i.order_id = o.id) m"
                " CROSS JOIN generate_series(1, 1 + (o.id %% 2)::int) g"
                " WHERE o.id %% %s = 0",
                (step,),
            )
            self._exec("UPDATE products SET price = price + 0.01 WHERE sku NOT LIKE 'BIG-%%'")
            self.conn.execute("SAVEPOINT big")
            self.conn.execute(
                "INSERT INTO products (sku, name, price) SELECT 'SP-' || %s || '-' || g, 'savepoint', 2"
                " FROM generate_series(1, 5000) g",
                (tag,),
            )
            self.conn.execute("ROLLBACK TO SAVEPOINT big")
            self.stats.savepoints_rolled_back += 1
            rest = max(rows - (self.stats.rows - before), 0)
            self._exec(
                "INSERT INTO products (sku, name, price, weight_kg, dimensions_mm, tags, attributes, created_at)"
                " SELECT 'BIG-' || %s || '-' || g, 'Bulk ' || g || ' ✓', (g %% 100000) / 100.0,"
                "        CASE WHEN g %% 2 = 0 THEN g / 7.0 END, ARRAY[g %% 10, g %% 100, g %% 1000],"
                "        ARRAY['bulk'], jsonb_build_object('g', g, 'half', g / 2.0),"
                "        timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1.001 second'"
                " FROM generate_series(1, %s) g",
                (tag, rest),
            )
            self.stats.big_rows += self.stats.rows - before
            self.big_tag = tag
            ops.append("big.commit")
            self.big_precommit_lsn = str(self._one("SELECT pg_current_wal_lsn()::text"))
        self.big_commit_lsn = str(self._one("SELECT pg_current_wal_lsn()::text"))
        self.big_first_product = int(
            self._one("SELECT min(id) FROM products WHERE sku LIKE %s", (f"BIG-{tag}-%",))
        )
