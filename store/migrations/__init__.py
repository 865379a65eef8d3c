"""Alembic migrations for the segops store."""
