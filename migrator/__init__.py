"""migrator: zero-downtime database migrations, PostgreSQL tables into MongoDB documents."""

__version__ = "0.1.0"
