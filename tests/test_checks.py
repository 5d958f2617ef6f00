"""Behavioural tests of the check kinds, the engine and /health, against real components.

PostgreSQL, Redis and the Docker test fleet come from scripts/test-env.sh (see conftest.py);
HTTP, TLS and a private Redis are started here when a test needs a server that behaves
in a particular way (slow, silent, expiring certificate, maxmemory set). No mocks, no skips,
and no assertion on wall-clock durations.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import ssl
import subprocess
import uuid

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from conftest import FLEET_CONFIG, PG_ADMIN_DSN, REDIS_URL, fleet, free_port, wait_until

from bot.check.engine import CheckEngine
from bot.check.result import CheckResult
from bot.check.service import recent_runs
from bot.config.loader import ConfigError, parse_config
from bot.docker_engine import DockerGateway
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.redaction import MASK, redact, refresh_secrets

FLEET = fleet()
WEB = FLEET["OPSBOT_FLEET_WEB"]
WEB_HEALTH = FLEET["OPSBOT_FLEET_WEB_HEALTH_URL"]
WEB_READY = FLEET["OPSBOT_FLEET_WEB_READY_URL"]
WEB500 = FLEET["OPSBOT_FLEET_WEB500"]
WEB500_URL = FLEET["OPSBOT_FLEET_WEB500_URL"]
EXITED = FLEET["OPSBOT_FLEET_EXITED"]
RESTARTING = FLEET["OPSBOT_FLEET_RESTARTING"]
OOM_CONTAINER = FLEET["OPSBOT_FLEET_OOM_CONTAINER"]
PG_DSN = FLEET.get("OPSBOT_TEST_POSTGRES_DSN", PG_ADMIN_DSN)
REDIS = FLEET.get("OPSBOT_TEST_REDIS_URL", REDIS_URL)

UNSET_VAR = "OPSBOT_TEST_CHECKS_NEVER_SET"


# --------------------------------------------------------------------------- helpers


@pytest_asyncio.fixture
async def engine():
    engine = CheckEngine(DockerGateway())
    yield engine
    await engine.close()


def make_config(services: dict):
    return parse_config(yaml.safe_dump({"version": 1, "services": services}, sort_keys=False))


async def run_services(engine: CheckEngine, services: dict, names: list[str] | None = None) -> list[CheckResult]:
    config = make_config(services)
    results = await engine.run(config, names or list(config.services))
    for result in results:
        assert result.status in ("ok", "warning", "critical")
        assert result.latency_ms >= 0
        assert result.detail, f"{result.check} has no detail"
    return results


async def run_checks(engine: CheckEngine, checks: list[dict], container: str | None = None) -> list[CheckResult]:
    service: dict = {"checks": checks}
    if container:
        service["container"] = container
    results = await run_services(engine, {"svc": service})
    assert all(r.service == "svc" for r in results)
    return results


def by_label(results: list[CheckResult]) -> dict[str, CheckResult]:
    labels = [r.check for r in results]
    assert len(labels) == len(set(labels)), f"duplicate labels: {labels}"
    return {r.check: r for r in results}


async def single(engine: CheckEngine, check: dict, container: str | None = None) -> CheckResult:
    results = await run_checks(engine, [check], container)
    assert len(results) == 1, results
    assert results[0].kind == check["kind"]
    return results[0]


@contextlib.asynccontextmanager
async def http_server(routes: dict):
    """A local aiohttp server; routes maps path -> handler (any method)."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def silent_server():
    """Accepts connections, reads whatever arrives and never answers."""
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


# --------------------------------------------------------------------------- http


async def test_http_ok_with_expect_json_and_nested_checks_one_by_one(engine):
    results = await run_checks(
        engine,
        [{"kind": "http", "url": WEB_HEALTH, "expect_json": {"status": "healthy"}, "nested_checks": "checks"}],
    )
    checks = by_label(results)
    assert list(checks) == ["http", "http database", "http cache"]
    assert checks["http"].status == "ok"
    assert checks["http"].detail == "HTTP 200"
    assert checks["http database"].status == "ok"
    assert checks["http database"].detail == "healthy, 2ms"
    assert checks["http cache"].status == "ok"
    assert checks["http cache"].detail == "healthy"
    assert all(r.kind == "http" and r.service == "svc" for r in results)


async def test_http_named_check_labels_nested_results_with_its_name(engine):
    results = await run_checks(engine, [{"kind": "http", "name": "api", "url": WEB_HEALTH, "nested_checks": "checks"}])
    assert [r.check for r in results] == ["api", "api database", "api cache"]
    assert {r.status for r in results} == {"ok"}


async def test_http_ready_one_nested_unhealthy(engine):
    results = await run_checks(
        engine,
        [
            {"kind": "http", "name": "ready", "url": WEB_READY, "nested_checks": "checks"},
            {
                "kind": "http",
                "name": "ready-strict",
                "url": WEB_READY,
                "nested_checks": "checks",
                "expect_json": {"status": "healthy"},
            },
        ],
    )
    checks = by_label(results)
    # The endpoint answers 200: without expectations on the body the request itself is fine ...
    assert checks["ready"].status == "ok"
    assert checks["ready"].detail == "HTTP 200"
    # ... and the failing nested check is reported on its own, with its message.
    assert checks["ready migrations"].status == "critical"
    assert checks["ready migrations"].detail == "unhealthy, migration pending"
    assert checks["ready database"].status == "ok"
    assert checks["ready cache"].status == "ok"
    # Expecting status: healthy makes the main result critical too.
    assert checks["ready-strict"].status == "critical"
    assert checks["ready-strict"].detail == "status is 'unhealthy', expected 'healthy'"
    assert checks["ready-strict migrations"].status == "critical"
    assert checks["ready-strict database"].status == "ok"


async def test_http_500_is_critical(engine):
    result = await single(engine, {"kind": "http", "url": WEB500_URL})
    assert result.status == "critical"
    assert result.detail == "HTTP 500, expected 200"


async def test_http_expect_status_accepts_listed_codes(engine):
    result = await single(engine, {"kind": "http", "url": WEB500_URL, "expect_status": [200, 500]})
    assert result.status == "ok"
    assert result.detail == "HTTP 500"
    result = await single(engine, {"kind": "http", "url": WEB_HEALTH, "expect_status": 204})
    assert result.status == "critical"
    assert result.detail == "HTTP 200, expected 204"


async def test_http_expect_json_mismatch(engine):
    result = await single(
        engine,
        {"kind": "http", "url": WEB_HEALTH, "expect_json": {"status": "degraded", "checks.database.status": "healthy"}},
    )
    assert result.status == "critical"
    assert result.detail == "status is 'healthy', expected 'degraded'"

    result = await single(engine, {"kind": "http", "url": WEB_HEALTH, "expect_json": {"checks.queue.status": "healthy"}})
    assert result.status == "critical"
    assert result.detail == "checks.queue.status is None, expected 'healthy'"


async def test_http_dotted_expect_json_ok(engine):
    result = await single(
        engine,
        {"kind": "http", "url": WEB_HEALTH, "expect_json": {"status": "healthy", "checks.database.status": "healthy"}},
    )
    assert result.status == "ok"
    assert result.detail == "HTTP 200"


async def test_http_not_json(engine):
    async def html(request):
        return web.Response(text="<html>fine</html>", content_type="text/html")

    async with http_server({"/": html}) as base:
        results = await run_checks(
            engine,
            [
                {"kind": "http", "name": "expect", "url": base + "/", "expect_json": {"status": "healthy"}},
                {"kind": "http", "name": "nested", "url": base + "/", "nested_checks": "checks"},
                {"kind": "http", "name": "plain", "url": base + "/"},
            ],
        )
    checks = by_label(results)
    assert checks["expect"].status == "critical"
    assert checks["expect"].detail == "the response is not JSON"
    assert checks["nested"].status == "critical"
    assert checks["nested"].detail == "the response is not JSON"
    assert checks["plain"].status == "ok"
    assert checks["plain"].detail == "HTTP 200"


async def test_http_nested_field_missing_is_reported(engine):
    result = await run_checks(engine, [{"kind": "http", "url": WEB_HEALTH, "nested_checks": "components"}])
    checks = by_label(result)
    assert checks["http"].status == "ok"
    assert checks["http components"].status == "critical"
    assert checks["http components"].detail == "no 'components' object in the response"


async def test_http_nested_degraded_is_warning(engine):
    async def ready(request):
        return web.json_response(
            {"status": "degraded", "checks": {"db": "ok", "search": {"status": "degraded", "latency": "900ms"}}}
        )

    async with http_server({"/ready": ready}) as base:
        results = await run_checks(engine, [{"kind": "http", "url": base + "/ready", "nested_checks": "checks"}])
    checks = by_label(results)
    assert checks["http"].status == "ok"
    assert checks["http db"].status == "ok"
    assert checks["http db"].detail == "ok"
    assert checks["http search"].status == "warning"
    assert checks["http search"].detail == "degraded, 900ms"


async def test_http_connection_refused_on_free_port(engine):
    port = free_port()
    result = await single(engine, {"kind": "http", "url": f"http://127.0.0.1:{port}/health"})
    assert result.status == "critical"
    assert result.detail.startswith(f"cannot connect to 127.0.0.1:{port} (")


async def test_http_latency_thresholds(engine):
    async def slow(request):
        await asyncio.sleep(0.3)
        return web.json_response({"status": "healthy"})

    async with http_server({"/slow": slow}) as base:
        results = await run_checks(
            engine,
            [
                {"kind": "http", "name": "warn", "url": base + "/slow", "latency": {"warn": "100ms", "critical": "2s"}},
                {"kind": "http", "name": "crit", "url": base + "/slow", "latency": {"warn": "50ms", "critical": "100ms"}},
                {"kind": "http", "name": "relaxed", "url": base + "/slow", "latency": {"warn": "5s", "critical": "10s"}},
            ],
        )
    checks = by_label(results)
    assert checks["warn"].status == "warning"
    assert re.fullmatch(r"slow: \d+ ms \(limit 100 ms\)", checks["warn"].detail), checks["warn"].detail
    assert checks["crit"].status == "critical"
    assert re.fullmatch(r"slow: \d+ ms \(limit 100 ms\)", checks["crit"].detail), checks["crit"].detail
    assert checks["relaxed"].status == "ok"
    assert checks["relaxed"].detail == "HTTP 200"


async def test_http_server_that_never_answers_times_out(engine):
    async with silent_server() as (port, connections):
        result = await single(engine, {"kind": "http", "url": f"http://127.0.0.1:{port}/health", "timeout": "0.5s"})
        assert connections, "the check never reached the server"
    assert result.status == "critical"
    assert result.detail == "no answer within 0.5 s"


async def test_http_unset_variable_in_url_is_critical_not_a_crash(engine, monkeypatch):
    monkeypatch.delenv(UNSET_VAR, raising=False)
    results = await run_checks(
        engine,
        [
            {"kind": "http", "name": "templated", "url": FLEET["OPSBOT_FLEET_WEB_URL"] + "/${" + UNSET_VAR + "}"},
            {"kind": "http", "name": "header", "url": WEB_HEALTH, "headers": {"Authorization": "Bearer ${" + UNSET_VAR + "}"}},
            {"kind": "http", "name": "fine", "url": WEB_HEALTH},
        ],
    )
    checks = by_label(results)
    for label in ("templated", "header"):
        assert checks[label].status == "critical"
        assert UNSET_VAR in checks[label].detail
        assert checks[label].detail == f"environment variable {UNSET_VAR} is not set; set it in the bot's environment"
    assert checks["fine"].status == "ok"


async def test_http_variable_in_url_is_expanded_when_set(engine, monkeypatch):
    monkeypatch.setenv(UNSET_VAR, "health")
    result = await single(engine, {"kind": "http", "url": FLEET["OPSBOT_FLEET_WEB_URL"] + "/${" + UNSET_VAR + "}"})
    assert result.status == "ok"
    assert result.detail == "HTTP 200"


async def test_http_body_of_a_failing_answer_is_not_echoed(engine):
    async def leaky(request):
        return web.Response(status=500, text="db error: password=hunter2 url=postgresql://app:hunter2@db/app")

    async with http_server({"/health": leaky}) as base:
        result = await single(engine, {"kind": "http", "url": base + "/health"})
    assert result.status == "critical"
    assert result.detail == "HTTP 500, expected 200"
    assert "hunter2" not in result.detail


async def test_http_literal_password_in_url_is_rejected_at_parse():
    with pytest.raises(ConfigError, match="password is written in the file"):
        make_config({"svc": {"checks": [{"kind": "http", "url": "http://admin:hunter2@127.0.0.1:18080/health"}]}})


# --------------------------------------------------------------------------- tcp


async def test_tcp_open_and_closed_ports(engine):
    closed = free_port()
    results = await run_checks(
        engine,
        [
            {"kind": "tcp", "name": "pg", "host": "127.0.0.1", "port": 5432},
            {"kind": "tcp", "name": "nothing", "host": "127.0.0.1", "port": closed},
        ],
    )
    checks = by_label(results)
    assert checks["pg"].status == "ok"
    assert checks["pg"].detail == "127.0.0.1:5432 accepts connections"
    assert checks["nothing"].status == "critical"
    assert checks["nothing"].detail.startswith(f"cannot connect to 127.0.0.1:{closed} (")


# --------------------------------------------------------------------------- postgres

PG_DETAIL = re.compile(r"SELECT 1 in [\d.]+ ms, connections (\d+)/(\d+) \((\d+)%\)")


async def test_postgres_ok_reports_connection_percentage(engine):
    result = await single(engine, {"kind": "postgres", "dsn": PG_DSN})
    assert result.status == "ok", result.detail
    match = PG_DETAIL.fullmatch(result.detail)
    assert match, result.detail
    in_use, max_connections, percent = (int(g) for g in match.groups())
    conn = await asyncpg.connect(PG_DSN)
    try:
        assert max_connections == int(await conn.fetchval("SHOW max_connections"))
    finally:
        await conn.close()
    assert 1 <= in_use <= max_connections
    assert percent == round(100 * in_use / max_connections)


async def test_postgres_connection_thresholds(engine):
    results = await run_checks(
        engine,
        [
            {"kind": "postgres", "name": "warn", "dsn": PG_DSN, "connections": {"warn": 0.001, "critical": 100}},
            {"kind": "postgres", "name": "crit", "dsn": PG_DSN, "connections": {"warn": 0.001, "critical": 0.002}},
        ],
    )
    checks = by_label(results)
    assert checks["warn"].status == "warning"
    assert PG_DETAIL.fullmatch(checks["warn"].detail)
    assert checks["crit"].status == "critical"
    assert PG_DETAIL.fullmatch(checks["crit"].detail)


async def test_postgres_unreachable_and_unknown_database(engine):
    port = free_port()
    results = await run_checks(
        engine,
        [
            {"kind": "postgres", "name": "down", "dsn": f"postgresql://postgres@127.0.0.1:{port}/test"},
            {"kind": "postgres", "name": "nodb", "dsn": "postgresql://postgres@127.0.0.1:5432/opsbot_no_such_db"},
        ],
    )
    checks = by_label(results)
    assert checks["down"].status == "critical"
    assert checks["down"].detail.startswith("cannot connect: ")
    assert str(port) in checks["down"].detail
    assert checks["nodb"].status == "critical"
    assert checks["nodb"].detail == 'cannot connect: database "opsbot_no_such_db" does not exist'


async def test_postgres_dsn_from_environment(engine, monkeypatch):
    monkeypatch.setenv("OPSBOT_TEST_CHECKS_PG_DSN", PG_DSN.replace("postgresql://", "postgresql+asyncpg://", 1))
    monkeypatch.setenv("OPSBOT_TEST_CHECKS_PG_PASSWORD", "not-checked-under-trust")
    results = await run_checks(
        engine,
        [
            {"kind": "postgres", "name": "whole", "dsn": "${OPSBOT_TEST_CHECKS_PG_DSN}"},
            {
                "kind": "postgres",
                "name": "password",
                "dsn": "postgresql://postgres:${OPSBOT_TEST_CHECKS_PG_PASSWORD}@127.0.0.1:5432/test",
            },
        ],
    )
    checks = by_label(results)
    assert checks["whole"].status == "ok", checks["whole"].detail
    assert PG_DETAIL.fullmatch(checks["whole"].detail)
    assert checks["password"].status == "ok", checks["password"].detail
    assert "not-checked-under-trust" not in checks["password"].detail


async def test_postgres_dsn_variable_unset_is_critical(engine, monkeypatch):
    monkeypatch.delenv(UNSET_VAR, raising=False)
    result = await single(engine, {"kind": "postgres", "dsn": "${" + UNSET_VAR + "}"})
    assert result.status == "critical"
    assert result.detail == f"environment variable {UNSET_VAR} is not set; set it in the bot's environment"


async def test_postgres_password_from_env_is_redacted_from_failures(engine, monkeypatch):
    port = free_port()
    monkeypatch.setenv("OPSBOT_TEST_CHECKS_PG_DSN", f"postgresql://postgres:Hunter2Secret@127.0.0.1:{port}/test")
    result = await single(engine, {"kind": "postgres", "dsn": "${OPSBOT_TEST_CHECKS_PG_DSN}"})
    assert result.status == "critical"
    assert result.detail.startswith("cannot connect: ")
    assert "Hunter2Secret" not in result.detail


def test_postgres_literal_password_is_rejected_at_parse():
    with pytest.raises(ConfigError) as caught:
        make_config({"database": {"checks": [{"kind": "postgres", "dsn": "postgresql://postgres:hunter2@127.0.0.1:5432/test"}]}})
    message = str(caught.value)
    assert "services.database.checks[0].dsn" in message
    assert "the password is written in the file; use ${VAR}" in message
    assert "hunter2" not in message


# --------------------------------------------------------------------------- redis

REDIS_MEMORY = re.compile(r"memory [\d.]+ MB/[\d.]+ MB \((\d+)%\)")


@pytest_asyncio.fixture
async def private_redis():
    """A throwaway redis-server with maxmemory set, so the shared server's config is never touched."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed; it is needed for the maxmemory tests"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--maxmemory", "64mb", "--protected-mode", "no",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = aioredis.from_url(url)

    async def answers():
        if proc.returncode is not None:
            raise AssertionError(f"redis-server exited with {proc.returncode}")
        try:
            return await client.ping()
        except (aioredis.ConnectionError, OSError):
            return False

    try:
        await wait_until(answers, timeout=15)
        yield url, client
    finally:
        await client.aclose()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_redis_ok_with_memory_and_hit_rate(engine):
    key = f"opsbot-test-checks:{uuid.uuid4().hex}"
    client = aioredis.from_url(REDIS)
    try:
        await client.set(key, "1", ex=60)
        await client.get(key)  # a hit and a miss, so the server has a hit rate to report
        await client.get(key + ":missing")
        result = await single(engine, {"kind": "redis", "url": REDIS})
    finally:
        await client.delete(key)
        await client.aclose()
    assert result.status == "ok", result.detail
    assert re.match(r"PING [\d.]+ ms, memory [\d.]+ MB", result.detail), result.detail
    assert re.search(r"hit rate \d+\.\d%$", result.detail), result.detail


async def test_redis_unreachable(engine):
    port = free_port()
    result = await single(engine, {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0"})
    assert result.status == "critical"
    assert result.detail.startswith("cannot reach Redis: ")
    assert str(port) in result.detail


async def test_redis_empty_error_reply_is_reported_not_crashed(engine):
    """A server answering with an empty error line used to crash the check (IndexError)."""

    async def handle(reader, writer):
        try:
            while await reader.read(65536):
                writer.write(b"-\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await single(engine, {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0"})
    finally:
        server.close()
        await server.wait_closed()
    assert result.status == "critical"
    assert result.detail == "cannot reach Redis: ResponseError"


async def test_redis_maxmemory_thresholds_on_a_private_server(engine, private_redis):
    url, client = private_redis
    results = await run_checks(
        engine,
        [
            {"kind": "redis", "name": "default", "url": url},
            {"kind": "redis", "name": "warn", "url": url, "memory": {"warn": 0.01, "critical": 100}},
            {"kind": "redis", "name": "crit", "url": url, "memory": {"warn": 0.01, "critical": 0.02}},
        ],
    )
    checks = by_label(results)
    assert checks["default"].status == "ok"
    assert checks["warn"].status == "warning"
    assert checks["crit"].status == "critical"
    for result in results:
        match = REDIS_MEMORY.search(result.detail)
        assert match, result.detail
        assert "/64.0 MB" in result.detail
        assert int(match.group(1)) < 80

    # maxmemory 0 means "no limit": the memory thresholds are skipped and the detail says so.
    await client.config_set("maxmemory", 0)
    result = await single(engine, {"kind": "redis", "url": url, "memory": {"warn": 0.01, "critical": 0.02}})
    assert result.status == "ok"
    assert re.search(r"memory [\d.]+ MB \(no maxmemory\)", result.detail), result.detail


async def test_redis_hit_rate_threshold_on_a_private_server(engine, private_redis):
    url, client = private_redis
    await client.set("k", "v")
    await client.get("k")
    for i in range(3):
        await client.get(f"missing-{i}")
    results = await run_checks(
        engine,
        [
            {"kind": "redis", "name": "strict", "url": url, "hit_rate_warn_below": 50},
            {"kind": "redis", "name": "lenient", "url": url, "hit_rate_warn_below": 10},
        ],
    )
    checks = by_label(results)
    assert checks["strict"].status == "warning"
    assert checks["strict"].detail.endswith("hit rate 25.0%")
    assert checks["lenient"].status == "ok"
    assert checks["lenient"].detail.endswith("hit rate 25.0%")


# --------------------------------------------------------------------------- container


async def test_container_running_and_healthy(engine):
    result = await single(engine, {"kind": "container"}, container=WEB)
    assert result.status == "ok", result.detail
    assert re.fullmatch(r"running(, up \d+[smhd])?, restarts 0, health healthy", result.detail), result.detail


async def test_container_min_uptime_warns_when_recently_started(engine):
    result = await single(engine, {"kind": "container", "min_uptime": "3650d"}, container=WEB)
    assert result.status == "warning"
    assert result.detail.endswith("health healthy, recently restarted")


async def test_container_exited(engine):
    result = await single(engine, {"kind": "container", "container": EXITED}, container=WEB)
    assert result.status == "critical"
    assert result.detail == "exited with exit code 3"


async def test_container_restart_loop(engine):
    info = await engine.docker.inspect(RESTARTING)
    assert info is not None and int(info["RestartCount"]) > 0, "the restarting fleet container has not restarted yet"
    result = await single(engine, {"kind": "container"}, container=RESTARTING)
    assert result.status in ("critical", "warning"), result.detail
    assert "restart" in result.detail
    if result.detail.startswith("restarting"):
        assert result.status == "critical"
        assert re.fullmatch(r"restarting in a loop \(restart count \d+, last exit 1\)", result.detail)
    else:  # caught in its short running window: graded by restart count
        assert re.fullmatch(r"running(, up \d+[smhd])?, restarts [1-9]\d*", result.detail), result.detail


async def test_container_oom_killed(engine):
    result = await single(engine, {"kind": "container"}, container=OOM_CONTAINER)
    info = await engine.docker.inspect(OOM_CONTAINER)
    state = info["State"]
    assert result.status == "critical"
    # Decided from the container's own state: the engine can miss the OOM event (exit 137, flag false).
    if state["OOMKilled"]:
        assert result.detail == (
            f"OOM-killed (exit {state['ExitCode']}); it needs a force-recreate, not a plain restart"
        )
    elif state["ExitCode"] == 137:
        assert result.detail == (
            "killed by SIGKILL (exit 137), probably out of memory: its limit is 16 MiB; "
            "it needs a force-recreate, not a plain restart"
        )
    else:
        # The kernel here does not enforce the memory limit: the container simply finished.
        # It must then be reported as what it is (stopped, with its exit code), not as OOM.
        assert state["OOMKilled"] is False
        assert result.detail == f"{state['Status']} with exit code {state['ExitCode']}"
        assert "OOM" not in result.detail


async def test_container_missing(engine):
    result = await single(engine, {"kind": "container", "container": "opsbot-test-no-such-container"}, container=WEB)
    assert result.status == "critical"
    assert result.detail == "container opsbot-test-no-such-container does not exist"


def test_container_check_needs_a_container():
    with pytest.raises(ConfigError, match=r"needs a container"):
        make_config({"svc": {"checks": [{"kind": "container"}]}})


# --------------------------------------------------------------------------- exec


async def test_exec_exit_codes_and_output(engine):
    results = await run_checks(
        engine,
        [
            {"kind": "exec", "name": "true", "command": ["true"]},
            {"kind": "exec", "name": "false", "command": ["false"]},
            {"kind": "exec", "name": "boom", "command": ["sh", "-c", "echo boom; exit 4"]},
            {"kind": "exec", "name": "echo", "command": ["echo", "hello", "world"]},
        ],
        container=WEB,
    )
    checks = by_label(results)
    assert checks["true"].status == "ok"
    assert checks["true"].detail == "exit 0"
    assert checks["false"].status == "critical"
    assert checks["false"].detail == "exit 1"
    assert checks["boom"].status == "critical"
    assert checks["boom"].detail == "exit 4: boom"
    assert checks["echo"].status == "ok"
    assert checks["echo"].detail == "exit 0: hello world"


async def test_exec_passes_shell_metacharacters_literally(engine):
    hostile = "$(id); rm -rf / `whoami` && echo pwned > /tmp/x | cat"
    result = await single(engine, {"kind": "exec", "command": ["echo", hostile]}, container=WEB)
    assert result.status == "ok"
    assert result.detail == f"exit 0: {hostile}"
    assert "uid=" not in result.detail
    # and nothing was written by a shell redirection
    proof = await single(engine, {"kind": "exec", "command": ["ls", "/tmp/x"]}, container=WEB)
    assert proof.status == "critical"
    assert proof.detail == "exit 1: ls: /tmp/x: No such file or directory"


async def test_exec_unknown_program_is_critical(engine):
    result = await single(engine, {"kind": "exec", "command": ["opsbot-no-such-program", "--ping"]}, container=WEB)
    assert result.status == "critical"
    assert re.fullmatch(r"exit 12[67]: .*", result.detail), result.detail
    assert "opsbot-no-such-program" in result.detail


async def test_exec_output_is_redacted(engine):
    result = await single(engine, {"kind": "exec", "command": ["echo", "DB_PASSWORD=hunter2"]}, container=WEB)
    assert result.status == "ok"
    assert result.detail == f"exit 0: DB_PASSWORD={MASK}"


async def test_exec_in_stopped_and_missing_containers(engine):
    results = await run_checks(
        engine,
        [
            {"kind": "exec", "name": "stopped", "container": EXITED, "command": ["true"]},
            {"kind": "exec", "name": "missing", "container": "opsbot-test-no-such-container", "command": ["true"]},
            {"kind": "exec", "name": "fine", "command": ["true"]},
        ],
        container=WEB,
    )
    checks = by_label(results)
    assert checks["stopped"].status == "critical"
    assert checks["stopped"].detail.startswith(f"exec in {EXITED} failed (")
    assert "not running" in checks["stopped"].detail
    assert checks["missing"].status == "critical"
    assert checks["missing"].detail == "container opsbot-test-no-such-container does not exist"
    assert checks["fine"].status == "ok"


# --------------------------------------------------------------------------- disk

DISK_DETAIL = re.compile(r"/ \d+% used, [\d.]+ GB free")


async def test_disk_thresholds_and_missing_path(engine):
    results = await run_checks(
        engine,
        [
            {"kind": "disk", "name": "high", "path": "/", "usage": {"warn": 100, "critical": 100}},
            {"kind": "disk", "name": "warn", "path": "/", "usage": {"warn": 0.001, "critical": 100}},
            {"kind": "disk", "name": "crit", "path": "/", "usage": {"warn": 0.001, "critical": 0.002}},
            {"kind": "disk", "name": "missing", "path": "/opsbot/no/such/path"},
        ],
    )
    checks = by_label(results)
    assert checks["high"].status == "ok"
    assert DISK_DETAIL.fullmatch(checks["high"].detail), checks["high"].detail
    assert checks["warn"].status == "warning"
    assert DISK_DETAIL.fullmatch(checks["warn"].detail)
    assert checks["crit"].status == "critical"
    assert DISK_DETAIL.fullmatch(checks["crit"].detail)
    assert checks["missing"].status == "critical"
    assert checks["missing"].detail == "cannot read /opsbot/no/such/path: No such file or directory"


# --------------------------------------------------------------------------- memory

MEMORY_DETAIL = re.compile(r"\d+% used, [\d.]+ of [\d.]+ GB available")


async def test_memory_thresholds(engine):
    results = await run_checks(
        engine,
        [
            {"kind": "memory", "name": "high", "usage": {"warn": 100, "critical": 100}},
            {"kind": "memory", "name": "warn", "usage": {"warn": 0.001, "critical": 100}},
            {"kind": "memory", "name": "crit", "usage": {"warn": 0.001, "critical": 0.002}},
        ],
    )
    checks = by_label(results)
    assert checks["high"].status == "ok"
    assert checks["warn"].status == "warning"
    assert checks["crit"].status == "critical"
    for result in results:
        assert MEMORY_DETAIL.fullmatch(result.detail), result.detail


# --------------------------------------------------------------------------- tls

OPENSSL_CNF = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = opsbot test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """A private CA and server certificates for 127.0.0.1/localhost valid 365, 10 and 2 days."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to generate test certificates"
    d = tmp_path_factory.mktemp("tls")
    (d / "openssl.cnf").write_text(OPENSSL_CNF)

    def run(*args):
        done = subprocess.run([openssl, *args], cwd=d, capture_output=True, text=True)
        assert done.returncode == 0, f"openssl {' '.join(args)} failed: {done.stderr}"

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
    run("req", "-x509", "-config", "openssl.cnf", "-extensions", "v3_ca", *ec, "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650")
    run("req", "-new", "-config", "openssl.cnf", *ec, "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    certs = {}
    for days in (365, 10, 2):
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", str(1000 + days),
            "-out", f"server-{days}.pem", "-days", str(days), "-extfile", "openssl.cnf", "-extensions", "server")
        certs[days] = str(d / f"server-{days}.pem")
    return {"ca": str(d / "ca.pem"), "key": str(d / "server.key"), "certs": certs}


@contextlib.asynccontextmanager
async def tls_server(cert: str, key: str):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handle(reader, writer):
        try:
            await reader.read(65536)
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_tls_days_to_expiry(engine, tls_certs):
    ca, key, certs = tls_certs["ca"], tls_certs["key"], tls_certs["certs"]
    async with tls_server(certs[365], key) as p365, tls_server(certs[10], key) as p10, tls_server(certs[2], key) as p2:
        results = await run_checks(
            engine,
            [
                {"kind": "tls", "name": "year", "host": "127.0.0.1", "port": p365, "ca_file": ca},
                {"kind": "tls", "name": "by-name", "host": "127.0.0.1", "port": p365, "ca_file": ca, "server_name": "localhost"},
                {"kind": "tls", "name": "ten", "host": "127.0.0.1", "port": p10, "ca_file": ca},
                {"kind": "tls", "name": "two", "host": "127.0.0.1", "port": p2, "ca_file": ca, "days": {"warn": 14, "critical": 3}},
            ],
        )
    checks = by_label(results)
    assert checks["year"].status == "ok"
    assert re.fullmatch(r"certificate for 127\.0\.0\.1 expires in 36[45] days \(.+ GMT\)", checks["year"].detail), checks["year"].detail
    assert checks["by-name"].status == "ok"
    assert checks["by-name"].detail.startswith("certificate for localhost expires in 36")
    assert checks["ten"].status == "warning"
    assert re.fullmatch(r"certificate for 127\.0\.0\.1 expires in (9|10) days \(.+\)", checks["ten"].detail), checks["ten"].detail
    assert checks["two"].status == "critical"
    assert re.fullmatch(r"certificate for 127\.0\.0\.1 expires in [12] days \(.+\)", checks["two"].detail), checks["two"].detail


async def test_tls_untrusted_and_wrong_name_are_rejected(engine, tls_certs):
    async with tls_server(tls_certs["certs"][365], tls_certs["key"]) as port:
        results = await run_checks(
            engine,
            [
                {"kind": "tls", "name": "untrusted", "host": "127.0.0.1", "port": port},
                {"kind": "tls", "name": "wrong-name", "host": "127.0.0.1", "port": port,
                 "ca_file": tls_certs["ca"], "server_name": "wrong.example"},
            ],
        )
    checks = by_label(results)
    assert checks["untrusted"].status == "critical"
    assert checks["untrusted"].detail.startswith("certificate rejected: ")
    assert "issuer" in checks["untrusted"].detail
    assert checks["wrong-name"].status == "critical"
    assert checks["wrong-name"].detail.startswith("certificate rejected: ")
    assert "wrong.example" in checks["wrong-name"].detail


async def test_tls_against_plain_tcp_and_closed_port(engine):
    closed = free_port()
    results = await run_checks(
        engine,
        [
            {"kind": "tls", "name": "plain", "host": "127.0.0.1", "port": int(FLEET["OPSBOT_FLEET_WEB_PORT"])},
            {"kind": "tls", "name": "closed", "host": "127.0.0.1", "port": closed},
        ],
    )
    checks = by_label(results)
    assert checks["plain"].status == "critical"
    assert re.fullmatch(rf"TLS handshake with 127\.0\.0\.1:{FLEET['OPSBOT_FLEET_WEB_PORT']} failed \(\w+\)", checks["plain"].detail), checks["plain"].detail
    assert checks["closed"].status == "critical"
    assert checks["closed"].detail.startswith(f"TLS handshake with 127.0.0.1:{closed} failed (")


# --------------------------------------------------------------------------- engine behaviour


async def test_checks_run_concurrently(engine):
    state = {"in_flight": 0, "max_in_flight": 0, "served": 0}

    async def slow(request):
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            await asyncio.sleep(0.5)
        finally:
            state["in_flight"] -= 1
        state["served"] += 1
        return web.json_response({"status": "healthy"})

    async with http_server({"/slow": slow}) as base:
        checks = [
            {"kind": "http", "name": f"slow-{i:02d}", "url": f"{base}/slow", "expect_json": {"status": "healthy"},
             "timeout": "20s", "latency": {"warn": "15s", "critical": "20s"}}
            for i in range(20)
        ]
        results = await run_checks(engine, checks)
    assert [r.check for r in results] == [f"slow-{i:02d}" for i in range(20)]
    assert {r.status for r in results} == {"ok"}, [(r.check, r.detail) for r in results if r.status != "ok"]
    assert state["served"] == 20
    assert state["max_in_flight"] >= 10, state


async def test_results_keep_service_and_check_order(engine):
    results = await run_services(
        engine,
        {
            "zeta": {"checks": [{"kind": "disk", "path": "/"}, {"kind": "memory"}]},
            "alpha": {"checks": [{"kind": "tcp", "host": "127.0.0.1", "port": 5432}]},
            "mid": {"checks": []},
        },
    )
    assert [(r.service, r.kind) for r in results] == [("zeta", "disk"), ("zeta", "memory"), ("alpha", "tcp")]


async def test_engine_runs_only_the_requested_services(engine):
    config = make_config(
        {
            "one": {"checks": [{"kind": "memory"}]},
            "two": {"checks": [{"kind": "tcp", "host": "127.0.0.1", "port": 5432}]},
        }
    )
    results = await engine.run(config, ["two"])
    assert [(r.service, r.kind, r.status) for r in results] == [("two", "tcp", "ok")]


async def test_a_crashing_check_is_contained_and_the_others_still_report(engine):
    async with silent_server() as (port, _):
        results = await run_checks(
            engine,
            [
                # os.statvfs raises ValueError for an embedded NUL: not an OSError the kind expects.
                {"kind": "disk", "name": "nul", "path": "/tmp/\x00bad"},
                {"kind": "tls", "name": "no-ca-file", "host": "127.0.0.1", "port": 5432, "ca_file": "/opsbot/no/such/ca.pem"},
                {"kind": "exec", "name": "ghost", "container": "opsbot-test-no-such-container", "command": ["true"]},
                {"kind": "http", "name": "silent", "url": f"http://127.0.0.1:{port}/", "timeout": "0.5s"},
                {"kind": "memory", "name": "memory", "usage": {"warn": 100, "critical": 100}},
                {"kind": "tcp", "name": "tcp", "host": "127.0.0.1", "port": 5432},
                {"kind": "http", "name": "web", "url": WEB_HEALTH},
            ],
        )
    checks = by_label(results)
    assert list(checks) == ["nul", "no-ca-file", "ghost", "silent", "memory", "tcp", "web"]
    assert checks["nul"].status == "critical"
    assert checks["nul"].detail == "check failed: ValueError: embedded null byte"
    assert checks["no-ca-file"].status == "critical"
    assert checks["no-ca-file"].detail.startswith("check failed: FileNotFoundError")
    assert checks["ghost"].status == "critical"
    assert checks["ghost"].detail == "container opsbot-test-no-such-container does not exist"
    assert checks["silent"].status == "critical"
    assert checks["silent"].detail == "no answer within 0.5 s"
    assert checks["memory"].status == "ok"
    assert checks["tcp"].status == "ok"
    assert checks["web"].status == "ok"


# --------------------------------------------------------------------------- /health end to end

HEALTH_CONFIG = f"""
version: 1
services:
  web:
    container: {WEB}
    checks:
      - kind: http
        url: {WEB_HEALTH}
        expect_json: {{status: healthy}}
        nested_checks: checks
        latency: {{warn: 10s, critical: 20s}}
        timeout: 20s
      - kind: container
  database:
    checks:
      - kind: postgres
        dsn: {PG_DSN}
        latency: {{warn: 10s, critical: 20s}}
        timeout: 20s
  disks:
    checks:
      - kind: disk
        path: /
        usage: {{warn: 0.001, critical: 100}}
  broken:
    container: {WEB500}
    checks:
      - kind: http
        url: {WEB500_URL}
  stopped:
    container: {EXITED}
    checks:
      - kind: container
"""


def _rows(text: str) -> list[tuple[str, str]]:
    return [(line.split()[0], line.split()[1]) for line in text.splitlines()[1:]]


async def test_health_end_to_end_worst_first_and_saved(make_bot, pg_database_url):
    bot = await make_bot(HEALTH_CONFIG, database_url=pg_database_url)
    reply = await bot.handle(Request("UOPS1", "C0HEALTH", "health", "", "console"))
    assert reply.outcome is Outcome.critical
    lines = reply.text.splitlines()
    assert lines[0] == "Health: CRITICAL (2 critical, 1 warning, 2 ok)"
    assert _rows(reply.text) == [
        ("CRITICAL", "broken"),
        ("CRITICAL", "stopped"),
        ("WARNING", "disks"),
        ("OK", "web"),
        ("OK", "database"),
    ]
    text = {row[1]: line for row, line in zip(_rows(reply.text), lines[1:])}
    assert "http: HTTP 500, expected 200" in text["broken"]
    assert "container: exited with exit code 3" in text["stopped"]
    assert re.search(r"disk: / \d+% used", text["disks"])
    assert "http: HTTP 200" in text["web"]
    assert "postgres: SELECT 1 in" in text["database"]

    runs = await recent_runs(bot.db, limit=1)
    assert runs, "the run was not saved in check_runs"
    run = runs[0]
    assert run.status == "critical"
    assert run.trigger == "command"
    assert run.requested_by == "UOPS1"
    assert run.channel == "C0HEALTH"
    saved = {(r["service"], r["check"]): r["status"] for r in run.results}
    assert saved == {
        ("web", "http"): "ok",
        ("web", "http database"): "ok",
        ("web", "http cache"): "ok",
        ("web", "container"): "ok",
        ("database", "postgres"): "ok",
        ("disks", "disk"): "warning",
        ("broken", "http"): "critical",
        ("stopped", "container"): "critical",
    }
    assert all(set(r) == {"service", "check", "kind", "status", "latency_ms", "detail"} for r in run.results)
    footer = reply.blocks[-1].text
    assert footer.startswith(f"{len(run.results)} checks in ")
    assert footer.endswith(f"run #{run.id}")


async def test_health_named_services_and_unknown_service(make_bot, pg_database_url):
    bot = await make_bot(HEALTH_CONFIG, database_url=pg_database_url)
    reply = await bot.handle(Request("UOPS1", "C0HEALTH", "health", "web database", "console"))
    assert reply.outcome is Outcome.ok
    assert reply.text.splitlines()[0] == "Health: OK (2 ok)"
    assert _rows(reply.text) == [("OK", "web"), ("OK", "database")]
    before = (await recent_runs(bot.db, limit=1))[0]
    assert before.status == "ok"
    assert {r["service"] for r in before.results} == {"web", "database"}

    reply = await bot.handle(Request("UOPS1", "C0HEALTH", "health", "webb", "console"))
    assert reply.outcome is Outcome.usage_error
    assert reply.text.startswith("Unknown service 'webb'. Did you mean 'web'?")
    assert "Known: web, database, disks, broken, stopped." in reply.text
    after = (await recent_runs(bot.db, limit=1))[0]
    assert after.id == before.id, "an unknown service must not start a run"


async def test_health_with_the_shared_fleet_config(make_bot):
    bot = await make_bot(FLEET_CONFIG)
    reply = await bot.handle(Request("UOPS2", "C1", "health", "", "console"))
    assert reply.outcome is Outcome.critical
    # Only 'broken' is down; the others' default latency limits make them ok (or, on a very loaded host, warning).
    assert reply.text.splitlines()[0].startswith("Health: CRITICAL (1 critical, ")
    assert _rows(reply.text)[0] == ("CRITICAL", "broken")
    runs = await recent_runs(bot.db)
    assert len(runs) == 1 and runs[0].status == "critical"


# --------------------------------------------------------------------------- redaction


def test_redact_dsn_passwords():
    assert redact("postgresql://app:s3cr3t@db:5432/app") == f"postgresql://app:{MASK}@db:5432/app"
    assert redact("redis://:hunter2@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    assert redact("web: config DATABASE_URL=postgres://app:s3cr3t@db/app") == f"web: config DATABASE_URL=postgres://app:{MASK}@db/app"
    assert redact("postgresql://app@db:5432/app") == "postgresql://app@db:5432/app"
    assert redact("http://127.0.0.1:18080/health") == "http://127.0.0.1:18080/health"


def test_redact_key_value_pairs():
    assert redact("DB_PASSWORD=hunter2 next") == f"DB_PASSWORD={MASK} next"
    assert redact("password=hunter2") == f"password={MASK}"
    assert redact("API_KEY: 'a b c', other=1") == f"API_KEY: {MASK}, other=1"
    assert redact('client_secret="x y"') == f"client_secret={MASK}"
    assert redact("GITHUB_TOKEN=ghp_abc;rest next") == f"GITHUB_TOKEN={MASK} next"  # a value may hold ';' (issue 14, item 16)
    assert redact("connections 5/100 (5%)") == "connections 5/100 (5%)"


def test_redact_tokens():
    assert redact("Authorization: Bearer eyJhbGciOi.payload.sig") == f"Authorization: Bearer {MASK}"
    assert redact("using xoxb-1234-5678-AbCdEf now") == f"using {MASK} now"
    assert redact("user token xoxp-1-2-3") == f"user token {MASK}"
    assert redact("socket xapp-1-A0-123-abc") == f"socket {MASK}"


def test_redact_secret_environment_values(monkeypatch):
    monkeypatch.setenv("OPSBOT_TEST_CHECKS_SECRET", "sup3r-s3cret-value")
    monkeypatch.setenv("OPSBOT_TEST_CHECKS_PLAIN", "not-a-secret-value")
    refresh_secrets()  # the environment is read once, and again when settings load
    assert redact("got sup3r-s3cret-value back") == f"got {MASK} back"
    assert redact("got not-a-secret-value back") == "got not-a-secret-value back"
    assert redact("extra abcdef", extra_secrets=["abcdef"]) == f"extra {MASK}"
