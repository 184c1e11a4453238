"""Persistence through SQLAlchemy: SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from monitor.storage.engine import create_database_engine, is_postgresql
from monitor.storage.migrations import migrate

__all__ = ["create_database_engine", "is_postgresql", "migrate"]
