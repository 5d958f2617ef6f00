# opsbot: `opsbot serve` as a non-root user. Built by the tests from a local Debian base
# (scripts/base-image.sh, as Docker Hub is not reachable there):
#   DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE="$(scripts/base-image.sh)" -t opsbot .
# and from the official image anywhere else:
#   docker build -t opsbot .
ARG BASE=python:3.11-slim
FROM ${BASE}

# /data is the working directory and the only place the bot writes: the bundled app.yaml's
# relative `backups: directory: backups` lands in /data/backups and the embedded SQLite
# database in /data/opsbot.db. Mount a volume there (every replica the same one for backups).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PATH=/opt/opsbot/bin:$PATH \
    OPSBOT_CONFIG=/app/app.yaml DATABASE_URL=sqlite+aiosqlite:////data/opsbot.db PORT=3000

# Metadata first, while the file system is only the base: with the legacy builder on a vfs
# storage driver every instruction copies the whole file system, and these never change.
WORKDIR /data
EXPOSE 3000
# /healthz answers while the process serves; /readyz (database, schema, audit log) is for
# a load balancer or Kubernetes' readiness probe, which may take a replica out of rotation.
# On SIGTERM (Docker's default stop signal) opsbot drains: it stops claiming scheduled work,
# finishes what it acknowledged (up to 20 s) and exits 0. Give it a stop timeout above that
# (docker stop -t 30; compose: stop_grace_period).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD python3 -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT','3000'), timeout=2)"
ENTRYPOINT ["opsbot"]
CMD ["serve"]

# pg_dump and pg_restore for /backup and /restore of databases without a container of their
# own (Debian's client; match it to the server's major version, or give the database a
# container that has its own). The local base already holds it; the official one gets it here.
# Then a virtual environment (Debian's own python3 refuses installs into the system, PEP 668;
# python:3.11-slim is the same either way) with the locked runtime dependencies: one layer
# that a source change does not rebuild.
COPY requirements.lock pyproject.toml /app/
RUN if ! command -v pg_dump >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends postgresql-client \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv /opt/opsbot \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/app/pyproject.toml', 'rb'))['project']['dependencies']))" >/tmp/runtime.txt \
 && pip install -c /app/requirements.lock -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt

# The source (.dockerignore lets in only what is needed), installed without its dependencies,
# which are above; the user that runs it owns /data and nothing else.
COPY . /app/
RUN cd /app && pip install --no-deps -c requirements.lock . \
 && rm -rf /app/build \
 && useradd --create-home --uid 10001 --user-group opsbot \
 && mkdir -p /data/backups && chown -R opsbot:opsbot /data

USER opsbot
