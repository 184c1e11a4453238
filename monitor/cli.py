"""Command line: ``monitor serve | check-config | healthcheck | calibrate | replay | demo |
--version``."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Sequence

from monitor import __version__, runtime
from monitor.errors import ConfigError, MissingExtraError

#: ``monitor --help``'s description: plain text, as a terminal shows it as is.
DESCRIPTION = (
    "drift-monitor: drift and performance monitoring for machine-learning models. "
    "Run 'monitor COMMAND --help' for a command's options."
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command. Help texts are plain text (no reStructuredText)."""
    parser = argparse.ArgumentParser(prog="monitor", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"drift-monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--config", help="config file (default: $MONITOR_CONFIG)")
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: $MONITOR_PORT, else server.port)"
    )
    serve.add_argument(
        "--log-level",
        default=os.environ.get("MONITOR_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path", help="config file")

    health = commands.add_parser(
        "healthcheck",
        help="exit 0 when the server of this machine (monitor serve) answers /healthz, 1 otherwise"
        " (the container image's HEALTHCHECK)",
    )
    health.add_argument("--config", help="config file (default: $MONITOR_CONFIG)")
    health.add_argument(
        "--port", type=int, help="the server's port (default: $MONITOR_PORT, else server.port)"
    )
    health.add_argument(
        "--timeout", type=float, default=4.0, help="seconds to wait for the answer (4)"
    )

    supervise = commands.add_parser(
        "supervise",
        help="run 'monitor serve ARGS' and keep it running: start it again when it exits and"
        " replace it when /healthz has not answered for a minute (the Kubernetes sidecar's"
        " command, so that the container never stops)",
    )
    supervise.add_argument(
        "--check-every", type=float, default=10.0, help="seconds between /healthz checks (10)"
    )
    supervise.add_argument(
        "--hung-after",
        type=float,
        default=60.0,
        help="seconds without a /healthz answer before the server is replaced (60)",
    )
    supervise.add_argument(
        "serve", nargs=argparse.REMAINDER, help="serve and its arguments: serve --host 0.0.0.0"
    )

    calibrate = commands.add_parser(
        "calibrate",
        help="print what each threshold level means: its value at the window size, the false"
        " alarms a week it implies and the records a shift needs to be caught",
        description="For every threshold rule of the model(s), feature and severity: the level"
        " at the window's size and at min_samples (auto levels resolved), the false alarms per"
        " week it implies on data from the reference's distribution, and the records per window"
        " a shift of 0.1, 0.25 and 0.5 reference standard deviations (10%% of a categorical"
        " feature's mass) needs to reach it; then the levels as numbers to paste into the YAML."
        " Reads the reference from the configured file or database.",
    )
    calibrate.add_argument("--config", help="config file (default: $MONITOR_CONFIG)")
    calibrate.add_argument("--model", help="only this model")
    calibrate.add_argument(
        "--n",
        type=int,
        help="records per window (default: window.records, else the latest evaluation's n)",
    )
    calibrate.add_argument(
        "--database",
        help="database URL (default: $MONITOR_DATABASE_URL, else storage.url, as for serve)",
    )
    calibrate.add_argument("--json", action="store_true", help="print the report as JSON")

    again = commands.add_parser(
        "reproduce",
        help="evaluate a stored evaluation again from the stored data and say whether the"
        " result is identical",
        description="Reads stored evaluation ID (its id in GET .../drift/history) and its"
        " lineage, evaluates the model again as of the same time with the same reference"
        " version from the records stored now, and prints a JSON report: identical, or the"
        " parts that differ (config, reference, window, model_versions, status, drifted_share,"
        " features, outputs, performance, labels, versions, segments, fairness) with both"
        " values. Exit 0 when identical, 1 when a part differs or on an error, 2 on a usage"
        " error.",
    )
    again.add_argument("--config", help="config file (default: $MONITOR_CONFIG)")
    again.add_argument("--model", required=True, help="the model evaluated")
    again.add_argument("--evaluation", required=True, type=int, help="the evaluation's id")
    again.add_argument(
        "--database",
        help="database URL (default: $MONITOR_DATABASE_URL, else storage.url, as for serve)",
    )

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

    replay = commands.add_parser(
        "replay",
        help="replay a file of past predictions (and labels) in data time",
        description="Stream a CSV, JSON Lines or Parquet file of past predictions into the "
        "store (default) or a running service (--url), evaluating at the ticks of the model's "
        "schedule in data time, and print the alert timeline.",
    )
    replay.add_argument("file", help="CSV, JSON Lines or Parquet file, sorted by timestamp")
    replay.add_argument("--model", required=True, help="the model the records belong to")
    replay.add_argument("--config", help="config file (default: $MONITOR_CONFIG)")
    replay.add_argument(
        "--format", choices=["csv", "jsonl", "parquet"], help="default: by the file's extension"
    )
    replay.add_argument("--url", help="a running service to send to, e.g. http://127.0.0.1:8000")
    replay.add_argument(
        "--token",
        default=os.environ.get("MONITOR_TOKEN"),
        help="bearer token with the admin scope, for --url (default: $MONITOR_TOKEN)",
    )
    replay.add_argument(
        "--database",
        help="database URL (default: $MONITOR_DATABASE_URL, else storage.url, as for serve)",
    )
    replay.add_argument(
        "--every", help="evaluate every DURATION of data time (default: the model's schedule)"
    )
    replay.add_argument("--batch", type=int, default=1000, help="records per batch (1000)")
    replay.add_argument(
        "--sort-buffer",
        type=int,
        default=10_000,
        help="records held to put a slightly unsorted file in order (10000)",
    )
    replay.add_argument(
        "--send-webhooks",
        action="store_true",
        help="send the alert events to the model's webhook routes (default: record them only)",
    )
    replay.add_argument("--json", action="store_true", help="print the timeline as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_command(args)
    except MissingExtraError as exc:
        print(f"monitor {args.command}: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "monitor":
            raise
        # `pip install drift-monitor` alone is the Python client: the service is an extra
        print(
            f"monitor {args.command}: the service's dependencies are not installed (no module"
            f" named {exc.name!r}): pip install 'drift-monitor[server]'",
            file=sys.stderr,
        )
        return 1


def run_command(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        return check_config(args.path)
    if args.command == "healthcheck":
        return healthcheck_command(args)
    if args.command == "supervise":
        return supervise_command(args)
    if args.command == "demo":
        return demo_command(args)
    if args.command == "calibrate":
        return calibrate_command(args)
    if args.command == "reproduce":
        return reproduce_command(args)
    if args.command == "replay":
        return replay_command(args)
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


def supervise_command(args: argparse.Namespace) -> int:
    """``monitor supervise serve ...``: see ``monitor.supervisor``."""
    import signal
    import subprocess

    from monitor.healthcheck import check
    from monitor.supervisor import Policy, supervise

    if not args.serve or args.serve[0] != "serve":
        print("monitor supervise: give the command to keep running: serve [ARGS]", file=sys.stderr)
        return 2
    served = build_parser().parse_args(args.serve)
    port = _listen_port(served.port, served.config, "monitor supervise")
    if port is None:
        return 1
    stop: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: stop.append(received))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url = f"http://127.0.0.1:{port}/healthz"
    status = supervise(
        lambda: subprocess.Popen([sys.executable, "-m", "monitor", *args.serve]),
        lambda: check(url, timeout_seconds=5.0) is None,
        clock=time.monotonic,
        sleep=time.sleep,
        stopping=lambda: bool(stop),
        policy=Policy(check_every=args.check_every, hung_after=args.hung_after),
    )
    if stop and status == -stop[0]:
        return 0  # the stop passed on, obeyed
    return 128 - status if status < 0 else status  # killed by signal N: 128 + N, as a shell


def _listen_port(flag: int | None, config: str | None, command: str) -> int | None:
    """The port ``monitor serve`` listens on (``healthcheck.listen_port``: ``--port``, else
    ``$MONITOR_PORT``, else the config's ``server.port``); None after saying why not."""
    from monitor.healthcheck import listen_port

    def config_port() -> int:
        from monitor.config import load_config

        path = config or os.environ.get("MONITOR_CONFIG")
        if not path:
            raise ValueError("give --port or --config PATH, or set MONITOR_PORT or MONITOR_CONFIG")
        return load_config(path).server.port

    try:
        return listen_port(flag, config_port, os.environ)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
    return None


def healthcheck_command(args: argparse.Namespace) -> int:
    """``monitor healthcheck``: exit 0 when the server answers ``/healthz`` with 200, else 1
    (Docker's "unhealthy"), saying why on stderr."""
    from monitor.healthcheck import check

    port = _listen_port(args.port, args.config, "monitor healthcheck")
    if port is None:
        return 1
    problem = check(f"http://127.0.0.1:{port}/healthz", timeout_seconds=args.timeout)
    if problem is not None:
        print(f"monitor healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    """``monitor calibrate``: exit 0 with the report, 1 on a config error or a model without a
    reference, 2 on a usage error."""
    import orjson

    from monitor.calibration_report import model_report

    def usage(message: str) -> int:
        print(f"monitor calibrate: {message}", file=sys.stderr)
        return 2

    path = args.config or os.environ.get("MONITOR_CONFIG")
    if not path:
        return usage("give --config PATH or set MONITOR_CONFIG")
    if args.n is not None and args.n < 1:
        return usage("--n must be at least 1")
    from monitor.config import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    models = config.models
    if args.model is not None:
        models = [m for m in models if m.name == args.model]
        if not models:
            return usage(f"no model named {args.model!r} in {path}")
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    try:
        reports, problems = model_report(config, models, n=args.n, database=args.database)
    except ConfigError as exc:  # a reference file that cannot be read
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    for problem in problems:
        print(f"monitor calibrate: {problem}", file=sys.stderr)
    if args.json:
        print(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode())
    else:
        from monitor.calibration_report import text

        print(text(reports))
    return 1 if problems else 0


def reproduce_command(args: argparse.Namespace) -> int:
    """``monitor reproduce``: exit 0 when identical, 1 when a part differs or on an error, 2
    on a usage error."""
    import orjson

    from monitor.config import load_config
    from monitor.jobs.reproduce import EvaluationNotFound, NoLineage
    from monitor.service import Service
    from monitor.storage import create_database_engine, migrate

    def usage(message: str) -> int:
        print(f"monitor reproduce: {message}", file=sys.stderr)
        return 2

    path = args.config or os.environ.get("MONITOR_CONFIG")
    if not path:
        return usage("give --config PATH or set MONITOR_CONFIG")
    try:
        config = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    if config.model(args.model) is None:
        return usage(f"no model named {args.model!r} in {path}")
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    engine = create_database_engine(args.database) if args.database else None
    service = Service(config, engine=engine)
    try:
        migrate(service.database.engine)  # a store older than the version reading it
        result = service.reproduce(args.model, args.evaluation)
    except (EvaluationNotFound, NoLineage, LookupError) as exc:
        print(f"monitor reproduce: {exc}", file=sys.stderr)
        return 1
    finally:
        service.database.engine.dispose()
    print(orjson.dumps(result.to_document(), option=orjson.OPT_INDENT_2).decode())
    return 0 if result.identical else 1


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


def replay_command(args: argparse.Namespace) -> int:
    """``monitor replay``: exit 0 when replayed, 1 on an invalid row, a refusal or an error
    of the target, 2 on a usage error."""
    import orjson

    from monitor.config import ModelConfig, load_config, parse_duration
    from monitor.errors import ReplayInputError, ReplayTargetError
    from monitor.replay import format_of, open_source, replay
    from monitor.replay.progress import ProgressBar
    from monitor.replay.report import document, summary, table
    from monitor.replay.targets import DataClock, HttpTarget, StoreTarget
    from monitor.service import Service
    from monitor.storage import create_database_engine

    def usage(message: str) -> int:
        print(f"monitor replay: {message}", file=sys.stderr)
        return 2

    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    path = args.config or os.environ.get("MONITOR_CONFIG")
    file_format = args.format or format_of(args.file)
    if file_format is None:
        return usage(f"cannot tell the format of {args.file}: give --format csv|jsonl|parquet")
    if args.url is None and not path:
        return usage("give --config PATH or set MONITOR_CONFIG (or --url to send to a service)")
    if args.url is not None and args.database is not None:
        return usage("--database is for replays into the store; a service has its own")
    if args.batch < 1 or args.sort_buffer < 1:
        return usage("--batch and --sort-buffer must be at least 1")
    try:
        every = None if args.every is None else parse_duration(args.every).total_seconds()
    except ValueError as exc:
        return usage(f"--every: {exc}")
    try:
        config = load_config(path) if path else None
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    model: ModelConfig | None = None
    if config is not None:
        model = config.model(args.model)
        if model is None:
            return usage(f"no model named {args.model!r} in {path}")
    service: Service | None = None
    http: HttpTarget | None = None
    target: StoreTarget | HttpTarget
    bar = ProgressBar(sys.stderr) if sys.stderr.isatty() else None
    started = time.monotonic()
    try:
        if args.url is not None:
            target = http = HttpTarget(
                args.url, args.model, token=args.token, webhooks=args.send_webhooks
            )
            if model is None:
                model = http.model_config()
        else:
            assert config is not None and model is not None
            clock = DataClock(time.time())
            engine = create_database_engine(args.database) if args.database else None
            service = Service(config, engine=engine, clock=clock)
            # deliveries are signed with, and retried in, wall-clock time
            service.webhooks.clock = time.time
            service.start(run_jobs=False)
            target = StoreTarget(service, args.model, clock=clock, webhooks=args.send_webhooks)
        with open(args.file, "rb") as stream:
            source = open_source(stream, model, file_format, size=os.fstat(stream.fileno()).st_size)
            timeline, progress = replay(
                source,
                target,
                every=every or model.schedule.total_seconds(),
                batch=args.batch,
                reorder=args.sort_buffer,
                on_progress=bar,
            )
        pending = target.pending_deliveries() if isinstance(target, StoreTarget) else 0
    except ReplayInputError as exc:
        if bar is not None:
            bar.close()
        for row in exc.issues:
            where = f"{args.file}:{row.line}" if row.line else args.file
            print(
                f"{where}: {row.field}: {row.reason}" if row.field else f"{where}: {row.reason}",
                file=sys.stderr,
            )
        return 1
    except (ReplayTargetError, ConfigError, OSError) as exc:
        if bar is not None:
            bar.close()
        print(f"monitor replay: {exc}", file=sys.stderr)
        return 1
    finally:
        if service is not None:
            service.stop()
        if http is not None:
            http.close()
    if bar is not None:
        bar.close()
    if args.json:
        print(
            orjson.dumps(
                document(timeline, progress, args.model), option=orjson.OPT_INDENT_2
            ).decode()
        )
    else:
        print(table(timeline))
    print(summary(progress, timeline, time.monotonic() - started), file=sys.stderr)
    if pending:
        print(
            f"{pending} webhook deliveries still pending: the next serve on this database "
            "sends them",
            file=sys.stderr,
        )
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """``monitor serve``: exit 1 on a config error (before serving) or on a start-up error
    other than an unavailable database, which is retried in the background while the
    server answers (``monitor.startup``)."""
    # First: a thread that allocates before this keeps an arena of its own (runtime's doc),
    # and importing NumPy starts its BLAS threads.
    runtime.tune_memory_allocator()
    import uvicorn

    from monitor.api import create_app
    from monitor.config import load_config
    from monitor.healthcheck import listen_port
    from monitor.service import Service, database_url
    from monitor.startup import StorageConnector
    from monitor.storage.unavailable import unavailable_reason

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
        service.read_reference_files()  # a bad one is a config error now, database or not
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    try:
        port = listen_port(args.port, lambda: config.server.port, os.environ)
    except ValueError as exc:
        print(f"monitor serve: {exc}", file=sys.stderr)
        return 2
    url = database_url(config)
    logging.getLogger("monitor").info("database: %s", _redact(url))
    server: uvicorn.Server | None = None

    def failed(_error: BaseException) -> None:
        if server is not None:  # set before the app's startup, which starts the connector
            server.should_exit = True

    connector = StorageConnector(
        service.start,
        database=_redact(url),
        unavailable=functools.partial(unavailable_reason, url=url),
        on_failure=failed,
    )
    app = create_app(service, manage_service=False, stop_service=True, connector=connector)
    runtime.tune_garbage_collector()
    runtime.tune_thread_switching()
    release = runtime.release_memory_periodically()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host or config.server.host,
            port=port,
            log_level=args.log_level,
            access_log=args.access_log,
            proxy_headers=False,
            timeout_graceful_shutdown=10,
            # Connections and requests at once, slow ones included, before uvicorn answers
            # 503 (its own text/plain); each request body is bounded by server.body_timeout.
            limit_concurrency=config.server.max_connections,
            timeout_keep_alive=5,  # an idle kept-alive connection is closed after 5 s
            h11_max_incomplete_event_size=16 * 1024,  # request line and headers (h11 only)
        )
    )
    try:
        server.run()
    finally:
        release.set()
        service.stop()
    return 1 if connector.failure is not None else 0


def _redact(url: str) -> str:
    """Hide a password in a database URL before it is logged."""
    from monitor.storage.database import redact

    return redact(url)
