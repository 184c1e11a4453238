"""``monitor healthcheck``: whether the ``monitor serve`` of this machine (or container) answers.

The image's ``HEALTHCHECK`` runs it. It asks ``GET /healthz`` on ``127.0.0.1`` at the port that
``monitor serve`` listens on, resolved the same way (:func:`listen_port`): ``--port``, else
``$MONITOR_PORT``, else the config's ``server.port``. So the check follows the port wherever it
is changed, in the config or in the environment. ``/healthz`` answers while the process does,
database or not (``/readyz`` is the database's).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

#: the environment variable that overrides ``server.port``
PORT_VARIABLE = "MONITOR_PORT"


def listen_port(
    flag: int | None, config_port: Callable[[], int], environ: Mapping[str, str]
) -> int:
    """The port ``monitor serve`` listens on: ``flag`` (``--port``), else ``$MONITOR_PORT``,
    else ``config_port()`` (the config's ``server.port``, read only when needed).

    >>> listen_port(None, lambda: 8000, {"MONITOR_PORT": "9000"})
    9000
    >>> listen_port(7000, lambda: 8000, {"MONITOR_PORT": "9000"})
    7000
    >>> listen_port(None, lambda: 8000, {"MONITOR_PORT": ""})
    8000
    >>> listen_port(None, lambda: 8000, {"MONITOR_PORT": "http"})
    Traceback (most recent call last):
    ...
    ValueError: MONITOR_PORT='http' is not a port (1-65535)
    """
    if flag is not None:
        return flag
    value = environ.get(PORT_VARIABLE, "").strip()
    if not value:
        return config_port()
    port = int(value) if value.isdecimal() else 0
    if not 1 <= port <= 65535:
        raise ValueError(f"{PORT_VARIABLE}={value!r} is not a port (1-65535)")
    return port


def check(url: str, *, timeout_seconds: float) -> str | None:
    """None when ``GET url`` answers 200 within ``timeout_seconds``, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:  # refused, unreachable, timed out (URLError is an OSError)
        return f"{url}: {getattr(exc, 'reason', exc)}"
    return None if status == 200 else f"{url} answered {status}"
