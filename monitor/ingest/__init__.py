"""Turn request bodies into validated batches: pure functions, no I/O beyond the bytes given."""

from __future__ import annotations

from monitor.ingest.decode import decode_records, iter_records
from monitor.ingest.reference import reference_batch, validate_reference
from monitor.ingest.validate import RecordValidator

__all__ = [
    "RecordValidator",
    "decode_records",
    "iter_records",
    "reference_batch",
    "validate_reference",
]
