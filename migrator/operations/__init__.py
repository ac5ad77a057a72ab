"""The commands users type: run, cutover, rollback, dry run, status, and the directions that
follow on threads while one runs. Sits below api.py and above phases/ (docs/architecture.md,
"Layers")."""
