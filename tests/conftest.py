"""Shared fixtures. Storage-backed tests run on SQLite and on PostgreSQL.

PostgreSQL is found through ``MONITOR_TEST_DATABASE_URL`` (``.ci/run`` sets it); each test gets
a schema of its own, dropped afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text

from monitor.config import Config, parse_config
from monitor.storage import create_database_engine

POSTGRES_ENV = "MONITOR_TEST_DATABASE_URL"

CONFIG_YAML = """
models:
  - name: credit
    task: classification
    classes: [approved, rejected]
    features:
      - {name: age, type: numeric}
      - {name: income, type: numeric}
      - {name: country, type: categorical}
    window: {duration: 1h}
    min_samples: 10
  - name: price
    task: regression
    features:
      - {name: rooms, type: numeric}
      - {name: city, type: categorical}
"""


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip(
            f"PostgreSQL not configured: set {POSTGRES_ENV} "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG_YAML)
