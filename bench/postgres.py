"""PostgreSQL for the benchmarks: is the server there, and a database (or a schema) made fresh
for a run."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from urllib.parse import quote

from sqlalchemy.engine import make_url


def _admin_conninfo(url: str) -> str:
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False)


def postgres_unreachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(_admin_conninfo(url), connect_timeout=3) as connection:
            connection.execute(b"SELECT 1")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first}"
    return None


@contextlib.contextmanager
def fresh_postgres(url: str) -> Iterator[str]:
    """Create the URL's database anew (dropping it first) and drop it afterwards."""
    import psycopg

    name = make_url(url).database
    if not name or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"need a plain lower-case database name in {url!r}")

    def execute(statement: str) -> None:
        with psycopg.connect(
            _admin_conninfo(url), autocommit=True, connect_timeout=5
        ) as connection:
            connection.execute(statement.encode())

    execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    execute(f"CREATE DATABASE {name}")
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def fresh_schema(url: str, name: str) -> Iterator[str]:
    """Create schema ``name`` in the URL's database (dropping it first) and yield a URL whose
    connections use it (``search_path`` in the URL's options); drop it afterwards."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"need a plain lower-case schema name, not {name!r}")
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def execute(statement: str) -> None:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(statement.encode())

    execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={name}')}"
    finally:
        with contextlib.suppress(Exception):
            execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
