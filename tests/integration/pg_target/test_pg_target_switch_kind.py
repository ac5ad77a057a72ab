"""A cutover switch of kind mongodb (a routing document in the target) into a PostgreSQL target is
refused by `plan` (`target.cutover`), with the switches that work there; the plan changed to one of
them (a routing row on the source, kind postgres) passes the check. Nothing was flipped: the
refusal comes before `migrator cutover` could meet the target's missing routing document."""

from __future__ import annotations

from migrator import api
from migrator.findings import Severity
from tests.support.pg_target import PgToPg


def test_plan_refuses_a_routing_document_switch_into_a_postgres_target(pg2pg: PgToPg) -> None:
    pg2pg.source("CREATE TABLE public.items (id integer PRIMARY KEY, name text)")
    refused = pg2pg.plan("- {from: public.items}", phases="cutover: {switch: {kind: mongodb, name: routing}}")
    (finding,) = [f for f in api.plan(refused, env=pg2pg.env).findings if f.check == "target.cutover"]
    assert finding.severity == Severity.FAIL
    assert "kind mongodb" in finding.message and "routing" in finding.message
    assert finding.fix is not None and "{kind: postgres, name: <schema.table>}" in finding.fix

    fixed = pg2pg.plan(
        "- {from: public.items}",
        name="pg2pg-fixed",
        phases="cutover: {switch: {kind: postgres, name: public.migrator_routing}}",
    )
    report = api.plan(fixed, env=pg2pg.env)
    assert [f for f in report.findings if f.check == "target.cutover"] == []
    assert report.ready, [f for f in report.findings if f.severity == Severity.FAIL]
