"""Build the SQLAlchemy engine with the settings that make each backend durable and fast."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_database_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for ``url``.

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives a
    crash or ``kill -9`` of the process (the WAL is in the OS's hands once written); only a
    power loss can undo the last commits. ``busy_timeout`` lets concurrent writers queue
    instead of failing.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 16 MiB of page cache per connection: inserts touch the right-most pages of the id
        # and time indexes, which that keeps hot; a window read goes through it once (the OS
        # caches the file anyway), and with a pool of connections a larger cache each is
        # resident memory the service holds for nothing. Committing writers do not
        # checkpoint: ``checkpoint_sqlite`` does it from a background job, so copying the WAL
        # back into the database never lands on an ingest request.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def checkpoint_sqlite(engine: Engine) -> None:
    """Copy committed WAL frames into the database file without blocking readers or writers
    (a PASSIVE checkpoint); the WAL is reused from its start once readers have moved on."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
