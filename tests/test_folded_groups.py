"""Segments and fairness of a window larger than ``drift.exact_max_samples``: folded from the
window's records a chunk at a time (``evaluation.folded_groups``), on SQLite and PostgreSQL.

Differential: the folded path against the exact path on the same window (fairness and
performance identical; PSI, Jensen-Shannon and chi-square identical; KS inside the histogram
path's proven bound), small chunks against one chunk, and the independent references
(scikit-learn on each subset, fairlearn on the window)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import group_records
import numpy as np
import pytest
import sklearn.metrics as skm
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference
from group_records import COUNTRIES, NOW, running
from sqlalchemy import Engine, select, update

from monitor.config import parse_config
from monitor.evaluation.columns import Columns
from monitor.evaluation.document import to_document
from monitor.evaluation.folded_groups import GroupFolder
from monitor.evaluation.groups import evaluate_fairness, take
from monitor.jobs import evaluate as evaluate_job
from monitor.service import Service
from monitor.storage.tables import evaluations, predictions

CONFIG = """
models:
  - name: m
    task: classification
    classes: [approved, denied]
    features:
      - {name: x, type: numeric}
      - {name: country, type: categorical}
      - {name: gender, type: categorical}
    window: {duration: 1h}
    min_samples: 30
    drift: {exact_max_samples: 1000}
    segments:
      - {name: market, feature: country, values: [FR, DE]}
      - {name: sex, feature: gender}
    fairness: {sensitive: [gender, country], positive: approved}
    thresholds:
      psi: {critical: 0.25}
      accuracy: {warning: 0.6}
      demographic_parity_ratio: {critical: 0.8}
"""
N = 2400  # over exact_max_samples (1000): the histogram path


@pytest.fixture
def service(engine: Engine) -> Iterator[Service]:
    with running(engine, CONFIG) as service:
        yield service


def store(service: Service, seed: int, *, labelled: int, versions: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return group_records.store(service, rng, n=N, labelled=labelled, scores=True, versions=versions)


def compute(service: Service, *, exact: bool) -> dict[str, Any]:
    evaluation = service.evaluator.compute(service.model("m"), now=NOW, exact=exact)
    return to_document(evaluation)


def test_a_large_window_is_evaluated_from_histograms_with_its_groups(service: Service) -> None:
    store(service, 1, labelled=N)
    evaluation = service.evaluate("m")
    document = to_document(evaluation)
    assert evaluation.window.n == N
    assert document["features"]["x"]["exact"] is False  # the histogram path was taken
    assert "groups_skipped" not in document
    assert set(document["segments"]["market"]["values"]) == {"FR", "DE", "__other__"}
    assert set(document["fairness"]) == {"gender", "country"}
    firing = {
        (stored.alert.rule, stored.alert.feature)
        for stored in service.active_alerts("m")
        if stored.alert.state == "firing"
    }
    assert ("psi", "market=DE/x") in firing  # x moved in DE only
    assert ("demographic_parity_ratio", "gender") in firing


def test_folded_groups_equal_the_exact_path_on_the_same_window(service: Service) -> None:
    current = store(service, 2, labelled=N - 400)
    folded, exact = compute(service, exact=False), compute(service, exact=True)
    assert folded["features"]["x"]["exact"] is False and exact["features"]["x"]["exact"]
    assert folded["fairness"] == exact["fairness"]
    for name, segment in exact["segments"].items():
        assert set(folded["segments"][name]["values"]) == set(segment["values"])
        for value, body in segment["values"].items():
            mine = folded["segments"][name]["values"][value]
            assert mine["n"] == body["n"]
            assert mine["performance"] == body["performance"]
            for feature, drift in body["features"].items():
                got = mine["features"][feature]
                for statistic in ("psi", "jensen_shannon", "chi2_statistic", "chi2_pvalue"):
                    if statistic in drift:
                        assert got[statistic] == pytest.approx(drift[statistic], abs=1e-12)
                if "ks_statistic" in drift:  # the histogram path's proven bound
                    assert got["ks_statistic"] <= drift["ks_statistic"] + 1e-12
                    assert drift["ks_statistic"] <= got["ks_statistic"] + got["ks_bound"] + 1e-12
    # and against the independent references
    labelled = current["labelled"]
    de = (current["country"] == "DE") & labelled
    body = folded["segments"]["market"]["values"]["DE"]["performance"]
    assert body["accuracy"] == pytest.approx(
        skm.accuracy_score(current["truth"][de], current["predicted"][de]), abs=1e-12
    )
    assert body["roc_auc"] == pytest.approx(
        skm.roc_auc_score(current["truth"][de] == "approved", current["score"][de]), abs=1e-12
    )
    y_true = (current["truth"] == "approved").astype(int)
    y_pred = (current["predicted"] == "approved").astype(int)
    fairness = folded["fairness"]["gender"]
    assert fairness["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, sensitive_features=current["gender"]),
        abs=1e-12,
    )
    assert fairness["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(
            y_true[labelled], y_pred[labelled], sensitive_features=current["gender"][labelled]
        ),
        abs=1e-12,
    )


def test_small_chunks_fold_to_what_one_chunk_gives(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(service, 3, labelled=N // 2)
    monkeypatch.setattr(evaluate_job, "FOLD_CHUNK", 97)
    small = compute(service, exact=False)
    monkeypatch.setattr(evaluate_job, "FOLD_CHUNK", 1_000_000)
    whole = compute(service, exact=False)
    assert small["segments"] == whole["segments"]
    assert small["fairness"] == whole["fairness"]


def test_fairness_without_a_reference_folds_the_most_frequent_values_as_the_exact_path() -> None:
    model = parse_config(CONFIG).models[0]
    drift = model.drift.model_copy(update={"max_categories": 5})
    config = model.model_copy(update={"segments": [], "drift": drift})
    rng = np.random.default_rng(4)
    n = 3000
    # twelve values, two pairs of them equally frequent across the fifth place: ties
    values = np.repeat(
        list("abcdefghijkl"), [400, 350, 300, 280, 250, 250, 240, 240, 200, 190, 150, 150]
    )
    rng.shuffle(values)
    gender: list[str | None] = [str(v) for v in values]
    for i in range(0, n, 17):
        gender[i] = None
    columns = Columns(
        n,
        {"x": rng.normal(size=n)},
        {
            "gender": gender,
            "country": [str(c) for c in rng.choice(COUNTRIES, size=n)],
            "__prediction__": [str(p) for p in rng.choice(["approved", "denied"], size=n)],
            "__label__": [
                None if rng.random() < 0.2 else str(p)
                for p in rng.choice(["approved", "denied"], size=n)
            ],
        },
    )
    folder = GroupFolder(config, None, {})
    for start in range(0, n, 250):
        folder.add(take(columns, np.arange(start, min(start + 250, n))), None)
    expected = evaluate_fairness(config, None, columns)
    assert folder.fairness() == expected
    assert len(expected[0].groups) == config.drift.max_categories + 2  # __other__, __missing__


def test_a_large_window_folds_its_groups_and_its_canary_in_one_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = CONFIG.replace(
        "    window: {duration: 1h}", "    window: {duration: 1h}\n    versions: compare"
    )
    reads = []
    stream = evaluate_job.windows.stream_rows_between

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs["start"])
        return stream(*args, **kwargs)

    monkeypatch.setattr(evaluate_job.windows, "stream_rows_between", counted)
    with running(engine, text) as service:
        store(service, 5, labelled=N, versions=True)
        evaluation = service.evaluate("m")
    assert evaluation.window.n == N
    assert evaluation.segments and evaluation.fairness
    assert evaluation.canary is not None  # versions: compare, the more frequent one stable
    assert (evaluation.canary.stable.version, evaluation.canary.stable.n) == ("a", N - N // 3)
    assert (evaluation.canary.canary.version, evaluation.canary.canary.n) == ("b", N // 3)
    assert len(reads) == 1  # one read of the window for all of them


def test_a_large_window_with_groups_is_reproduced_and_a_changed_group_is_told(
    service: Service, engine: Engine
) -> None:
    store(service, 6, labelled=N, versions=True)
    service.evaluate("m")
    with service.database.read() as connection:
        [stored_id] = [row.seq for row in connection.execute(select(evaluations.c.seq))]
    assert service.reproduce("m", stored_id).identical
    # a denied prediction turned to approved: its groups' rates change, and it says so
    with engine.begin() as connection:
        row = connection.execute(
            select(predictions.c.id).where(predictions.c.prediction_class == "denied").limit(1)
        ).one()
        connection.execute(
            update(predictions)
            .where(predictions.c.id == row.id)
            .values(prediction_class="approved")
        )
    changed = service.reproduce("m", stored_id)
    assert "fairness" in changed.differences and "segments" in changed.differences
