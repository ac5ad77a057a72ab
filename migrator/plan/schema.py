"""JSON Schema of plan format v1, for editors and CI linting of plan files."""

from __future__ import annotations

from typing import Any

from migrator.plan.models import Plan

SCHEMA_ID = "https://migrator.dev/schema/plan-v1.json"


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
