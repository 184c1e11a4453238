"""Turn request bodies into validated batches: pure functions, no I/O beyond the bytes given."""

from __future__ import annotations

from monitor.ingest.decode import decode_records
from monitor.ingest.reference import parse_reference_csv, validate_reference
from monitor.ingest.validate import RecordValidator

__all__ = ["RecordValidator", "decode_records", "parse_reference_csv", "validate_reference"]
