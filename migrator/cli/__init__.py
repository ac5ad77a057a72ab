"""Command-line interface: parse, call migrator.api, render. No logic of its own."""

from migrator.cli.main import main

__all__ = ["main"]
