# drift-monitor production image.
#
#   docker build -t drift-monitor .
#   docker run -p 8000:8000 -v "$PWD/examples:/etc/drift-monitor:ro" \
#       -v drift-monitor-data:/var/lib/drift-monitor drift-monitor
#
# The config is read from $MONITOR_CONFIG (/etc/drift-monitor/monitor.yaml): mount the directory
# holding it, so that reference files given relative to the config are found too. SQLite lives in
# /var/lib/drift-monitor unless MONITOR_DATABASE_URL points elsewhere (PostgreSQL). The server
# listens on the config's server.port (8000 by default), or on $MONITOR_PORT when it is set.
# tests/test_dockerfile.py lints this file with hadolint and runs its steps outside a container.

# ---- builder: a virtualenv with the service and its dependencies (all from wheels) ----
# The dependencies come first, at the versions pinned in constraints.txt, from pyproject.toml
# alone, so that a change to the sources or the README reuses their layer; then the package
# itself, without dependencies.
FROM python:3.11.9-slim-bookworm AS builder

# the venv's bin/ first on PATH: `pip` below is the venv's (and hadolint lints a bare `pip`)
ENV VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt ./
# the requirements of the distribution and of its server and postgresql extras
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = p['optional-dependencies']; \
print(*p['dependencies'], *extras['server'], *extras['postgresql'], sep=chr(10))" \
        > requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir --no-deps . && pip check

# ---- final: the venv on a slim Python, no build tools, non-root ----
FROM python:3.11.9-slim-bookworm

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_CONFIG=/etc/drift-monitor/monitor.yaml \
    MONITOR_DATABASE_URL=sqlite:////var/lib/drift-monitor/monitor.db

RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/drift-monitor --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/drift-monitor /etc/drift-monitor \
    && chown 10001:10001 /var/lib/drift-monitor

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/drift-monitor
USER 10001:10001

# server.port's default; a config or $MONITOR_PORT may choose another
EXPOSE 8000

# `monitor healthcheck` asks /healthz (answered while the process is up, database or not) at
# the port `monitor serve` listens on, found the same way: $MONITOR_PORT, else server.port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["monitor", "healthcheck"]

ENTRYPOINT ["monitor"]
CMD ["serve", "--host", "0.0.0.0"]
