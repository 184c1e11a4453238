"""Build the SQLAlchemy engine with the settings that make each backend durable and fast."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from monitor.errors import MissingExtraError

log = logging.getLogger(__name__)

#: libpq settings that bound how long a lost database can hold a connection attempt or a
#: query; a URL's own query parameters of the same names take precedence.
#:
#: * ``connect_timeout``: a server that accepts the TCP connection and never answers (frozen,
#:   or a network that drops packets) fails the attempt after 5 s, so a request answers 503
#:   instead of hanging, and the pool tries again at the next request;
#: * TCP keepalives and ``tcp_user_timeout``: an open connection to a host that has gone
#:   (a failover, a partition) is found dead within about a minute, instead of the
#:   operating system's default of two hours (idle) or fifteen minutes (unacknowledged data).
POSTGRESQL_CONNECT_ARGS: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # milliseconds
}

#: The server's side of the same bounds, set on each session (all settable by any user):
#: the backend of a replica that vanished without closing its connection (its host crashed,
#: a partition) ends within about a minute, rolling back its transaction and releasing its
#: locks (a model's alert lock, a claimed row), instead of holding them for the server's
#: default two hours; ``client_connection_check_interval`` (PostgreSQL 14+) stops a long
#: query whose client has gone (``kill -9``) without waiting for it to finish. Each with the
#: server version (``server_version_num``) that knows it.
POSTGRESQL_SESSION_SETTINGS: tuple[tuple[str, str, int], ...] = (
    ("tcp_keepalives_idle", "30", 0),
    ("tcp_keepalives_interval", "10", 0),
    ("tcp_keepalives_count", "3", 0),
    ("tcp_user_timeout", "60000", 120000),
    ("client_connection_check_interval", "10000", 140000),
)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_database_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for ``url``.

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction survives a
    crash or ``kill -9`` of the process (the WAL is in the OS's hands once written); only a
    power loss can undo the last commits. ``busy_timeout`` lets concurrent writers queue
    instead of failing.

    PostgreSQL connections are checked before each use (``pool_pre_ping``: one cut by a
    restart, a failover or ``pg_terminate_backend`` is replaced, not handed out) and bounded
    by ``POSTGRESQL_CONNECT_ARGS`` and ``POSTGRESQL_SESSION_SETTINGS``.
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
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    try:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={
                k: v for k, v in POSTGRESQL_CONNECT_ARGS.items() if k not in parsed.query
            },
        )
    except ModuleNotFoundError as exc:
        if exc.name != "psycopg":  # another driver named in the URL: not ours to install
            raise
        raise MissingExtraError(
            "postgresql", module="psycopg", needed_for="a PostgreSQL database URL"
        ) from exc
    event.listen(engine, "connect", _configure_postgresql)
    return engine


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


def _configure_postgresql(dbapi_connection: Any, _record: Any) -> None:
    """Apply ``POSTGRESQL_SESSION_SETTINGS``, each on its own: a server that refuses one (a
    platform without the socket option it needs, a PostgreSQL-compatible server that lacks
    it) goes on without it, saying so once per process."""
    version = int(dbapi_connection.info.server_version)
    for name, value, since in POSTGRESQL_SESSION_SETTINGS:
        if version < since or name in _REFUSED_SETTINGS:
            continue
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
            dbapi_connection.commit()  # a session setting, kept for the connection's life
        except Exception as exc:  # the driver's own error class
            dbapi_connection.rollback()
            _REFUSED_SETTINGS.add(name)
            log.warning("PostgreSQL refused %s = %s (%s); going on without it", name, value, exc)
        finally:
            cursor.close()


_REFUSED_SETTINGS: set[str] = set()


def checkpoint_sqlite(engine: Engine) -> None:
    """Copy committed WAL frames into the database file without blocking readers or writers
    (a PASSIVE checkpoint); the WAL is reused from its start once readers have moved on."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
