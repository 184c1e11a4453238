"""Write the canary replay example's data: a reference and six hours of past predictions.

    python examples/canary/make_data.py examples/canary

writes ``reference.csv`` (2,000 labelled records of the stable model) and ``predictions.jsonl``
(one prediction every 4 s from 00:00 to 06:00 on 2026-11-02 UTC, each with its label and
``model_version``), the same bytes on every run (seeded numpy). The example's story
(docs/canary-example.md):

* every record has ``income`` (numeric), ``country`` (DE 70 %, FR 15 %, US 15 %) and
  ``gender`` (F, M: half each); 70 % of the true outcomes are ``approved``, in every group;
* the stable model ``v1`` predicts the true outcome 95 % of the time, in every group;
* from 03:00 the canary ``v2`` takes 30 % of the traffic. It is ``v1`` everywhere except for
  gender F in DE, where it denies everyone: that group's selection rate and true positive rate
  fall to 0 and its accuracy to the share of denials (30 %).

Labels are known 5 minutes after their prediction (``label_timestamp``). Each line is an ingest
record with its label (a CSV with a ``model_version`` column would replay the same).
"""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

SEED = 16
START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
HOURS = 6
STEP = 4.0  # seconds between predictions
CANARY_START = START + 3 * 3600.0
CANARY_SHARE = 0.3
LABEL_DELAY = 300.0
COUNTRIES = ("DE", "FR", "US")
COUNTRY_SHARES = (0.7, 0.15, 0.15)
GENDERS = ("F", "M")
APPROVED_SHARE = 0.7
STABLE_ACCURACY = 0.95
REFERENCE_SIZE = 2000


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` records of the stable model: features, true outcome and ``v1`` 's prediction."""
    country = rng.choice(COUNTRIES, size=n, p=COUNTRY_SHARES)
    gender = rng.choice(GENDERS, size=n)
    approved = rng.random(n) < APPROVED_SHARE
    income = np.round(rng.normal(40_000.0, 8_000.0, size=n) + 6_000.0 * approved, 2)
    right = rng.random(n) < STABLE_ACCURACY
    predicted = np.where(right, approved, ~approved)
    return {
        "income": income,
        "country": country,
        "gender": gender,
        "label": np.where(approved, "approved", "denied"),
        "prediction": np.where(predicted, "approved", "denied"),
    }


def write_reference(rng: np.random.Generator, path: Path) -> None:
    data = draw(rng, REFERENCE_SIZE)
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["income", "country", "gender", "prediction", "label"])
        for i in range(REFERENCE_SIZE):
            income = f"{data['income'][i]:.2f}"
            row = [data[name][i] for name in ("country", "gender", "prediction", "label")]
            writer.writerow([income, *row])


def write_predictions(rng: np.random.Generator, path: Path) -> None:
    n = int(HOURS * 3600 / STEP)
    data = draw(rng, n)
    times = START + STEP * np.arange(1, n + 1)
    canary = (times > CANARY_START) & (rng.random(n) < CANARY_SHARE)
    worse = canary & (data["country"] == "DE") & (data["gender"] == "F")
    prediction = np.where(worse, "denied", data["prediction"])
    with path.open("w") as out:
        for i in range(n):
            record = {
                "id": f"p{i}",
                "timestamp": rfc3339(times[i]),
                "model_version": "v2" if canary[i] else "v1",
                "features": {
                    "income": float(data["income"][i]),
                    "country": str(data["country"][i]),
                    "gender": str(data["gender"][i]),
                },
                "prediction": str(prediction[i]),
                "label": str(data["label"][i]),
                "label_timestamp": rfc3339(times[i] + LABEL_DELAY),
            }
            out.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where to write the two files")
    args = parser.parse_args(argv)
    args.directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    write_reference(rng, args.directory / "reference.csv")
    write_predictions(rng, args.directory / "predictions.jsonl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
