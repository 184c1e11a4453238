"""Command line: ``monitor serve | check-config | demo | --version``."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"drift-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="config file (default: $MONITOR_CONFIG)")
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    serve.add_argument(
        "--log-level",
        default=os.environ.get("MONITOR_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", help="config file")

    demo = commands.add_parser(
        "demo", help="run the service with a synthetic model, its traffic and a known drift"
    )
    demo.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default: 8000)")
    demo.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds of traffic before the demo stops; 0 (default): until interrupted",
    )
    demo.add_argument(
        "--drift-after",
        type=float,
        default=float(os.environ.get("MONITOR_DEMO_DRIFT_AFTER", "60")),
        help="seconds of traffic before the drift (default: $MONITOR_DEMO_DRIFT_AFTER or 60)",
    )
    demo.add_argument(
        "--database",
        help="database URL (default: SQLite in a temporary directory, removed at the end)",
    )
    demo.add_argument(
        "--log-level",
        default=os.environ.get("MONITOR_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )

    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.path)
    if args.command == "demo":
        return demo_command(args)
    return serve_command(args)


def check_config(path: str) -> int:
    from monitor.config import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{len(exc.issues)} error(s) in {path}", file=sys.stderr)
        return 1
    models = ", ".join(m.name for m in config.models)
    print(
        f"{path}: OK ({len(config.models)} model(s): {models}; {len(config.webhooks)} webhook(s))"
    )
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from monitor.demo import run

    if args.duration < 0 or args.drift_after < 0:
        print("monitor demo: --duration and --drift-after must not be negative", file=sys.stderr)
        return 2
    try:
        return run(
            host=args.host,
            port=args.port,
            duration=args.duration,
            drift_after=args.drift_after,
            database=args.database,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from monitor.api import create_app
    from monitor.config import load_config
    from monitor.service import Service, database_url

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    path = args.config or os.environ.get("MONITOR_CONFIG")
    if not path:
        print("monitor serve: give --config PATH or set MONITOR_CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_config(path)
        service = Service(config)
        service.start()
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    logging.getLogger("monitor").info("database: %s", _redact(database_url(config)))
    app = create_app(service, manage_service=False, stop_service=True)
    _tune_garbage_collector()
    _tune_thread_switching()
    host = args.host or config.server.host
    port = args.port or config.server.port
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=args.log_level,
            access_log=args.access_log,
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        service.stop()
    return 0


def _tune_garbage_collector() -> None:
    """Ingest allocates tens of thousands of short-lived, acyclic objects per request (parsed
    JSON), which refcounting frees. The default thresholds would run a collection every 700
    allocations, each traversing the long-lived objects of the whole process; freezing those
    and collecting less often keeps parsing at the speed of the parser."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _tune_thread_switching() -> None:
    """The writer thread inserts without the GIL (SQLite runs a statement's rows in one call)
    while the decode thread parses the next body; each time the writer needs the GIL back it
    waits until the decoder yields it, after up to the switch interval (5 ms by default), a
    few times per batch. 0.5 ms keeps that wait short of the insert it would otherwise
    serialise."""
    sys.setswitchinterval(0.0005)


def _redact(url: str) -> str:
    """Hide a password in a database URL before it is logged."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
