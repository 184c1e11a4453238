"""Every error drift-monitor raises on purpose derives from ``MonitorError``.

::

    MonitorError
    ├── ConfigError(ValueError)          the config file is invalid; carries every ConfigIssue
    ├── ModelNotFoundError(LookupError)  no model of that name is configured
    ├── RouteNotFoundError(LookupError)  no webhook route of that name is configured
    ├── InvalidRecordsError(ValueError)  a batch has invalid records; carries every RecordIssue
    ├── PayloadError(ValueError)         a body that cannot be read at all (syntax, encoding)
    │   └── PayloadTooLargeError         the body (or its decompressed form) exceeds a limit
    ├── StorageError(RuntimeError)       the database refused an operation
    │   └── StorageUnavailableError      unreachable, locked, out of space, busy: try again
    ├── ServiceNotReadyError(RuntimeError) started without its database, not connected yet
    ├── ReplayInputError(ValueError)     rows of a replayed file are invalid; carries every RowIssue
    └── ReplayTargetError(RuntimeError)  the service a replay sends to refused or failed
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Root of the errors drift-monitor raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(MonitorError, ValueError):
    """The config is invalid. ``issues`` holds every problem found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class ModelNotFoundError(MonitorError, LookupError):
    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"no model named {model!r} is configured")


class RouteNotFoundError(MonitorError, LookupError):
    def __init__(self, route: str) -> None:
        self.route = route
        super().__init__(f"no webhook named {route!r} is configured")


@dataclass(frozen=True, slots=True)
class RecordIssue:
    """One problem in one record of a batch: its index, the field path and the reason."""

    index: int
    field: str
    reason: str


class InvalidRecordsError(MonitorError, ValueError):
    """A batch has invalid records; none of the batch is stored."""

    def __init__(self, issues: list[RecordIssue]) -> None:
        self.issues = issues
        records = len({issue.index for issue in issues})
        super().__init__(f"{records} invalid record(s), nothing of the batch was stored")


class PayloadError(MonitorError, ValueError):
    """The body cannot be read at all: bad JSON, bad gzip, bad CSV header."""


class PayloadTooLargeError(PayloadError):
    def __init__(self, limit_bytes: int, what: str = "request body") -> None:
        self.limit_bytes = limit_bytes
        super().__init__(f"{what} exceeds the limit of {limit_bytes} bytes")


class StorageError(MonitorError, RuntimeError):
    """The database refused an operation (``storage.Database`` translates driver errors)."""


class StorageUnavailableError(StorageError):
    """The database cannot be used now (unreachable, locked, out of space, every connection
    busy); the same request may succeed later."""


class ServiceNotReadyError(MonitorError, RuntimeError):
    """The service runs but has not reached its database yet (``monitor.startup`` is
    retrying); ask again after ``retry_after_seconds``."""

    def __init__(self, retry_after_seconds: int = 5) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            "the service is starting and has not reached its database yet; "
            "nothing of this request was stored"
        )


@dataclass(frozen=True, slots=True)
class RowIssue:
    """One problem in one row of a replayed file: its line (CSV, JSONL; the header is line 1)
    or row number (Parquet, from 1), the field and the reason."""

    line: int
    field: str
    reason: str


class ReplayInputError(MonitorError, ValueError):
    """Rows of a replayed file are invalid; the batch holding them was not stored."""

    def __init__(self, issues: list[RowIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.line}: {i.field}: {i.reason}" for i in issues))


class ReplayTargetError(MonitorError, RuntimeError):
    """The running service a replay sends to refused a request or could not be reached."""
