"""The MySQL preflight's rules that need no server: the RESTRICT key's name within 64 characters,
the cutover privileges as MySQL 8 names them (SUPER standing in for CONNECTION_ADMIN), and only
those the plan's cutover uses."""

from __future__ import annotations

from migrator.adapters.base import CutoverNeeds, ForeignKey
from migrator.adapters.mysql.cascades import restrict_fix, restrict_name
from migrator.adapters.mysql.inspect import MysqlServerInfo
from migrator.adapters.mysql.run_privileges import run_privilege_findings
from migrator.findings import Severity


def test_the_restrict_key_keeps_within_64_characters() -> None:
    assert restrict_name("fk_orders") == "fk_orders_restrict"
    long = "k" * 64
    assert restrict_name(long) == "k" * 55 + "_restrict"
    assert len(restrict_name(long)) == 64
    key = ForeignKey(("a`b", "c"), "shop.parent", ("x", "y"), name="fk", on_delete="CASCADE")
    assert restrict_fix("shop.child", key) == (
        "ALTER TABLE `shop`.`child` DROP FOREIGN KEY `fk`, ADD CONSTRAINT `fk_restrict` FOREIGN KEY "
        "(`a``b`, `c`) REFERENCES `shop`.`parent` (`x`, `y`) ON DELETE RESTRICT ON UPDATE RESTRICT;"
    )
    assert key.actions() == {"ON DELETE": "CASCADE"}
    assert ForeignKey(("a",), "s.p", ("x",), on_delete="RESTRICT", on_update="NO ACTION").actions() == {}


DEFAULTS = CutoverNeeds(reverse_sync=True, fence="lock")


def _mysql8(privileges: set[str]) -> MysqlServerInfo:
    return MysqlServerInfo(
        endpoint="mysql://u@h:3306/shop",
        version="8.0.36",
        version_num=80036,
        settings={},
        used_replication_slots=0,
        used_wal_senders=0,
        user="u@%",
        is_superuser=False,
        has_replication=True,
        can_create_in_database=True,
        existing_slots=(),
        existing_publications=(),
        database="shop",
        product="MySQL",
        privileges=frozenset(privileges),
    )


def test_mysql8_names_connection_admin_and_takes_super() -> None:
    failed = {
        f.subject: f.fix
        for f in run_privilege_findings(_mysql8({"PROCESS"}), ["shop.orders"], DEFAULTS)
        if f.severity is Severity.FAIL
    }
    assert failed == {
        "shop._migrator_markers, _migrator_slots, _migrator_reverse": (
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON `shop`.* TO 'u'@'%';"
        ),
        "CONNECTION_ADMIN": "GRANT CONNECTION_ADMIN ON *.* TO 'u'@'%'; or a command fence (phases.cutover.fence: "
        "{kind: command, pause: [...], resume: [...]}), which pauses the application itself",
        "LOCK TABLES on shop": "GRANT LOCK TABLES ON `shop`.* TO 'u'@'%'; or a command fence (phases.cutover.fence: "
        "{kind: command, pause: [...], resume: [...]})",
        "shop.orders": "GRANT INSERT, UPDATE, DELETE ON `shop`.`orders` TO 'u'@'%'; or a one-way cutover "
        "(phases.cutover.reverse_sync: false; no rollback after cutover)",
    }
    everything = run_privilege_findings(_mysql8({"ALL PRIVILEGES"}), ["shop.orders"], DEFAULTS)
    assert {f.severity for f in everything} == {Severity.OK}
    with_super = run_privilege_findings(_mysql8({"PROCESS", "SUPER"}), ["shop.orders"], DEFAULTS)
    assert [
        f.subject for f in with_super if f.check == "source.cutover_privilege" and f.severity is Severity.FAIL
    ] == ["LOCK TABLES on shop"]  # PROCESS and CONNECTION_ADMIN (by SUPER) held


def test_what_the_plans_cutover_does_not_use_is_not_asked() -> None:
    nothing = _mysql8(set())
    tables = ["shop.orders", "shop.items"]

    def asked(needs: CutoverNeeds) -> list[tuple[str, str, Severity]]:
        return [(f.check, f.subject, f.severity) for f in run_privilege_findings(nothing, tables, needs)]

    own = (
        "source.migrator_tables",
        "shop._migrator_markers, _migrator_slots, _migrator_reverse",
        Severity.FAIL,
    )
    fence = [
        ("source.cutover_privilege", "LOCK TABLES on shop", Severity.FAIL),
        ("source.cutover_privilege", "PROCESS", Severity.FAIL),
        ("source.cutover_privilege", "CONNECTION_ADMIN", Severity.FAIL),
    ]
    reverse = [
        ("source.reverse_privilege", "shop.orders", Severity.FAIL),
        ("source.reverse_privilege", "shop.items", Severity.FAIL),
    ]
    assert asked(CutoverNeeds(reverse_sync=False, fence="command")) == [own]
    assert asked(CutoverNeeds(reverse_sync=True, fence="command")) == [own, *reverse]
    assert asked(CutoverNeeds(reverse_sync=False, fence="lock")) == [own, *fence]
    assert asked(CutoverNeeds(reverse_sync=True, fence="lock")) == [own, *fence, *reverse]
