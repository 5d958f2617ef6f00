FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY interactions ./interactions
COPY migrations ./migrations
# pg_dump and pg_restore for /backup and /restore of databases without a container: (Debian's client;
# match it to the server's major version, or give the database a container that has its own).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir -c requirements.lock . \
 && useradd --create-home --uid 10001 opsbot \
 && mkdir -p /data && chown opsbot /data
COPY app.yaml ./app.yaml

USER opsbot
ENV DATABASE_URL=sqlite+aiosqlite:////data/opsbot.db PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT','3000'), timeout=2)"
ENTRYPOINT ["opsbot"]
CMD ["serve"]
