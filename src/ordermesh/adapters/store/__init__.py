"""Relational storage (SQLAlchemy 2, Alembic) for SQLite and PostgreSQL."""
