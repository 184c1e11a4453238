"""Reading request bodies: gzip members, content codings, the body timeout, large bodies
stored in bounded chunks, and the slots that bound how many are decoded at once."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import CONFIG_YAML
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.api import create_app
from monitor.api.ingest import IngestMiddleware
from monitor.api.problems import ProblemError
from monitor.api.slots import DecodeSlots
from monitor.config import Config, parse_config
from monitor.errors import PayloadError, PayloadTooLargeError
from monitor.ingest.payload import Payload, inflate
from monitor.service import Service
from monitor.storage import repository as repo


def record(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"r{i}",
        "timestamp": "2026-01-01T00:00:00Z",
        "features": {"age": 30 + i % 50, "income": 1000.5 * (i % 7), "country": "DE"},
        "prediction": "approved",
    }
    base.update(overrides)
    return base


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.fixture
def service(config: Config, engine: Engine) -> Service:
    return Service(config, engine=engine, registry=CollectorRegistry())


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service)) as client:
        yield client


def stored_ids(service: Service, model: str = "credit") -> set[str]:
    with service.engine.connect() as connection:
        return repo.prediction_ids(connection, model=model)


NDJSON = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}


# -- gzip members ------------------------------------------------------------------------


@pytest.mark.parametrize("members", [2, 3])
def test_every_gzip_member_is_read(client: TestClient, service: Service, members: int) -> None:
    body = b"".join(
        gzip.compress(ndjson([record(m * 10 + i) for i in range(3)])) for m in range(members)
    )
    response = client.post("/v1/models/credit/predictions", content=body, headers=NDJSON)
    assert response.status_code == 202
    assert response.json() == {"accepted": 3 * members, "duplicates": 0}
    assert stored_ids(service) == {f"r{m * 10 + i}" for m in range(members) for i in range(3)}


def test_gzip_members_of_labels_are_all_read(client: TestClient, service: Service) -> None:
    body = gzip.compress(b'{"id": "a", "label": "approved"}\n') + gzip.compress(
        b'{"id": "b", "label": "rejected"}\n'
    )
    response = client.post("/v1/models/credit/labels", content=body, headers=NDJSON)
    assert response.json() == {"accepted": 2, "duplicates": 0, "corrections": 0}


def test_a_member_split_across_json_lines_is_one_body(client: TestClient, service: Service) -> None:
    text = ndjson([record(i) for i in range(4)])
    body = gzip.compress(text[:50]) + gzip.compress(text[50:])  # a line spans both members
    response = client.post("/v1/models/credit/predictions", content=body, headers=NDJSON)
    assert response.json() == {"accepted": 4, "duplicates": 0}


def test_trailing_garbage_after_a_member_is_400(client: TestClient, service: Service) -> None:
    body = gzip.compress(ndjson([record(1)])) + b"garbage"
    response = client.post("/v1/models/credit/predictions", content=body, headers=NDJSON)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "body has 7 bytes after the end of its gzip data"
    assert stored_ids(service) == set()


def test_decompressed_limit_applies_to_all_members_together() -> None:
    member = gzip.compress(b"x" * 600)
    assert inflate(member * 2, max_bytes=1200) == b"x" * 1200
    with pytest.raises(PayloadTooLargeError) as raised:
        inflate(member * 3, max_bytes=1200)
    assert str(raised.value) == "decompressed request body exceeds the limit of 1200 bytes"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "gzip body is truncated"),
        (gzip.compress(b"abc")[:-3], "gzip body is truncated"),
        (gzip.compress(b"abc") + gzip.compress(b"d")[:5], "gzip body is truncated"),
        (b"\x1f\x8bnot gzip at all", "body is not valid gzip: "),
    ],
)
def test_broken_gzip_is_a_payload_error(data: bytes, message: str) -> None:
    with pytest.raises(PayloadError) as raised:
        inflate(data, max_bytes=1 << 20)
    assert str(raised.value).startswith(message)


def test_pieces_are_bounded_and_add_up_to_the_body() -> None:
    text = bytes(range(256)) * 4000
    payload = Payload(
        gzip.compress(text[:300_000]) + gzip.compress(text[300_000:]),
        media_type="application/x-ndjson",
        encoding="gzip",
        max_decompressed_bytes=len(text),
    )
    pieces = list(payload.pieces(piece_bytes=65536))
    assert b"".join(pieces) == text
    assert max(map(len, pieces)) == 65536


# -- content codings ------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["br", "deflate", "zstd", "gzip, br"])
def test_unsupported_coding_is_415(client: TestClient, coding: str) -> None:
    response = client.post(
        "/v1/models/credit/predictions",
        content=b"[]",
        headers={"content-type": "application/json", "content-encoding": coding},
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"Content-Encoding {coding!r} is not supported (send gzip or no encoding)"
    )


@pytest.mark.parametrize("path", ["predictions", "labels", "reference"])
@pytest.mark.parametrize("codings", [("gzip", "gzip"), ("gzip", "identity"), ("identity", "gzip")])
def test_repeated_content_encoding_headers_are_one_list(
    client: TestClient, service: Service, path: str, codings: tuple[str, str]
) -> None:
    """Two ``Content-Encoding`` fields are one list (RFC 9110 5.3): only the last was read, so
    a body gzipped twice was 400 (decoded once), not 415 like ``gzip, gzip``."""
    body = gzip.compress(gzip.compress(ndjson([record(1)])))
    headers = [("content-type", "application/x-ndjson")] + [
        ("content-encoding", coding) for coding in codings
    ]
    method = "PUT" if path == "reference" else "POST"
    response = client.request(method, f"/v1/models/credit/{path}", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["detail"] == (
        f"Content-Encoding '{', '.join(codings)}' is not supported (send gzip or no encoding)"
    )
    assert stored_ids(service) == set()


def test_unsupported_coding_of_a_reference_is_415(client: TestClient) -> None:
    response = client.put(
        "/v1/models/credit/reference",
        content=b"[]",
        headers={"content-type": "application/json", "content-encoding": "br"},
    )
    assert response.status_code == 415


# -- body timeout ---------------------------------------------------------------------------


def short_body_timeout() -> Config:
    return parse_config(CONFIG_YAML + "server: {body_timeout: 0.05s}\n")


async def call_stalled(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """Drive ``app`` with a request whose body stops after its first bytes: the client
    declared more than it sends and then waits."""
    sent: list[Any] = []
    stalled = asyncio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b'[{"id": ', "more_body": True}
        await stalled.wait()  # never set
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST" if "reference" not in path else "PUT",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("path", ["/v1/models/credit/predictions", "/v1/models/credit/labels"])
def test_a_stalled_body_is_answered_408(engine: Engine, path: str) -> None:
    service = Service(short_body_timeout(), engine=engine, registry=CollectorRegistry())
    app = IngestMiddleware(_unreachable, service=service)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    sent = asyncio.run(call_stalled(app, path, headers))
    start, body = sent
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert (b"content-type", b"application/problem+json") in start["headers"]
    problem = orjson.loads(body["body"])
    assert problem["detail"] == "the request body was not received within 0.05 seconds"
    assert problem["type"] == "urn:drift-monitor:problem:body-timeout"


def test_a_stalled_reference_upload_is_answered_408(engine: Engine) -> None:
    service = Service(short_body_timeout(), engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)  # past the readiness gate
    app = create_app(service, manage_service=False)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    sent = asyncio.run(call_stalled(app, "/v1/models/credit/reference", headers))
    assert sent[0]["status"] == 408


async def _unreachable(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the ingest routes never reach the app behind")


def test_body_timeout_is_at_most_60_seconds() -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_config(CONFIG_YAML + "server: {body_timeout: 2m}\n")
    assert "server.body_timeout" in str(raised.value)
    assert parse_config(CONFIG_YAML).server.body_timeout.total_seconds() == 30


# -- large bodies: chunked, all or nothing -------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies over 2 KiB count as large, and are decoded 1 KiB at a time."""
    monkeypatch.setattr("monitor.api.body.LARGE_BODY_BYTES", 2048)
    monkeypatch.setattr("monitor.ingest.chunked.CHUNK_BYTES", 1024)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("media_type", ["application/x-ndjson", "application/json"])
def test_a_large_body_is_stored_whole_chunk_by_chunk(
    client: TestClient, service: Service, encoding: str, media_type: str
) -> None:
    records = [record(i) for i in range(200)] + [record(3), record(150)]  # 2 repeated ids
    text = ndjson(records) if media_type.endswith("ndjson") else orjson.dumps(records)
    body = gzip.compress(text) if encoding == "gzip" else text
    response = client.post(
        "/v1/models/credit/predictions",
        content=body,
        headers={"content-type": media_type, "content-encoding": encoding},
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 200, "duplicates": 2}
    assert stored_ids(service) == {f"r{i}" for i in range(200)}
    assert (
        service.registry.get_sample_value(
            "drift_monitor_records_ingested_total", {"model": "credit"}
        )
        == 200
    )


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("media_type", ["application/x-ndjson", "application/json"])
def test_an_invalid_record_late_in_a_large_body_stores_nothing(
    client: TestClient, service: Service, media_type: str
) -> None:
    records = [record(i) for i in range(200)]
    records[5] = record(5, prediction="maybe")
    records[180] = record(180, features={"age": 1})
    text = ndjson(records) if media_type.endswith("ndjson") else orjson.dumps(records)
    response = client.post(
        "/v1/models/credit/predictions", content=text, headers={"content-type": media_type}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "index": 5,
            "field": "prediction",
            "reason": "must be one of the classes: approved, rejected",
        },
        {
            "index": 180,
            "field": "features.income",
            "reason": "is missing (send null for a missing value)",
        },
        {
            "index": 180,
            "field": "features.country",
            "reason": "is missing (send null for a missing value)",
        },
    ]
    assert stored_ids(service) == set()
    assert (
        service.registry.get_sample_value(
            "drift_monitor_records_rejected_total", {"model": "credit", "reason": "invalid_record"}
        )
        == 2
    )


@pytest.mark.usefixtures("small_chunks")
def test_a_broken_line_late_in_a_large_body_is_named_and_stores_nothing(
    client: TestClient, service: Service
) -> None:
    lines = ndjson([record(i) for i in range(100)]).splitlines(keepends=True)
    lines.insert(90, b"\n")  # a blank line counts as a line, not a record
    lines[95] = b'{"id": "broken"\n'
    response = client.post(
        "/v1/models/credit/predictions",
        content=gzip.compress(b"".join(lines)),
        headers=NDJSON,
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 96 of the NDJSON body is not valid JSON")
    assert stored_ids(service) == set()


@pytest.mark.usefixtures("small_chunks")
def test_a_large_body_over_the_decompressed_limit_stores_nothing(
    engine: Engine,
) -> None:
    config = parse_config(CONFIG_YAML + "server: {max_decompressed_bytes: 8192}\n")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    body = gzip.compress(ndjson([record(i) for i in range(100)]))
    with TestClient(create_app(service)) as client:
        response = client.post("/v1/models/credit/predictions", content=body, headers=NDJSON)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "decompressed request body exceeds the limit of 8192 bytes"
    )
    assert stored_ids(service) == set()


@pytest.mark.usefixtures("small_chunks")
def test_a_large_label_body_is_stored_chunk_by_chunk(client: TestClient, service: Service) -> None:
    client.post(
        "/v1/models/credit/labels",
        content=b'{"id": "l0", "label": "rejected"}\n{"id": "l1", "label": "approved"}\n',
        headers={"content-type": "application/x-ndjson"},
    )
    labels = [{"id": f"l{i}", "label": "approved"} for i in range(150)]
    labels.append({"id": "l149", "label": "approved"})  # the same label again, same chunk
    response = client.post(
        "/v1/models/credit/labels",
        content=gzip.compress(ndjson(labels)),
        headers=NDJSON,
    )
    assert response.status_code == 202
    # l0: a correction of a stored label; l1: a stored duplicate; l149 twice: a duplicate
    assert response.json() == {"accepted": 148, "duplicates": 2, "corrections": 1}
    assert service.counts("credit").labels == 150


@pytest.mark.usefixtures("small_chunks")
def test_a_label_relabelled_in_a_later_chunk_counts_as_a_correction(
    client: TestClient, service: Service
) -> None:
    labels = [{"id": f"l{i}", "label": "approved"} for i in range(150)]
    labels.append({"id": "l0", "label": "rejected"})  # l0 is in the first chunk
    response = client.post(
        "/v1/models/credit/labels",
        content=ndjson(labels),
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.json() == {"accepted": 150, "duplicates": 0, "corrections": 1}
    with service.engine.connect() as connection:
        from sqlalchemy import text

        stored = connection.execute(
            text("SELECT label_class FROM labels WHERE model = 'credit' AND id = 'l0'")
        ).scalar_one()
    assert stored == "rejected"  # the later label, as in a small body


@pytest.mark.usefixtures("small_chunks")
def test_an_invalid_label_late_in_a_large_body_stores_nothing(
    client: TestClient, service: Service
) -> None:
    labels: list[dict[str, Any]] = [{"id": f"l{i}", "label": "approved"} for i in range(150)]
    labels[140] = {"id": "l140", "label": "maybe"}
    response = client.post(
        "/v1/models/credit/labels",
        content=orjson.dumps(labels),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 140, "field": "label", "reason": "must be one of the classes: approved, rejected"}
    ]
    assert service.counts("credit").labels == 0


def test_chunked_decode_peaks_under_two_and_a_half_times_the_body(
    service: Service,
) -> None:
    import tracemalloc

    records = [record(i) for i in range(60_000)]
    text = ndjson(records)  # about 8 MiB
    body = gzip.compress(text)
    payload = Payload(
        body,
        media_type="application/x-ndjson",
        encoding="gzip",
        max_decompressed_bytes=service.config.server.max_decompressed_bytes,
    )
    del records
    service.start(run_jobs=False)
    try:
        tracemalloc.start()
        result = asyncio.run(service.store_large_predictions_body("credit", payload))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        service.stop()
    assert result.accepted == 60_000
    assert peak < 2.5 * len(text), f"peak {peak / len(text):.2f} times the body"


def test_chunked_label_decode_peaks_under_two_and_a_half_times_the_body(
    service: Service,
) -> None:
    import tracemalloc

    text = b"".join(
        b'{"id": "label-%d", "label": "approved", "timestamp": 1767225600}\n' % i
        for i in range(120_000)
    )  # about 8 MiB; decoded whole, its peak was 18 times that
    payload = Payload(
        gzip.compress(text),
        media_type="application/x-ndjson",
        encoding="gzip",
        max_decompressed_bytes=service.config.server.max_decompressed_bytes,
    )
    service.start(run_jobs=False)
    try:
        tracemalloc.start()
        result = asyncio.run(service.store_large_labels_body("credit", payload))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        service.stop()
    assert result.accepted == 120_000
    assert peak < 2.5 * len(text), f"peak {peak / len(text):.2f} times the body"


# -- a body of many invalid records ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("predictions", b"{}\n"),
        ("labels", b"{}\n"),
        ("predictions", b"1\n"),
        ("reference", b"{}\n"),
    ],
)
@pytest.mark.parametrize("large", [False, True])
def test_a_body_of_many_invalid_records_lists_the_first_problems_and_counts_all(
    client: TestClient,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    line: bytes,
    large: bool,
) -> None:
    """A few KB of gzip holding a million ``{}`` lines made a 1 GB list of problems (and a
    242 MB answer): the answer lists the first 100 problems and counts every record."""
    if large:
        monkeypatch.setattr("monitor.api.body.LARGE_BODY_BYTES", 2048)
        monkeypatch.setattr("monitor.ingest.chunked.CHUNK_BYTES", 1024)
    count = 5_000
    method = "PUT" if path == "reference" else "POST"
    response = client.request(
        method, f"/v1/models/credit/{path}", content=gzip.compress(line * count), headers=NDJSON
    )
    assert response.status_code == 422
    problem = response.json()
    assert len(problem["errors"]) == 100
    assert problem["errors"][0]["index"] == 0
    assert problem["detail"] == (
        f"{count} invalid record(s), nothing of the batch was stored; "
        "the first 100 problems are listed"
    )
    if path != "reference":
        assert (
            service.registry.get_sample_value(
                "drift_monitor_records_rejected_total",
                {"model": "credit", "reason": "invalid_record"},
            )
            == count
        )


def test_few_invalid_records_are_all_listed(client: TestClient) -> None:
    records = [record(i, prediction="maybe") for i in range(3)]
    response = client.post("/v1/models/credit/predictions", json=records)
    assert response.status_code == 422
    assert len(response.json()["errors"]) == 3
    assert response.json()["detail"] == "3 invalid record(s), nothing of the batch was stored"


# -- decode slots -----------------------------------------------------------------------


def test_slots_admit_so_many_at_once_and_the_next_waits_then_gets_503() -> None:
    async def scenario() -> tuple[list[str], ProblemError]:
        slots = DecodeSlots(slots=2, wait_seconds=0.01)
        events: list[str] = []
        async with slots.hold(), slots.hold():
            events.append("two held")
            with pytest.raises(ProblemError) as raised:
                async with slots.hold():
                    events.append("third got in")  # never
        async with slots.hold():
            events.append("free again")
        return events, raised.value

    events, refused = asyncio.run(scenario())
    assert events == ["two held", "free again"]
    assert refused.status == 503
    assert refused.headers == {"Retry-After": "1"}


def test_beyond_twice_the_slots_waiting_a_body_gets_503_at_once() -> None:
    async def scenario() -> list[str]:
        slots = DecodeSlots(slots=1, wait_seconds=60)
        events: list[str] = []
        release = asyncio.Event()

        async def body(name: str) -> None:
            try:
                async with slots.hold():
                    events.append(f"{name} in")
                    await release.wait()
            except ProblemError as exc:
                events.append(f"{name} {exc.status}")

        tasks = [asyncio.create_task(body(n)) for n in ("a", "b", "c", "d")]
        for _ in range(3):
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(*tasks)
        return events

    assert asyncio.run(scenario()) == ["a in", "d 503", "b in", "c in"]


def test_a_waiting_body_gets_the_slot_that_is_released() -> None:
    async def scenario() -> list[str]:
        slots = DecodeSlots(slots=1, wait_seconds=60)
        events: list[str] = []
        release = asyncio.Event()

        async def first() -> None:
            async with slots.hold():
                events.append("first in")
                await release.wait()
                events.append("first out")

        async def second() -> None:
            async with slots.hold():
                events.append("second in")

        task = asyncio.create_task(first())
        await asyncio.sleep(0)
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)
        events.append("second waiting")
        release.set()
        await asyncio.gather(task, waiting)
        return events

    assert asyncio.run(scenario()) == ["first in", "second waiting", "first out", "second in"]


def test_ndjson_chunks_end_at_line_ends_and_know_their_first_line() -> None:
    from monitor.ingest.chunked import record_chunks

    text = ndjson([record(i) for i in range(50)])
    pieces = [text[i : i + 300] for i in range(0, len(text), 300)]  # lines cut anywhere
    chunks = list(record_chunks(iter(pieces), "application/x-ndjson", chunk_bytes=512))
    assert len(chunks) > 5
    assert b"".join(c.text for c in chunks) == text
    assert all(c.text.endswith(b"\n") for c in chunks)
    first_lines = [1]
    for chunk in chunks[:-1]:
        first_lines.append(first_lines[-1] + chunk.text.count(b"\n"))
    assert [c.first_line for c in chunks] == first_lines
    assert all(len(c.text) < 512 + 200 for c in chunks)


def test_json_array_chunks_hold_the_records_in_order() -> None:
    from monitor.ingest.chunked import record_chunks

    records = [record(i) for i in range(50)]
    for text in (orjson.dumps(records), orjson.dumps({"records": records})):
        chunks = list(
            record_chunks(iter([text[:7], text[7:]]), "application/json", chunk_bytes=512)
        )
        assert len(chunks) > 5
        assert [r for c in chunks for r in orjson.loads(c.text)] == records


def test_a_json_array_is_cut_without_an_object_per_element() -> None:
    """``[1,1,...]``: parsed whole into raw slices first, each element cost 57 bytes (28
    times the body: 2.9 GB for 100 MiB). Cut at commas, the peak is a chunk's worth."""
    import tracemalloc

    from monitor.ingest.chunked import record_chunks

    text = b"[" + b",".join([b"1"] * 4_000_000) + b"]"  # about 8 MiB
    tracemalloc.start()
    elements = 0
    for chunk in record_chunks(iter([text]), "application/json", chunk_bytes=64 * 1024):
        elements += len(orjson.loads(chunk.text))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elements == 4_000_000
    assert peak < 0.5 * len(text), f"peak {peak / len(text):.2f} times the body"


def test_json_array_chunks_are_cut_only_between_records() -> None:
    """Commas and ``},{`` inside strings and nested values are not where records end."""
    from monitor.ingest.chunked import record_chunks

    records = [
        {"id": f"r{i}", "s": "a},{b" * (i % 3), "t": ",,", "f": {"x": [1, {"y": "},{"}]}}
        for i in range(300)
    ]
    for text in (
        orjson.dumps(records),
        orjson.dumps({"records": records}),
        b" \n" + orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n ",
        orjson.dumps(list(range(1000))),
    ):
        chunks = list(record_chunks(iter([text]), "application/json", chunk_bytes=512))
        assert len(chunks) > 5
        decoded = orjson.loads(text)
        expected = decoded["records"] if isinstance(decoded, dict) else decoded
        assert [r for c in chunks for r in orjson.loads(c.text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        b"[" + b"1," * 500 + b"]",  # a trailing comma
        b"[" + b"1," * 500 + b",1]",
        b"[" + b"1," * 500 + b"1 2]",
        b"[" + b'{"a": 1},\n' * 300 + b'{"a": }]',
        b"[" + b"1," * 300 + b"1]]",
    ],
)
def test_a_broken_json_array_is_named_where_it_breaks(text: bytes) -> None:
    from monitor.ingest.chunked import record_chunks

    with pytest.raises(orjson.JSONDecodeError) as whole:
        orjson.loads(text)
    with pytest.raises(PayloadError) as chunked:
        list(record_chunks(iter([text]), "application/json", chunk_bytes=512))
    assert str(chunked.value) == f"body is not valid JSON: {whole.value}"


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize(
    ("media_type", "text", "what"),
    [
        (
            "application/x-ndjson",
            ndjson([record(i) for i in range(60)]),
            "line 31 of the NDJSON body",
        ),
        (
            "application/json",
            orjson.dumps([record(i) for i in range(60)]),
            "a record of the JSON array",
        ),
    ],
)
def test_a_record_over_the_record_limit_is_413(
    client: TestClient,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
    media_type: str,
    text: bytes,
    what: str,
) -> None:
    """One NDJSON line (or array element) of 100 MiB ``[{},{},...]`` parsed to 2.8 GB."""
    monkeypatch.setattr("monitor.ingest.chunked.MAX_RECORD_BYTES", 4096)
    huge = orjson.dumps(record(30, extra=[{}] * 3000))
    if media_type == "application/x-ndjson":
        lines = text.splitlines(keepends=True)
        lines[30] = huge + b"\n"
        body = b"".join(lines)
    else:
        body = text[:-1] + b"," + huge + b"]"
    response = client.post(
        "/v1/models/credit/predictions",
        content=gzip.compress(body),
        headers={"content-type": media_type, "content-encoding": "gzip"},
    )
    assert response.status_code == 413
    assert response.json()["detail"] == f"{what} exceeds the limit of 4096 bytes"
    assert stored_ids(service) == set()


# -- the shipped limits fit the shipped memory --------------------------------------------


def test_shipped_body_limits_fit_the_shipped_memory_limits() -> None:
    """docs/deployment.md's memory arithmetic over the configs and limits in deploy/."""
    from pathlib import Path

    import yaml

    deploy = Path(__file__).resolve().parents[1] / "deploy"
    manifests = list(yaml.safe_load_all((deploy / "kubernetes" / "deployment.yaml").read_text()))
    pod = manifests[0]["spec"]["template"]["spec"]
    containers = [*pod.get("initContainers", []), *pod["containers"]]  # a native sidecar
    (sidecar,) = [c for c in containers if "drift-monitor" in c["image"]]
    assert sidecar["resources"]["limits"]["memory"] == "640Mi"
    configmap = yaml.safe_load((deploy / "kubernetes" / "configmap.yaml").read_text())
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    assert compose["services"]["monitor"]["mem_limit"] == "640m"
    for text in (configmap["data"]["monitor.yaml"], (deploy / "monitor.compose.yaml").read_text()):
        server = yaml.safe_load(text)["server"]
        defaults = parse_config(CONFIG_YAML).server
        body = server.get("max_body_bytes", defaults.max_body_bytes)
        decompressed = server.get("max_decompressed_bytes", defaults.max_decompressed_bytes)
        slots = server.get("max_concurrent_large_bodies", defaults.max_concurrent_large_bodies)
        idle, evaluation = 160e6, 140e6
        # a JSON array of labels, the costliest body: 2.4 x its decompressed size (measured)
        worst = idle + evaluation + slots * (body + 2.4 * decompressed) + 2 * slots * body
        assert worst <= 640 * 2**20, worst
