"""The one owner of the database: connections, transactions, the SQLite write lock and the
translation of driver errors into the service's own.

Every read and write in the service goes through a ``Database``::

    with database.read() as connection:    # a connection, no transaction of ours
        ...
    with database.write() as connection:   # one transaction, committed at the end
        ...

What it guarantees, whatever is raised inside the block (a driver error, a bug, a
``KeyboardInterrupt`` in a worker, a generator abandoned by a client that hung up):

* the transaction is rolled back, and the connection is *invalidated*, not returned to the
  pool: a connection whose block failed may still hold an open cursor, a read snapshot or a
  lock (SQLite keeps a read transaction open for as long as a statement is not reset, which is
  what left ``database table is locked`` behind after a failed export), so it is closed and
  the pool opens a fresh one when next asked;
* on SQLite, writers queue on one in-process lock (SQLite has one writer at a time; a lock here
  hands the database over at once, where SQLite's busy handler would make them sleep and
  poll); on PostgreSQL the lock is a no-op;
* driver errors leave as ``StorageUnavailableError`` (unreachable, locked, out of space, a
  pool timeout: try again later) or ``StorageError`` (anything else the database refused), so
  no layer above storage needs SQLAlchemy to tell them apart.

Hold a block only around database work: a block must never span a ``yield`` to a slow
consumer (a streamed response reads a page per block, see ``windows.export_page``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext, make_url

from monitor.errors import StorageError, StorageUnavailableError
from monitor.storage.engine import checkpoint_sqlite, create_database_engine

log = logging.getLogger(__name__)

#: The DB-API exception classes of PEP 249, the same names in every driver.
DBAPI_ERROR_KINDS = (
    "OperationalError",
    "IntegrityError",
    "DataError",
    "ProgrammingError",
    "InternalError",
    "NotSupportedError",
    "InterfaceError",
)


def error_kind(error: BaseException) -> str:
    """The PEP 249 class name of a driver error (its most specific), else ``other``."""
    return next(
        (k.__name__ for k in type(error).__mro__ if k.__name__ in DBAPI_ERROR_KINDS), "other"
    )


def redact(url: str) -> str:
    """``url`` with its password hidden, for logs."""
    return make_url(url).render_as_string(hide_password=True)


class Database:
    """See the module docstring. ``on_error`` is called with each driver error's PEP 249 kind
    (``error_kind``), on requests and background jobs alike (the metrics count them)."""

    def __init__(self, engine: Engine, *, on_error: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        self._on_error = on_error
        event.listen(engine, "handle_error", self._count_error)

    @classmethod
    def from_url(cls, url: str, **kwargs: Callable[[str], None] | None) -> Database:
        return cls(create_database_engine(url), **kwargs)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A pooled connection for reads (no transaction is begun for the caller)."""
        with (
            self._translated(),
            self.engine.connect() as connection,
            self._invalidated_on_error(connection),
        ):
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside one transaction, committed when the block ends without an
        error; on SQLite, holding the write lock for the block."""
        with (
            self._translated(),
            self._write_lock,
            self.engine.connect() as connection,
            self._invalidated_on_error(connection),
            connection.begin(),
        ):
            yield connection

    def ping(self) -> None:
        """Raise ``StorageUnavailableError`` unless the database answers a query."""
        with self.read() as connection:
            connection.execute(text("SELECT 1"))

    def checkpoint(self) -> None:
        """SQLite: copy committed WAL frames into the database file (a no-op elsewhere)."""
        with self._translated():
            checkpoint_sqlite(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _invalidated_on_error(self, connection: Connection) -> Iterator[None]:
        try:
            yield
        except BaseException:
            # ``connection.begin()`` has rolled back (inside us) by now; whatever the failure
            # left on the driver's connection (an unreset statement, a snapshot, a lock) goes
            # with it instead of back to the pool.
            if not connection.invalidated:
                connection.invalidate()
            raise

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as error:
            raise translate(error) from error

    def _count_error(self, context: ExceptionContext) -> None:
        if self._on_error is not None:
            self._on_error(error_kind(context.original_exception))


def translate(error: BaseException) -> BaseException:
    """The service's own error for a driver error (``error`` itself for any other)."""
    if isinstance(error, sa_exc.OperationalError) or (
        isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
    ):
        return StorageUnavailableError(_describe(error))
    if isinstance(error, sa_exc.DBAPIError):
        return StorageError(_describe(error))
    if isinstance(error, sa_exc.TimeoutError):  # every pooled connection busy
        return StorageUnavailableError(f"no database connection free: {error}")
    return error


def driver_message(error: sa_exc.DBAPIError) -> str:
    """The driver's own message, its first non-empty line with spaces collapsed, without the
    SQL and parameters SQLAlchemy appends (they may hold records' values); empty if none."""
    original: BaseException = error.orig if error.orig is not None else error
    lines = (" ".join(line.split()) for line in str(original).splitlines())
    return next((line for line in lines if line), "")


def _describe(error: sa_exc.DBAPIError) -> str:
    """``driver_message`` after the error's kind: e.g. ``OperationalError: database is
    locked``."""
    kind = error_kind(error.orig if error.orig is not None else error)
    message = driver_message(error)
    return f"{kind}: {message}" if message else kind
