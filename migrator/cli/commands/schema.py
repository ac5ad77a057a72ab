"""`migrator schema`: the JSON Schema of the plan format."""

from __future__ import annotations

import json

import click

from migrator.cli.contract import MigratorCommand


@click.command("schema", cls=MigratorCommand)
def schema_command() -> None:
    """Print the JSON Schema of plan format v1 (one JSON object, as committed in
    schema/plan-v1.json).

    \b
    Examples:
      migrator schema > schema/plan-v1.json
      check-jsonschema --schemafile <(migrator schema) plans/shop.yaml
    """
    from migrator import api

    click.echo(json.dumps(api.schema(), indent=2))
