"""plan/exclusions.py: a plan that differs from a run's only by exclusions of dropped columns is
found again from the run's digest; any other difference is not."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from migrator.plan.exclusions import recorded_plan, with_gone_exclusions


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def plan(
    users_exclude: list[str], kids_exclude: list[str], fields: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": "p",
        "collections": [
            {
                "name": "users",
                "from": "users",
                "exclude": users_exclude,
                "fields": fields,
                "embed": [{"as": "kids", "from": "app.kids", "exclude": kids_exclude, "embed": []}],
            }
        ],
    }


GONE = {"public.users": {"secret", "salt"}, "app.kids": {"note"}}


def test_removed_exclusions_of_dropped_columns_are_found_wherever_they_stood() -> None:
    began = plan(["a", "secret", "b", "salt"], ["note"])
    today = plan(["a", "b"], [])
    found = recorded_plan(today, GONE, digest, digest(began))
    assert found == began
    assert today == plan(["a", "b"], [])  # not changed in place


def test_other_differences_are_not_matched() -> None:
    began = plan(["secret"], [])
    assert recorded_plan(plan([], [], fields={"email": "email"}), GONE, digest, digest(began)) is None
    assert recorded_plan(plan(["b"], []), GONE, digest, digest(began)) is None  # b is not dropped
    assert recorded_plan(plan([], []), {}, digest, digest(began)) is None


def test_the_plan_itself_is_not_a_variant() -> None:
    today = plan(["a"], [])
    assert today not in list(with_gone_exclusions(today, GONE))
