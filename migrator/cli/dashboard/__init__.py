"""The live dashboard a long-running command serves with `--http-port` (docs/dashboard.md)."""
