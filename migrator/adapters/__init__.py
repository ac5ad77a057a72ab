"""Database adapters: PostgreSQL sources and MongoDB targets (more to come)."""
