"""A MariaDB shop for end-to-end runs: customers with their orders embedded, each order with its
lines, and a model of the rows kept beside every write, from which the expected documents are
built by hand (not by the mapping).

The model is the test's own record of what it wrote: each write is one source transaction, and
the model changes only once it has committed."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from tests.support.mariadb import connect
from tests.support.mysql_binlog import database
from tests.support.mysql_plans import customers_plan

DDL = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(60) NOT NULL, tier VARCHAR(10) NOT NULL)",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL,"
    " KEY (customer_id))",
    "CREATE TABLE order_lines (order_id BIGINT NOT NULL, line_no INT NOT NULL, sku VARCHAR(20) NOT NULL,"
    " qty INT NOT NULL, PRIMARY KEY (order_id, line_no), KEY (order_id))",
)


def _money(rng: random.Random) -> Decimal:
    """An amount with its two decimals (as DECIMAL(10,2) keeps it: 677.60, not 677.6)."""
    return Decimal(rng.randint(100, 99_999)).scaleb(-2)


def write_plan(path: Path, source: str, mongo: str, target: str, *, chunk_rows: int = 1000) -> Path:
    """The shop's plan: each customer's orders embedded, each order's lines in it."""
    lines = (
        f"{{as: lines, from: {database(source)}.order_lines, on: {{order_id: id}}, many: true, "
        "key: [order_id, line_no], order_by: line_no}"
    )
    return customers_plan(
        path,
        source,
        f"many: true, key: id, order_by: id, embed: [{lines}]",
        target=mongo,
        target_db=target,
        phases=f"snapshot: {{parallel: 2, chunk_rows: {chunk_rows}}}",
    )


@dataclass
class Shop:
    """The source's rows as the test wrote them."""

    url: str
    customers: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (name, tier)
    orders: dict[int, tuple[int, Decimal]] = field(default_factory=dict)  # id -> (customer, total)
    lines: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)  # (order, line) -> (sku, qty)
    next_customer: int = 1
    next_order: int = 1
    next_line: int = 1  # line numbers are unique over all orders: a line moved keeps its number

    # -- set-up --------------------------------------------------------------------------------

    def create(self) -> None:
        with connect(self.url) as conn, conn.cursor() as cur:
            for statement in DDL:
                cur.execute(statement)

    def load(self, customers: int, rng: random.Random) -> None:
        """`customers` customers with 0-3 orders of 0-3 lines each, in batches."""
        for start in range(0, customers, 500):
            batch: list[Any] = []
            for _ in range(min(500, customers - start)):
                batch.append(self._new_customer(rng, rng.randint(0, 3)))
            with connect(self.url) as conn, conn.cursor() as cur:
                cur.execute("BEGIN")
                self._insert_all(cur, batch)
                cur.execute("COMMIT")
            for rows in batch:
                self._remember(rows)

    # -- writes: each a transaction, the model changed once it committed --------------------------

    def _new_customer(self, rng: random.Random, orders: int) -> tuple[Any, ...]:
        cid = self.next_customer
        self.next_customer += 1
        customer = (cid, f"customer {cid}", rng.choice(["gold", "silver", "basic"]))
        made_orders, made_lines = [], []
        for _ in range(orders):
            oid = self.next_order
            self.next_order += 1
            made_orders.append((oid, cid, _money(rng)))
            for _ in range(rng.randint(0, 3)):
                made_lines.append((oid, self._line_no(), f"sku-{rng.randint(1, 999)}", rng.randint(1, 9)))
        return customer, made_orders, made_lines

    def _line_no(self) -> int:
        n = self.next_line
        self.next_line += 1
        return n

    @staticmethod
    def _insert_all(cur: Any, batch: list[Any]) -> None:
        customers = [c for c, _, _ in batch]
        orders = [o for _, os, _ in batch for o in os]
        lines = [line for _, _, ls in batch for line in ls]
        cur.executemany("INSERT INTO customers VALUES (%s, %s, %s)", customers)
        if orders:
            cur.executemany("INSERT INTO orders VALUES (%s, %s, %s)", orders)
        if lines:
            cur.executemany("INSERT INTO order_lines VALUES (%s, %s, %s, %s)", lines)

    def _remember(self, rows: tuple[Any, ...]) -> None:
        customer, orders, lines = rows
        self.customers[customer[0]] = (customer[1], customer[2])
        for oid, cid, total in orders:
            self.orders[oid] = (cid, total)
        for oid, n, sku, qty in lines:
            self.lines[(oid, n)] = (sku, qty)

    def add_customer(self, cur: Any, rng: random.Random) -> None:
        rows = self._new_customer(rng, rng.randint(1, 3))
        self._insert_all(cur, [rows])
        self._pending.append(lambda: self._remember(rows))

    def rename(self, cur: Any, cid: int, name: str) -> None:
        cur.execute("UPDATE customers SET name = %s WHERE id = %s", [name, cid])
        self._pending.append(lambda: self.customers.__setitem__(cid, (name, self.customers[cid][1])))

    def reprice(self, cur: Any, oid: int, total: Decimal) -> None:
        cur.execute("UPDATE orders SET total = %s WHERE id = %s", [total, oid])
        self._pending.append(lambda: self.orders.__setitem__(oid, (self.orders[oid][0], total)))

    def move_order(self, cur: Any, oid: int, cid: int) -> None:
        """The order (and its lines) moves to another customer."""
        cur.execute("UPDATE orders SET customer_id = %s WHERE id = %s", [cid, oid])
        self._pending.append(lambda: self.orders.__setitem__(oid, (cid, self.orders[oid][1])))

    def move_line(self, cur: Any, line: tuple[int, int], oid: int) -> None:
        """The line moves to another order (its key changes: order_id is part of it)."""
        cur.execute("UPDATE order_lines SET order_id = %s WHERE order_id = %s AND line_no = %s", [oid, *line])
        self._pending.append(lambda: self.lines.__setitem__((oid, line[1]), self.lines.pop(line)))

    def add_line(self, cur: Any, oid: int, rng: random.Random) -> None:
        row = (oid, self._line_no(), f"sku-{rng.randint(1, 999)}", rng.randint(1, 9))
        cur.execute("INSERT INTO order_lines VALUES (%s, %s, %s, %s)", row)
        self._pending.append(lambda: self.lines.__setitem__((oid, row[1]), (row[2], row[3])))

    def delete_line(self, cur: Any, line: tuple[int, int]) -> None:
        cur.execute("DELETE FROM order_lines WHERE order_id = %s AND line_no = %s", list(line))
        self._pending.append(lambda: self.lines.pop(line))

    def delete_order(self, cur: Any, oid: int) -> None:
        cur.execute("DELETE FROM order_lines WHERE order_id = %s", [oid])
        cur.execute("DELETE FROM orders WHERE id = %s", [oid])
        self._pending.append(lambda: self._forget_order(oid))

    def delete_customer(self, cur: Any, cid: int) -> None:
        for oid in [o for o, (c, _) in self.orders.items() if c == cid]:
            self.delete_order(cur, oid)
        cur.execute("DELETE FROM customers WHERE id = %s", [cid])
        self._pending.append(lambda: self.customers.pop(cid))

    def _forget_order(self, oid: int) -> None:
        self.orders.pop(oid)
        for line in [k for k in self.lines if k[0] == oid]:
            self.lines.pop(line)

    _pending: list[Any] = field(default_factory=list)

    def transaction(self, cur: Any, writes: Any) -> None:
        """Run `writes(cur)` in one transaction; apply its model changes once committed."""
        self._pending = []
        cur.execute("BEGIN")
        try:
            writes(cur)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            self._pending = []
            raise
        for change in self._pending:
            change()
        self._pending = []

    def random_write(self, cur: Any, rng: random.Random) -> None:
        """One transaction of one to three random writes."""

        def writes(cur: Any) -> None:
            for _ in range(rng.randint(1, 3)):
                self._one(cur, rng)

        self.transaction(cur, writes)

    def _one(self, cur: Any, rng: random.Random) -> None:
        # Choices read the model with the writes before them in this transaction applied, so each
        # write touches rows still there. (Should the transaction fail, the writer stops with the
        # error and the test fails: the model is never used after that.)
        for change in self._pending:
            change()
        self._pending.clear()
        kind = rng.choice(
            [
                *("add_customer", "rename", "reprice", "move_order", "move_line", "add_line"),
                *("delete_line", "delete_order", "delete_customer"),
            ]
        )
        customers, orders, lines = list(self.customers), list(self.orders), list(self.lines)
        if kind == "add_customer" or not customers or not orders or not lines:
            self.add_customer(cur, rng)
        elif kind == "rename":
            self.rename(cur, rng.choice(customers), f"renamed {rng.randint(0, 10**6)}")
        elif kind == "reprice":
            self.reprice(cur, rng.choice(orders), _money(rng))
        elif kind == "move_order":
            self.move_order(cur, rng.choice(orders), rng.choice(customers))
        elif kind == "move_line":
            self.move_line(cur, rng.choice(lines), rng.choice(orders))
        elif kind == "add_line":
            self.add_line(cur, rng.choice(orders), rng)
        elif kind == "delete_line":
            self.delete_line(cur, rng.choice(lines))
        elif kind == "delete_order":
            self.delete_order(cur, rng.choice(orders))
        else:
            self.delete_customer(cur, rng.choice(customers))

    # -- what the target must hold ---------------------------------------------------------------

    def documents(self) -> list[dict[str, Any]]:
        """The customers collection as it must be, sorted by _id, built from the model."""
        lines_of: dict[int, list[dict[str, Any]]] = {}
        for (oid, n), (sku, qty) in sorted(self.lines.items(), key=lambda item: item[0][1]):
            lines_of.setdefault(oid, []).append({"line_no": n, "sku": sku, "qty": qty})
        orders_of: dict[int, list[dict[str, Any]]] = {}
        for oid, (cid, total) in sorted(self.orders.items()):
            orders_of.setdefault(cid, []).append(
                {"id": Int64(oid), "total": Decimal128(total), "lines": lines_of.get(oid, [])}
            )
        return [
            {"_id": cid, "name": name, "tier": tier, "orders": orders_of.get(cid, [])}
            for cid, (name, tier) in sorted(self.customers.items())
        ]


class Writer:
    """Random writes on a thread until stopped (a workload while migrator runs)."""

    def __init__(self, shop: Shop, seed: int) -> None:
        self.shop = shop
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.transactions = 0
        self._thread = threading.Thread(target=self._run, name="shop-writer", daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with connect(self.shop.url) as conn, conn.cursor() as cur:
                while not self.stop.is_set():
                    self.shop.random_write(cur, self.rng)
                    self.transactions += 1
                    self.stop.wait(0.01)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by finish()
            self.error = exc

    def finish(self) -> int:
        self.stop.set()
        self._thread.join(60)
        if self.error is not None:
            raise self.error
        return self.transactions
