"""Every error drift-monitor raises on purpose derives from ``MonitorError``.

::

    MonitorError
    ├── ConfigError(ValueError)          the config file is invalid; carries every ConfigIssue
    ├── ModelNotFoundError(LookupError)  no model of that name is configured
    ├── RouteNotFoundError(LookupError)  no webhook route of that name is configured
    ├── InvalidRecordsError(ValueError)  a batch has invalid records; carries the first RecordIssues
    ├── PayloadError(ValueError)         a body that cannot be read at all (syntax, encoding)
    │   └── PayloadTooLargeError         the body (or its decompressed form) exceeds a limit
    ├── StorageError(RuntimeError)       the database refused an operation
    │   └── StorageUnavailableError      unreachable, locked, out of space, busy: try again
    ├── ServiceNotReadyError(RuntimeError) started without its database, not connected yet
    ├── ReplayInputError(ValueError)     rows of a replayed file are invalid; carries every RowIssue
    ├── ReplayTargetError(RuntimeError)  the service a replay sends to refused or failed
    └── MissingExtraError(ImportError)   an optional dependency is not installed; names its extra
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


#: Problems an ``InvalidRecordsError`` keeps (and a 422 lists). A few KB of gzip can hold a
#: million invalid records; listing them all took a GB of memory and a 242 MB answer.
MAX_REPORTED_ISSUES = 100


class InvalidRecordsError(MonitorError, ValueError):
    """A batch has invalid records; none of the batch is stored. ``issues`` are the first
    ``MAX_REPORTED_ISSUES`` problems (in record order), ``records`` counts every invalid
    record (default: those ``issues`` name), ``omitted`` the problems not kept."""

    def __init__(
        self, issues: list[RecordIssue], *, records: int | None = None, omitted: int = 0
    ) -> None:
        self.issues = issues
        self.records = len({issue.index for issue in issues}) if records is None else records
        self.omitted = omitted
        message = f"{self.records} invalid record(s), nothing of the batch was stored"
        if omitted:
            message += f"; the first {len(issues)} problems are listed"
        super().__init__(message)


class RecordIssues:
    """The problems of one batch, appended in record order: every one is counted, the first
    ``MAX_REPORTED_ISSUES`` are kept, so a batch of invalid records costs bounded memory.
    ``len()`` counts them all (validators compare it before and after a record)."""

    __slots__ = ("_count", "_last_index", "kept", "records")

    def __init__(self) -> None:
        self.kept: list[RecordIssue] = []
        self.records = 0
        self._count = 0
        self._last_index = -1

    def append(self, issue: RecordIssue) -> None:
        self._count += 1
        if issue.index != self._last_index:
            self.records += 1
            self._last_index = issue.index
        if len(self.kept) < MAX_REPORTED_ISSUES:
            self.kept.append(issue)

    def __len__(self) -> int:
        return self._count

    def error(self) -> InvalidRecordsError:
        kept = sorted(self.kept, key=lambda issue: issue.index)
        return InvalidRecordsError(kept, records=self.records, omitted=self._count - len(kept))


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


class MissingExtraError(MonitorError, ImportError):
    """``needed_for`` needs ``module``, which is not installed; the extra ``extra`` of the
    distribution brings it (``pip install 'drift-monitor[extra]'``)."""

    def __init__(self, extra: str, *, module: str, needed_for: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{needed_for} needs {module}, which is not installed: "
            f"pip install 'drift-monitor[{extra}]'",
            name=module,
        )
