"""A FastAPI model server that logs every prediction to drift-monitor with ``AsyncMonitor``.

    monitor serve --config examples/monitor.yaml        # in another terminal
    uvicorn --app-dir examples client_fastapi:app --port 9000
    curl -s -X POST localhost:9000/predict -H 'Content-Type: application/json' \\
      -d '{"age": 42, "income": 51000, "country": "DE"}'
    curl -s -X POST localhost:9000/feedback -H 'Content-Type: application/json' \\
      -d '{"id": "<id from /predict>", "outcome": "rejected"}'

MONITOR_URL, MONITOR_MODEL and MONITOR_TOKEN configure the client. The monitor is created in the
lifespan and closed (flushed) at shutdown, waiting at most 5 s; logging in a handler never waits
on drift-monitor.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel

from monitor.client import AsyncMonitor


class Applicant(BaseModel):
    age: int
    income: float | None = None
    country: str


class Decision(BaseModel):
    id: str
    prediction: Literal["approved", "rejected"]
    score: float


class Feedback(BaseModel):
    id: str
    outcome: Literal["approved", "rejected"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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


def score(applicant: Applicant) -> float:
    """A stand-in for a real model: a probability of approval."""
    income = applicant.income if applicant.income is not None else 30_000.0
    value = 0.2 + min(income, 120_000.0) / 200_000.0 + (0.1 if 25 <= applicant.age <= 65 else 0.0)
    return round(min(value, 1.0), 4)


@app.post("/predict")
async def predict(applicant: Applicant, request: Request) -> Decision:
    approved = score(applicant)
    decision = Decision(
        id=uuid.uuid4().hex,
        prediction="approved" if approved >= 0.5 else "rejected",
        score=approved,
    )
    monitor: AsyncMonitor = request.app.state.monitor
    monitor.log_prediction(  # queues and returns: never awaits, never raises
        decision.id,
        applicant.model_dump(),
        decision.prediction,
        scores={"approved": approved, "rejected": round(1 - approved, 4)},
    )
    return decision


@app.post("/feedback", status_code=204)
async def feedback(body: Feedback, request: Request) -> None:
    request.app.state.monitor.log_label(body.id, body.outcome)
