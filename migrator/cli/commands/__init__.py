"""The `migrator` commands, one module each: parse, call migrator.api, render."""
