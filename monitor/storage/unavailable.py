"""Tell "the database is not reachable (yet)" apart from every other database error.

The service starts without its database and retries (``monitor.startup``) only for the
errors this module recognises; any other error at start-up is a defect or a misconfiguration
that retrying would not cure.
"""

from __future__ import annotations

from pathlib import PurePath

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from monitor.errors import StorageUnavailableError
from monitor.storage.database import driver_message


def unavailable_reason(error: BaseException, *, url: str | URL) -> str | None:
    """One line saying why the database at ``url`` cannot be used, when ``error`` means it
    is unavailable; None for any other error.

    Unavailable: an ``OperationalError`` or ``InterfaceError`` of the driver (PostgreSQL
    refusing or dropping connections, still starting up, an unknown database or role, a
    failed authentication; SQLite unable to open or write its file, e.g. a missing or
    unwritable directory that an operator may yet mount) or a connection found invalidated.
    The line is the driver's first line of message, with the URL's password (should a driver
    repeat it) replaced by ``***``; for SQLite's "unable to open database file" it names the
    directory to check.
    """
    if isinstance(error, StorageUnavailableError):  # translated by storage.Database
        if not isinstance(error.__cause__, DBAPIError):
            return str(error)
        error = error.__cause__
    if not isinstance(error, OperationalError | InterfaceError) and not (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        return None
    assert isinstance(error, DBAPIError)
    original = error.orig if error.orig is not None else error
    reason = driver_message(error) or type(original).__name__
    parsed = make_url(url)
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    if parsed.get_backend_name() == "sqlite" and "unable to open database file" in reason:
        directory = PurePath(parsed.database or ".").parent
        reason += f" (check that the directory {directory} exists and is writable)"
    return reason
