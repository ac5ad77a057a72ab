"""Plan format v1: models, strict loader and JSON Schema."""

from migrator.plan.loader import load_plan, parse_plan
from migrator.plan.models import Collection, Embed, Plan, Source, Target
from migrator.plan.schema import plan_json_schema

__all__ = ["Collection", "Embed", "Plan", "Source", "Target", "load_plan", "parse_plan", "plan_json_schema"]
