"""A scikit-learn model, trained on synthetic data at start, served by FastAPI and monitored.

    pip install scikit-learn                           # (part of the test extra)
    monitor serve --config examples/monitor.yaml        # in another terminal
    python examples/sklearn_server.py --port 9000
    curl -s -X POST localhost:9000/predict -H 'Content-Type: application/json' \\
      -d '{"age": 42, "income": 51000, "country": "DE"}'

It matches the ``credit`` model of examples/monitor.yaml (features age, income, country;
classes approved/rejected). Every prediction is logged with ``AsyncMonitor``; POST
``/labels`` with ``{"id", "label"}`` once the true outcome is known. MONITOR_URL, MONITOR_MODEL
and MONITOR_TOKEN configure the client.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from monitor.client import AsyncMonitor

COUNTRIES = ["DE", "FR", "NL", "PL"]


def encode(age: Any, income: Any, country: Any) -> np.ndarray[Any, Any]:
    """Model inputs: age, income (NaN when missing) and the country one-hot encoded."""
    countries = np.asarray(country)
    onehot = [(countries == name).astype(float) for name in COUNTRIES]
    return np.column_stack([np.asarray(age, float), np.asarray(income, float), *onehot])


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Applicants and whether they repaid: a made-up but learnable rule, 5% of incomes missing."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    income = rng.lognormal(10.8, 0.5, n)
    country = rng.choice(COUNTRIES, n)
    logit = 0.00004 * (income - 50_000) - 0.03 * np.abs(age - 45) + (country == "NL") * 0.5 + 0.5
    repaid = rng.random(n) < 1 / (1 + np.exp(-logit))
    income[rng.random(n) < 0.05] = np.nan
    return encode(age, income, country), np.where(repaid, "approved", "rejected")


def train() -> Pipeline:
    features, target = synthetic(5_000)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1_000))
    model.fit(features, target)
    return model


class Applicant(BaseModel):
    age: int
    income: float | None = None
    country: str


class Prediction(BaseModel):
    id: str
    prediction: Literal["approved", "rejected"]
    scores: dict[str, float]


class Label(BaseModel):
    id: str
    label: Literal["approved", "rejected"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.model = train()
    # the sender starts with the first log inside this loop
    app.state.monitor = AsyncMonitor(
        os.environ.get("MONITOR_URL", "http://127.0.0.1:8000"),
        os.environ.get("MONITOR_MODEL", "credit"),
        token=os.environ.get("MONITOR_TOKEN"),
    )
    try:
        yield
    finally:
        # shutdown: send what is queued, waiting at most close_timeout (5 s) so a monitor that
        # is down never holds up the model server's exit; what is still unsent then is given up
        # (counted in failed, one warning in the log)
        await app.state.monitor.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
async def predict(applicant: Applicant, request: Request) -> Prediction:
    model: Pipeline = request.app.state.model
    income = np.nan if applicant.income is None else applicant.income
    row = encode([applicant.age], [income], [applicant.country])
    probabilities = model.predict_proba(row)[0]
    scores = {
        str(c): round(float(p), 6) for c, p in zip(model.classes_, probabilities, strict=True)
    }
    result = Prediction(
        id=uuid.uuid4().hex, prediction=max(scores, key=scores.__getitem__), scores=scores
    )
    request.app.state.monitor.log_prediction(
        result.id, applicant.model_dump(), result.prediction, scores=result.scores
    )
    return result


@app.post("/labels", status_code=204)
async def labels(body: Label, request: Request) -> None:
    request.app.state.monitor.log_label(body.id, body.label)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
