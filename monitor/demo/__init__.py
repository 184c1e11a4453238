"""``monitor demo``: the service with a bundled config, a synthetic model sending it traffic,
and a known drift injected after a minute, to see drift-monitor work in one command.

The model ``demo`` (``config.yaml``, beside this file) is evaluated every 5 s over the last
2 minutes. Its reference is generated from the synthetic model (``traffic.py``) and stored at
start; a background thread then sends a few dozen predictions a second through the HTTP API and
the labels of most of them 3 s later. After ``drift_after`` seconds the ``income`` feature
drifts and the labels stop following the model, so the drift of ``income`` and then the
accuracy drop show in ``GET /v1/models/demo/drift``, ``GET /v1/alerts`` and ``/metrics``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from monitor.demo.traffic import DRIFTED_FEATURE, MODEL, Traffic, reference_records

__all__ = ["config_file", "run"]

#: The config sets ``storage.url`` from this variable; the demo always sets it.
DATABASE_VARIABLE = "MONITOR_DEMO_DATABASE_URL"


@contextlib.contextmanager
def config_file() -> Iterator[Path]:
    """The bundled config as a file on disk (extracted for as long as the context lasts)."""
    resource = importlib.resources.files(__package__ or "monitor.demo") / "config.yaml"
    with importlib.resources.as_file(resource) as path:
        yield path


def run(
    *,
    host: str | None = None,
    port: int | None = None,
    duration: float = 0.0,
    drift_after: float = 60.0,
    database: str | None = None,
    log_level: str = "info",
) -> int:
    """Run the demo until Ctrl-C, SIGTERM or ``duration`` seconds (> 0) of traffic."""
    import uvicorn

    from monitor.api import create_app
    from monitor.config import load_config
    from monitor.service import Service
    from monitor.storage import create_database_engine

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    restore = _terminate_as_interrupt()
    try:
        with contextlib.ExitStack() as stack:
            if database is None:
                directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="monitor-demo-"))
                database = f"sqlite:///{Path(directory) / 'demo.db'}"
            path = stack.enter_context(config_file())
            config = load_config(path, environ={**os.environ, DATABASE_VARIABLE: database})
            url = config.storage.url or database
            # not Service(config) alone: that would prefer MONITOR_DATABASE_URL to the demo's
            service = Service(config, engine=create_database_engine(url))
            service.start()
            stack.callback(service.stop)
            info = service.store_reference(MODEL, reference_records(), source="demo")
            logging.getLogger("monitor").info(
                "model %s: reference version %d (%d generated records)", MODEL, info.version, info.n
            )
            app = create_app(service, manage_service=False, stop_service=True)
            listen = host or config.server.host
            port = port or config.server.port
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=listen,
                    port=port,
                    log_level=log_level,
                    access_log=False,
                    proxy_headers=False,
                    timeout_graceful_shutdown=5,
                )
            )
            base = f"http://{_connect_host(listen)}:{port}"

            def done() -> None:
                print(f"demo: {duration:g} s are over, stopping", flush=True)
                server.should_exit = True

            traffic = Traffic(
                base,
                drift_after=drift_after,
                duration=duration,
                on_ready=lambda: print(banner(base, url, drift_after, duration), flush=True),
                on_done=done,
            )
            traffic.start()
            stack.callback(traffic.close)
            server.run()
            if not server.started:  # e.g. the port is taken (uvicorn has logged why)
                return 1
            print(
                f"demo: stopped; {traffic.sent_predictions} predictions and "
                f"{traffic.sent_labels} labels were sent",
                flush=True,
            )
    except KeyboardInterrupt:
        print("demo: interrupted, stopped", flush=True)
    finally:
        restore()
    return 0


def banner(base: str, database: str, drift_after: float, duration: float) -> str:
    until = f"for {duration:g} s" if duration > 0 else "until Ctrl-C"
    return "\n".join(
        [
            f"drift-monitor demo: {base} (database {database}), running {until}",
            f"  model {MODEL!r}: ~40 predictions/s, labels for 90 % of them 3 s later;",
            f"  after {drift_after:g} s the {DRIFTED_FEATURE!r} feature drifts and the accuracy "
            "drops. Evaluated every 5 s.",
            f"  drift:   curl -s {base}/v1/models/{MODEL}/drift",
            f"  alerts:  curl -s {base}/v1/alerts",
            f"  model:   curl -s {base}/v1/models/{MODEL}",
            f"  metrics: {base}/metrics",
            f"  API:     {base}/docs",
            "  Grafana: docker compose -f deploy/docker-compose.yml up --build runs the stack",
            "           with Prometheus and the dashboards on http://localhost:3000 (its own",
            "           monitor on port 8000 and a drifting example model 'credit').",
            "Stop with Ctrl-C.",
        ]
    )


def _connect_host(listen: str) -> str:
    """Where this process reaches a server listening on ``listen``."""
    if listen in ("", "0.0.0.0"):
        return "127.0.0.1"
    if listen == "::":
        return "[::1]"
    return f"[{listen}]" if ":" in listen else listen


def _terminate_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM stop the demo like Ctrl-C (uvicorn re-raises the signal once it has shut
    down; by default that would end the process before the temporary directory is removed).
    Returns the function that restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore
