"""``monitor replay``: files of past predictions replayed in data time fire the alerts a live
service would have fired, at the data times it would have fired them.

The replayed file is built so that every expected transition follows from its construction:
one record every 10 s; feature ``x`` cycles through the 60 quantiles of N(0, 1) in a fixed
order, so every 10 minutes of records (60 of them) holds each quantile once; the reference
is 1,000 quantiles of N(0, 1). A window of 1 h at a tick on a multiple of 10 minutes is then
whole cycles: its PSI against the reference is 0, and with a share ``f`` of the window shifted
by +4 (every shifted value lands above the reference's top decile), PSI is exactly
``9 * 0.1 f * -ln(1 - f) + 0.9 f * ln(1 + 9 f)``: 0.165 at f = 1/6, 0.54 at f = 2/6. The KS
statistic is about 0.16 at f = 1/6 (p-value about 1e-5 for 360 against 1,000 values) and
tiny at f = 0 (p-value near 1).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from receiver import SECRET, Receiver
from server_process import free_port, start_server
from sqlalchemy import func, select

from monitor.cli import main
from monitor.config import load_config
from monitor.errors import ReplayInputError
from monitor.replay import open_source
from monitor.replay.progress import ProgressBar
from monitor.replay.run import Progress
from monitor.replay.sources import ReplayRecord, parse_instant
from monitor.replay.timeline import in_order
from monitor.storage import create_database_engine
from monitor.storage.tables import deliveries, predictions

STEP = 10.0  # seconds between records
TICK = 600.0  # schedule: 10m
HOUR = 3600.0
#: midnight (UTC) two days ago: the data are in the past, and ticks fall on its multiples
T0 = (int(time.time()) // 86_400 - 2) * 86_400.0
SHIFT_START = T0 + 2 * HOUR  # x is shifted by +4 for records with S < ts <= R
SHIFT_END = T0 + 4 * HOUR
LABELS_WRONG = T0 + 5 * HOUR  # after this, every other label disagrees with the prediction
LABEL_DELAY = 900.0  # a label becomes known 15 minutes after its prediction
END = T0 + 7 * HOUR
QUANTILES = [NormalDist().inv_cdf((q + 0.5) / 60) for q in range(60)]
ORDER = [(7 * k) % 60 for k in range(60)]  # a fixed permutation of the 60 quantiles

CONFIG = """
storage: {url: "%(url)s"}
server:
  auth: {admin_tokens: ["%(token)s"]}
models:
  - name: m
    task: classification
    classes: [a, b]
    features:
      - {name: x, type: numeric}
      - {name: c, type: categorical}
    reference: {path: reference.jsonl}
    window: {duration: 1h}
    schedule: 10m
    min_samples: 100
    thresholds:
      psi: {critical: 0.25, features: [x]}
      ks_pvalue: {critical: 0.01, features: [x]}
      accuracy: {critical: 0.8}
    alerts: {for: 2, routes: [hook]}
webhooks:
  - {name: hook, url: "%(hook)s", secret: "%(secret)s", allow_private: true}
"""
TOKEN = "replay-admin-token-0123456789"


def rows(end: float = END) -> Iterator[dict[str, Any]]:
    """The file's rows, one every 10 s from T0 + 10 s to ``end``."""
    i = 0
    while T0 + STEP * (i + 1) <= end:
        ts = T0 + STEP * (i + 1)
        x = QUANTILES[ORDER[i % 60]] + (4.0 if SHIFT_START < ts <= SHIFT_END else 0.0)
        prediction = "ab"[i % 2]
        wrong = ts > LABELS_WRONG and i % 2 == 1
        yield {
            "id": f"r{i}",
            "timestamp": ts,
            "x": x,
            "c": "uv"[i % 3 % 2],
            "prediction": prediction,
            "score_a": 0.8 if prediction == "a" else 0.2,
            "score_b": 0.2 if prediction == "a" else 0.8,
            "label": ("ba" if wrong else "ab")[i % 2],
            "label_timestamp": ts + LABEL_DELAY,
        }
        i += 1


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def jsonl_line(row: dict[str, Any]) -> str:
    return json.dumps(
        {
            "id": row["id"],
            "timestamp": rfc3339(row["timestamp"]),
            "features": {"x": None if math.isnan(row["x"]) else row["x"], "c": row["c"]},
            "prediction": row["prediction"],
            "scores": {"a": row["score_a"], "b": row["score_b"]},
            "label": row["label"],
            "label_timestamp": rfc3339(row["label_timestamp"]),
        }
    )


def write_jsonl(path: Path, data: list[dict[str, Any]]) -> Path:
    path.write_text("".join(jsonl_line(row) + "\n" for row in data))
    return path


def write_csv(path: Path, data: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(data[0]))
        writer.writeheader()
        for row in data:
            writer.writerow({**row, "timestamp": rfc3339(row["timestamp"])})
    return path


def write_parquet(path: Path, data: list[dict[str, Any]]) -> Path:
    columns = {name: [row[name] for row in data] for name in data[0]}
    table = pa.table(
        {
            **columns,
            "timestamp": pa.array(
                [int(t * 1e6) for t in columns["timestamp"]], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(table, path, row_group_size=700)  # several row groups and record batches
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


def write_config(tmp_path: Path, database_url: str, hook: str) -> Path:
    reference = tmp_path / "reference.jsonl"
    with reference.open("w") as out:
        for i in range(1000):
            x = NormalDist().inv_cdf((i + 0.5) / 1000)
            record = {"features": {"x": x, "c": "uv"[i % 3 % 2]}, "prediction": "ab"[i % 2]}
            out.write(json.dumps(record) + "\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        CONFIG % {"url": database_url, "token": TOKEN, "hook": hook, "secret": SECRET}
    )
    return config


def expected_timeline() -> list[tuple[float, str, str | None, str]]:
    """(data time, rule, feature, transition), from the construction (module docstring)."""
    s, r, a = SHIFT_START, SHIFT_END, LABELS_WRONG
    return sorted(
        [
            # 1/6 of the window shifted: KS breaches (p ~ 1e-5), PSI does not (0.165)
            (s + 1 * TICK, "ks_pvalue", "x", "pending"),
            (s + 2 * TICK, "ks_pvalue", "x", "firing"),  # alerts.for: 2
            (s + 2 * TICK, "psi", "x", "pending"),  # 2/6 shifted: PSI 0.54
            (s + 3 * TICK, "psi", "x", "firing"),
            # shifted back at R: PSI is inside from 1/6 shifted (R + 50m), twice in a row at
            # R + 60m; KS from none shifted (R + 60m), twice at R + 70m
            (r + 6 * TICK, "psi", "x", "resolved"),
            (r + 7 * TICK, "ks_pvalue", "x", "resolved"),
            # labels known 15 min late: at A + 10k min, the window's 270 labelled predictions
            # hold 60k - 90 after A, half of them wrong: accuracy 0.833 at k = 3, 0.722 at 4
            (a + 4 * TICK, "accuracy", None, "pending"),
            (a + 5 * TICK, "accuracy", None, "firing"),
        ]
    )


def timeline_of(output: str) -> list[tuple[float, str, str | None, str]]:
    document = json.loads(output)
    return sorted(
        (t["at_unix"], t["rule"], t["feature"], t["transition"]) for t in document["timeline"]
    )


# -- readers -------------------------------------------------------------------------------


def test_every_format_reads_the_same_records(tmp_path: Path) -> None:
    data = list(rows(T0 + 1000 * STEP))
    data[3] = {**data[3], "x": math.nan, "c": None}  # missing values
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", "http://127.0.0.1:9/h")
    config = load_config(path).models[0]
    found = {}
    for name, write in (("csv", write_csv), ("jsonl", write_jsonl), ("parquet", write_parquet)):
        path = write(tmp_path / f"data.{name}", data)
        with path.open("rb") as stream:
            source = open_source(stream, config, name, size=path.stat().st_size)  # type: ignore[arg-type]
            found[name] = list(source)
            assert source.position == source.size  # progress reaches the end
    first = found["jsonl"][0]
    assert first == ReplayRecord(
        1,
        T0 + STEP,
        {
            "id": "r0",
            "timestamp": T0 + STEP,
            "features": {"x": QUANTILES[0], "c": "u"},
            "prediction": "a",
            "scores": {"a": 0.8, "b": 0.2},
        },
        "a",
        T0 + STEP + LABEL_DELAY,
        len(jsonl_line(data[0])) + 1,  # read to the end of its line
    )
    for name in ("csv", "parquet"):
        assert len(found[name]) == len(data)
        for mine, theirs in zip(found[name], found["jsonl"], strict=True):
            # the same record; lines differ (CSV has a header line, Parquet counts rows)
            assert (mine.timestamp, mine.label, mine.label_timestamp) == (
                theirs.timestamp,
                theirs.label,
                theirs.label_timestamp,
            )
            assert mine.prediction == theirs.prediction
        assert found[name][3].prediction["features"] == {"x": None, "c": None}
    assert [r.line for r in found["csv"][:2]] == [2, 3]
    assert [r.line for r in found["parquet"][:2]] == [1, 2]
    assert [r.position for r in found["parquet"][:2]] == [1, 2]  # rows
    assert {name: found[name][-1].position for name in found} == {
        name: (tmp_path / f"data.{name}").stat().st_size if name != "parquet" else len(data)
        for name in found
    }


def test_a_file_too_far_out_of_order_is_refused_naming_the_line() -> None:
    records = [ReplayRecord(n, ts, {}) for n, ts in enumerate([5.0, 6.0, 4.0, 7.0, 1.0], 1)]
    assert [r.line for r in in_order(records[:4], buffer=2)] == [3, 1, 2, 4]
    with pytest.raises(ReplayInputError) as raised:
        list(in_order(records, buffer=2))
    assert raised.value.issues[0].line == 5
    assert raised.value.issues[0].field == "timestamp"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("timestamp", "1e300", "must not be after 9999-12-31T23:59:59Z"),
        ("timestamp", "inf", "must not be after 9999-12-31T23:59:59Z"),
        ("timestamp", "nan", "must be a number of Unix seconds, not NaN"),
        ("timestamp", "-1", "must not be before 1970-01-01T00:00:00Z"),
        (
            "label_timestamp",
            "10000-01-01T00:00:00Z",
            "must be an RFC 3339 date-time or Unix seconds",
        ),
        ("label_timestamp", "9999-12-31T23:59:59-01:00", "must not be after 9999-12-31T23:59:59Z"),
    ],
)
def test_a_time_out_of_range_is_refused_naming_line_and_field(
    tmp_path: Path, field: str, value: str, reason: str
) -> None:
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", "http://127.0.0.1:9/h")
    config = load_config(path).models[0]
    data = list(rows(T0 + 5 * STEP))
    table = write_csv(tmp_path / "data.csv", data)
    lines = table.read_text().splitlines()
    column = lines[0].split(",").index(field)
    cells = lines[3].split(",")
    cells[column] = value  # line 4
    lines[3] = ",".join(cells)
    table.write_text("\n".join(lines) + "\n")
    with table.open("rb") as stream, pytest.raises(ReplayInputError) as raised:
        list(open_source(stream, config, "csv"))
    assert [(i.line, i.field, i.reason) for i in raised.value.issues] == [(4, field, reason)]


def test_the_progress_bar_redraws_one_line() -> None:
    out = io.StringIO()
    ticks = iter([0.0, 1.0, 1.05, 2.0, 2.0])
    bar = ProgressBar(out, interval=0.2, clock=lambda: next(ticks))
    progress = Progress(records=100, data_time=T0, position=10, size=100)
    bar(progress)
    bar(progress)  # within the interval: not drawn
    progress.records = 200
    bar(progress)
    bar.close()
    drawn = out.getvalue()
    assert drawn.count("\r") == 3 and drawn.endswith("\n")
    assert "200 records 100/s" in drawn and rfc3339(T0) in drawn


class Recorder:
    """A target that stores nothing and sees no alert."""

    def store_predictions(self, at: float, records: list[dict[str, Any]]) -> None:
        pass

    def store_labels(self, at: float, records: list[dict[str, Any]]) -> None:
        pass

    def evaluate(self, at: float) -> tuple[list[Any], int]:
        return [], 0


def test_progress_counts_what_was_replayed_not_what_was_read_ahead(tmp_path: Path) -> None:
    """The file is read up to the sort buffer ahead of what is replayed (here all of it):
    the bar shows the records handed on, so it starts near 0 %, not at 100 %."""
    from monitor.replay import replay as run_replay

    database = f"sqlite:///{tmp_path / 'm.db'}"
    config = load_config(write_config(tmp_path, database, "http://127.0.0.1:9/")).models[0]
    table = write_csv(tmp_path / "past.csv", list(rows(T0 + 2 * HOUR)))  # 720 rows
    lines = table.read_bytes().splitlines(keepends=True)
    ends = [sum(len(line) for line in lines[: n + 1]) for n in range(len(lines))]
    seen: list[tuple[int, int, int | None]] = []
    with table.open("rb") as stream:
        source = open_source(stream, config, "csv", size=len(table.read_bytes()))
        run_replay(
            source,
            Recorder(),
            every=TICK,
            batch=100,
            on_progress=lambda p: seen.append((p.records, p.position, p.size)),
        )
    # after k records (lines 2 .. k + 1 of the file), the bar is at the end of line k + 1
    assert [(position, size) for _, position, size in seen] == [
        (ends[records], ends[-1]) for records, _, _ in seen
    ]
    assert seen[0][0] == 60 and seen[-1][:2] == (720, ends[-1])  # the first tick's records


# -- replays -------------------------------------------------------------------------------


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_known_drift_fires_at_the_expected_data_times(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    config = write_config(tmp_path, database_url, receiver.url)
    data = write_csv(tmp_path / "past.csv", list(rows()))
    code, out, err = replay(
        capsys, str(data), "--model", "m", "--config", str(config), "--batch", "500"
    )
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == [
        "data",
        "time",
        "model",
        "rule",
        "feature",
        "transition",
        "severity",
        "value",
        "threshold",
    ]
    table = [line.split() for line in lines]
    assert (
        sorted(
            (parse_instant(at), rule, None if feature == "-" else feature, kind)
            for at, _, rule, feature, kind, *_ in table
        )
        == expected_timeline()
    )
    records = int((END - T0) / STEP)
    assert f"replayed {records:,} records and {records:,} labels" in err
    assert f"{int((END - T0) / TICK)} evaluations" in err
    # by default the events are recorded, not sent: nothing queued, nothing received
    engine = create_database_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(deliveries)).scalar() == 0
        stored = connection.execute(select(func.count()).select_from(predictions)).scalar()
    engine.dispose()
    assert stored == records
    assert receiver.requests == []


def test_send_webhooks_delivers_the_replayed_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'replay.db'}", receiver.url)
    data = write_jsonl(tmp_path / "past.jsonl", list(rows()))
    before = time.time()
    code, out, err = replay(
        capsys, str(data), "--model", "m", "--config", str(config), "--send-webhooks", "--json"
    )
    assert code == 0, err
    assert timeline_of(out) == expected_timeline()
    events = [json.loads(body) for _, body in receiver.requests]
    sent = sorted((e["created_at"], e["rule"], e["type"]) for e in events)
    assert sent == sorted(
        (rfc3339(at), rule, f"alert.{kind}")  # whole seconds: no fraction written
        for at, rule, _, kind in expected_timeline()
        if kind != "pending"
    )
    # signed now (a receiver refuses old signatures), about data times
    for headers, _ in receiver.requests:
        assert before - 5 <= int(headers["webhook-timestamp"]) <= time.time() + 5

    # replayed again into the same store: the alerts go on from where they are (accuracy was
    # firing, the first windows are accurate again) and the first run's events are not
    # reported as this run's
    code, out, err = replay(capsys, str(data), "--model", "m", "--config", str(config), "--json")
    assert code == 0, err
    again = timeline_of(out)
    assert (SHIFT_START + 3 * TICK, "psi", "x", "firing") in again
    assert len(again) == len(set(again)) == len(expected_timeline()) + 1
    # the first run's labels are all stored already: 120 labelled at the 2nd tick, 2 clears
    assert (T0 + 3 * TICK, "accuracy", None, "resolved") in again
    assert len(receiver.requests) == len(sent)  # not sent this time


def test_a_running_service_reaches_the_same_firing_times(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    config = write_config(tmp_path, database_url, receiver.url)
    data = write_parquet(tmp_path / "past.parquet", list(rows()))
    port = free_port()
    server = start_server(config, port, tmp_path / "server.log")
    try:
        code, out, err = replay(
            capsys,
            str(data),
            "--model",
            "m",
            "--url",
            f"http://127.0.0.1:{port}",
            "--token",
            TOKEN,
            "--json",
        )
        assert code == 0, err + (tmp_path / "server.log").read_text()
        assert timeline_of(out) == expected_timeline()
        code, _, err = replay(
            capsys, str(data), "--model", "m", "--url", f"http://127.0.0.1:{port}"
        )
        assert code == 1 and "401" in err  # evaluating needs the admin token
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert receiver.requests == []  # evaluate?webhooks=false queued nothing


def test_a_bad_row_names_file_line_and_field_and_stores_nothing_of_its_batch(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    config = write_config(tmp_path, database_url, receiver.url)
    lines = [jsonl_line(row) for row in rows(T0 + 12 * STEP)]
    lines[6] = lines[6].replace('"x": ', '"x": "high", "was": ')  # line 7
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines) + "\n")
    code, _, err = replay(
        capsys, str(data), "--model", "m", "--config", str(config), "--batch", "5"
    )
    assert code == 1
    assert f"{data}:7: features.x: must be a number or null (numeric feature)" in err
    assert f"{data}:7: features.was: not a feature of model 'm'" in err
    engine = create_database_engine(database_url)
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(predictions)).scalar()
    engine.dispose()
    assert stored == 5  # the first batch (lines 1-5); lines 6-10 were refused together

    table = write_csv(tmp_path / "bad.csv", list(rows(T0 + 12 * STEP)))
    text = table.read_text().splitlines()
    cells = text[3].split(",")
    cells[2] = "abc"  # x of line 4
    text[3] = ",".join(cells)
    table.write_text("\n".join(text) + "\n")
    code, _, err = replay(capsys, str(table), "--model", "m", "--config", str(config))
    assert code == 1
    assert f"{table}:4: features.x: not a number: 'abc'" in err


def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}", "http://127.0.0.1:9/h")
    data = write_jsonl(tmp_path / "past.data", list(rows(T0 + 3 * STEP)))
    assert replay(capsys, str(data), "--model", "m", "--config", str(config))[0] == 2
    code, _, err = replay(
        capsys, str(data), "--model", "nope", "--config", str(config), "--format", "jsonl"
    )
    assert code == 2 and "no model named 'nope'" in err
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    assert replay(capsys, str(data), "--model", "m", "--format", "jsonl")[0] == 2


SCORED = """
models:
  - name: m
    task: classification
    classes: [a, b]
    features: [{name: x, type: numeric}, {name: c, type: categorical}]
    reference: {path: reference.jsonl}
    window: {duration: 1h}
    schedule: 10m
    min_samples: 50
"""


def scored_record(rng: Any, i: int) -> dict[str, Any]:
    """A record whose scores are calibrated: its label is ``a`` with probability P(a)."""
    p = round(float(rng.uniform(0.05, 0.95)), 6)
    return {
        "id": f"r{i}",
        "features": {"x": round(float(rng.normal(p * 4, 1)), 6), "c": "uv"[i % 2]},
        "prediction": "a" if p >= 0.5 else "b",
        "scores": {"a": p, "b": round(1 - p, 6)},
        "label": "a" if rng.uniform() < p else "b",
    }


def export_window(
    tmp_path: Path, config_text: str, records: list[dict[str, Any]], *, end: float, kind: str
) -> tuple[dict[str, Any], Any]:
    """Store ``records`` (and their labels) in a fresh service over ``config_text`` (written to
    ``monitor.yaml``), evaluate at ``end`` and export the hour before it as ``kind``: the
    evaluation's document and the export's response."""
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from monitor.api import create_app
    from monitor.evaluation.document import to_document
    from monitor.service import Service

    (tmp_path / "monitor.yaml").write_text(config_text)
    original = Service(
        load_config(tmp_path / "monitor.yaml"),
        engine=create_database_engine(f"sqlite:///{tmp_path / 'original.db'}"),
        registry=CollectorRegistry(),
    )
    original.start(run_jobs=False)
    original.store_predictions("m", [{k: v for k, v in r.items() if k != "label"} for r in records])
    # each label known at its prediction's time, so the replay has them all by the last tick
    labels = [{"id": r["id"], "label": r["label"], "timestamp": r["timestamp"]} for r in records]
    original.store_labels("m", labels)
    expected = to_document(original.evaluate("m", at=end, webhooks=False))
    with TestClient(create_app(original, manage_service=False)) as client:
        window = {"start": repr(end - HOUR), "end": repr(end), "format": kind}
        exported = client.get("/v1/models/m/export", params=window)
        assert exported.status_code == 200
    original.stop()
    return expected, exported


def test_an_exported_window_replays_with_its_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GET .../export?format=csv, replayed into a fresh store, gives the evaluation the
    original gave: roc_auc and the label-free estimate need the scores."""
    import numpy as np
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from monitor.api import create_app
    from monitor.service import Service

    rng = np.random.default_rng(7)
    with (tmp_path / "reference.jsonl").open("w") as out:
        for i in range(500):
            out.write(json.dumps({k: v for k, v in scored_record(rng, i).items() if k != "id"}))
            out.write("\n")
    end = T0 + HOUR  # a tick; the last record is at it, so the replay evaluates there
    records = [{**scored_record(rng, i), "timestamp": end - 15 * (199 - i)} for i in range(200)]
    expected, exported = export_window(tmp_path, SCORED, records, end=end, kind="csv")
    # and the same file is a reference as it is
    again = Service(
        load_config(tmp_path / "monitor.yaml"),
        engine=create_database_engine(f"sqlite:///{tmp_path / 'original.db'}"),
        registry=CollectorRegistry(),
    )
    again.start(run_jobs=False)
    with TestClient(create_app(again, manage_service=False)) as client:
        as_reference = client.put(
            "/v1/models/m/reference", content=exported.content, headers={"content-type": "text/csv"}
        )
        assert as_reference.status_code == 201 and as_reference.json()["n"] == 200
    again.stop()
    config = load_config(tmp_path / "monitor.yaml")
    table = tmp_path / "window.csv"
    table.write_bytes(exported.content)

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, _, err = replay(
        capsys, str(table), "--model", "m", "--config", str(tmp_path / "monitor.yaml"),
        "--database", fresh, "--json",
    )  # fmt: skip
    assert code == 0, err
    replayed = Service(config, engine=create_database_engine(fresh), registry=CollectorRegistry())
    replayed.start(run_jobs=False)
    found = replayed.latest_evaluation("m")
    replayed.stop()
    assert found is not None and found["window"] == expected["window"]
    performance = expected["performance"]
    assert performance["roc_auc"] is not None and performance["estimated_accuracy"] is not None
    assert found["performance"] == performance
    assert (found["features"], found["outputs"]) == (expected["features"], expected["outputs"])


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_exported_window_replays_with_its_model_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Each record's ``model_version`` (or none) survives export then replay, in CSV (the
    ``model_version`` column, empty for none) and JSON Lines, and so does the canary
    comparison of the window."""
    import numpy as np
    from prometheus_client import CollectorRegistry

    from monitor.service import Service

    rng = np.random.default_rng(9)
    with (tmp_path / "reference.jsonl").open("w") as out:
        for i in range(300):
            out.write(json.dumps({k: v for k, v in scored_record(rng, i).items() if k != "id"}))
            out.write("\n")
    end = T0 + HOUR
    versions = ["v1", "v2", None]  # every third record has no version
    records = []
    for i in range(240):
        record = {**scored_record(rng, i), "timestamp": end - 15 * (239 - i)}
        if versions[i % 3] is not None:
            record["model_version"] = versions[i % 3]
        records.append(record)
    text = SCORED + "    versions: compare\n"
    expected, exported = export_window(tmp_path, text, records, end=end, kind=kind)
    config = load_config(tmp_path / "monitor.yaml")
    if kind == "csv":
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert list(table[0])[-1] == "model_version"
        written = {row["id"]: row["model_version"] for row in table}
        assert written == {r["id"]: r.get("model_version", "") for r in records}
    else:
        lines = [json.loads(line) for line in exported.text.splitlines()]
        written = {line["id"]: line["model_version"] for line in lines}
        assert written == {r["id"]: r.get("model_version") for r in records}
    path = tmp_path / f"window.{kind}"
    path.write_bytes(exported.content)

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, _, err = replay(
        capsys, str(path), "--model", "m", "--config", str(tmp_path / "monitor.yaml"),
        "--database", fresh, "--json",
    )  # fmt: skip
    assert code == 0, err
    engine = create_database_engine(fresh)
    with engine.connect() as connection:
        query = select(predictions.c.id, predictions.c.model_version)
        stored = {row.id: row.model_version for row in connection.execute(query)}
    engine.dispose()
    assert stored == {r["id"]: r.get("model_version") for r in records}
    replayed = Service(config, engine=create_database_engine(fresh), registry=CollectorRegistry())
    replayed.start(run_jobs=False)
    found = replayed.latest_evaluation("m")
    replayed.stop()
    assert found is not None and found["window"] == expected["window"]
    assert found["lineage"]["model_versions"] == {"v1": 80, "v2": 80}
    assert expected["versions"]["stable"]["performance"]["n"] == 80
    assert found["versions"] == expected["versions"]
