"""JSON Schema of plan format v1, for editors and CI linting of plan files."""

from __future__ import annotations

from typing import Any

from migrator.plan.models import Plan

# A URN, not a URL: no server publishes the schema, and an `$id` is a name, never fetched. Editors
# find the file through the plan's modeline (`# yaml-language-server: $schema=<path>`), a path to
# the copy committed as schema/plan-v1.json, which a test keeps equal to what this returns.
SCHEMA_ID = "urn:migrator:plan:v1"
SCHEMA_FILE = "schema/plan-v1.json"


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
