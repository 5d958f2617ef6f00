"""Metric thresholds (app.yaml metrics:, bot.metrics_check) against a real Prometheus server.

The module starts its own Prometheus (the Debian package's binary; scripts/test-env.sh installs
it) on a free port, scraping every second a small exporter whose values the tests set and the
bot's own /metrics. Readings are asserted through /health on the console, as the person on
call sees them. No mocks and no skips.
"""
from __future__ import annotations

import asyncio
import itertools
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from conftest import free_port, settings_for, wait_until

from bot.app import Bot
from bot.config.loader import ConfigError, parse_config
from bot.metrics_check.grade import range_step
from bot.migrate import upgrade_async
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.transport.server import build_web_app

EXPORTER_START = {
    "test_latency_seconds": 0.5,
    "test_free_gigabytes": 50.0,
    "test_cpu_percent": 50.0,
    'test_requests_total{code="200"}': 100.0,
    'test_requests_total{code="500"}': 3.0,
}


@dataclass
class Rig:
    url: str  # Prometheus
    exporter_port: int
    values: dict[str, float] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None

    async def query(self, query: str, at: float | None = None) -> list:
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at:.3f}"
        async with self.http.get(f"{self.url}/api/v1/query", params=params) as response:
            return (await response.json())["data"]["result"]

    async def set(self, name: str, value: float) -> None:
        """Set an exporter value and wait until Prometheus has scraped it."""
        self.values[name] = value

        async def seen():
            result = await self.query(name)
            return len(result) == 1 and float(result[0]["value"][1]) == value

        await wait_until(seen, timeout=20, interval=0.2)


@pytest_asyncio.fixture(scope="module")
async def rig(tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run scripts/test-env.sh (make test does), or apt-get install prometheus.")
    tmp = tmp_path_factory.mktemp("prometheus")
    values = dict(EXPORTER_START)

    async def exposition(_: web.Request) -> web.Response:
        lines = [f"{name} {value!r}" for name, value in values.items()]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")

    exporter = web.Application()
    exporter.router.add_get("/metrics", exposition)
    exporter_runner = web.AppRunner(exporter, access_log=None)
    await exporter_runner.setup()
    exporter_port = free_port()
    await web.TCPSite(exporter_runner, "127.0.0.1", exporter_port).start()

    # The bot's own /metrics, served as `opsbot run` serves it.
    database_url = f"sqlite+aiosqlite:///{tmp / 'bot.db'}"
    await upgrade_async(database_url)
    bot = Bot(settings_for(database_url), parse_config("version: 1\nservices: {}\n"))
    bot_runner = web.AppRunner(build_web_app(bot), access_log=None)
    await bot_runner.setup()
    bot_port = free_port()
    await web.TCPSite(bot_runner, "127.0.0.1", bot_port).start()

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": "exporter", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]},
            {"job_name": "opsbot", "static_configs": [{"targets": [f"127.0.0.1:{bot_port}"]}]},
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log_path = tmp / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    rig = Rig(f"http://127.0.0.1:{port}", exporter_port, values, http)
    try:

        async def targets_up():
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited with {process.returncode}: {_tail(log_path)}")
            try:
                async with http.get(f"{rig.url}/api/v1/targets") as response:
                    targets = (await response.json())["data"]["activeTargets"]
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False
            return len(targets) == 2 and all(target["health"] == "up" for target in targets)

        try:
            await wait_until(targets_up, timeout=60, interval=0.25)
        except AssertionError as exc:
            raise AssertionError(f"Prometheus targets did not come up ({exc}): {_tail(log_path)}") from None
        yield rig
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        await http.close()
        await bot_runner.cleanup()
        await bot.close()
        await exporter_runner.cleanup()


def _tail(path: Path) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-5:])


def app_yaml(rig: Rig, metrics: dict, *, url: str | None = None, timeout: str = "5s") -> str:
    exporter = {"checks": [{"kind": "tcp", "host": "127.0.0.1", "port": rig.exporter_port}]}
    document = {
        "version": 1,
        "services": {"api": exporter, "worker": exporter},
        "prometheus": {"url": url or rig.url, "timeout": timeout},
        "metrics": metrics,
    }
    return yaml.safe_dump(document, sort_keys=False)


_users = itertools.count()


async def health(bot, text: str = ""):
    # A user per run: /health caps each user at 6 runs a minute.
    return await bot.handle(Request(f"UMETRICS{next(_users)}", "C0METRICS", "health", text, "console"))


def rows(reply) -> dict[str, str]:
    """/health's text, one line per service: name -> the line."""
    return {line.split()[1]: line for line in reply.text.splitlines()[1:]}


def status_of(reply, name: str) -> str:
    return rows(reply)[name].split()[0]


# --------------------------------------------------------------------------- thresholds


LATENCY = {"query": "test_latency_seconds", "warn": 1, "critical": 2, "unit": "s", "service": "api"}


async def test_a_threshold_shows_warning_then_critical_as_the_value_rises(rig, make_bot):
    bot = await make_bot(app_yaml(rig, {"p95_latency": LATENCY}))

    await rig.set("test_latency_seconds", 0.5)
    reply = await health(bot)
    assert reply.outcome is Outcome.ok
    assert status_of(reply, "api") == "OK"
    assert "p95_latency: p95 latency 0.5 s (warning at 1 s, critical at 2 s)" in rows(reply)["api"]

    await rig.set("test_latency_seconds", 1.4)
    reply = await health(bot)
    assert reply.text.splitlines()[0] == "Health: WARNING (1 warning, 1 ok)"
    assert status_of(reply, "api") == "WARNING"
    assert "p95_latency: p95 latency 1.4 s (warning at 1 s, critical at 2 s)" in rows(reply)["api"]
    assert status_of(reply, "worker") == "OK"

    await rig.set("test_latency_seconds", 2.5)
    reply = await health(bot)
    assert reply.outcome is Outcome.critical
    assert status_of(reply, "api") == "CRITICAL"
    assert "p95 latency 2.5 s (warning at 1 s, critical at 2 s)" in rows(reply)["api"]

    # Named services get their own metrics only.
    assert status_of(await health(bot, "api"), "api") == "CRITICAL"
    only_worker = await health(bot, "worker")
    assert list(rows(only_worker)) == ["worker"] and "p95" not in only_worker.text
    await rig.set("test_latency_seconds", 0.5)


async def test_lower_is_worse_and_metrics_without_a_service_show_as_their_own_group(rig, make_bot):
    free = {"query": "test_free_gigabytes", "warn": 20, "critical": 10, "lower_is_worse": True, "unit": "GB"}
    bot = await make_bot(app_yaml(rig, {"free_disk": free}))

    reply = await health(bot)
    assert status_of(reply, "metrics") == "OK"
    assert "free_disk: free disk 50 GB (warning at or below 20 GB, critical at or below 10 GB)" in rows(reply)["metrics"]

    await rig.set("test_free_gigabytes", 15)
    reply = await health(bot)
    assert reply.text.splitlines()[0] == "Health: WARNING (1 warning, 2 ok)"
    assert status_of(reply, "metrics") == "WARNING"
    assert "free disk 15 GB" in rows(reply)["metrics"]

    await rig.set("test_free_gigabytes", 5)
    reply = await health(bot)
    assert status_of(reply, "metrics") == "CRITICAL"
    assert reply.outcome is Outcome.critical
    # Typed service names: their metrics only, no group; all of them typed is everything.
    assert "metrics" not in rows(await health(bot, "api"))
    assert status_of(await health(bot, "api worker"), "metrics") == "CRITICAL"
    await rig.set("test_free_gigabytes", 50)


async def test_for_counts_only_when_the_condition_held_throughout(rig, make_bot):
    cpu = {"query": "test_cpu_percent", "warn": 90, "critical": 95, "for": "5s", "unit": "%"}
    bot = await make_bot(app_yaml(rig, {"cpu": cpu}))

    await rig.set("test_cpu_percent", 50)

    async def low_for_a_while():  # 50 at the start of the `for` window
        result = await rig.query("test_cpu_percent", at=time.time() - 5)
        return result and float(result[0]["value"][1]) == 50

    await wait_until(low_for_a_while, timeout=20, interval=0.2)

    await rig.set("test_cpu_percent", 92)
    reply = await health(bot)
    line = rows(reply)["metrics"]
    assert status_of(reply, "metrics") == "OK", line
    assert "cpu 92 % (warning at 90 %, critical at 95 %); above warning for less than 5s (needs 5s)" in line

    async def graded(status: str):
        reply = await health(bot)
        return rows(reply)["metrics"] if status_of(reply, "metrics") == status else None

    line = await wait_until(lambda: graded("WARNING"), timeout=30, interval=0.5)
    assert line.endswith("cpu: cpu 92 % (warning at 90 %, critical at 95 %)")

    # Critical now, but only warning held for 5 s.
    await rig.set("test_cpu_percent", 97)
    reply = await health(bot)
    assert status_of(reply, "metrics") == "WARNING"
    assert "cpu 97 % (warning at 90 %, critical at 95 %); above critical for less than 5s (needs 5s)" in rows(reply)["metrics"]

    line = await wait_until(lambda: graded("CRITICAL"), timeout=30, interval=0.5)
    assert line.endswith("cpu: cpu 97 % (warning at 90 %, critical at 95 %)")
    await rig.set("test_cpu_percent", 50)


def test_the_for_range_step_is_a_twentieth_but_at_least_15s_and_at_most_11000_points():
    assert range_step(5) == 15
    assert range_step(300) == 15
    assert range_step(3600) == 180
    assert 3660 * 86400 / range_step(3660 * 86400) < 11000


# --------------------------------------------------------------------------- one sentence when there is no number


def test_a_promql_syntax_error_is_refused_when_app_yaml_loads(rig):
    with pytest.raises(ConfigError) as caught:
        parse_config(app_yaml(rig, {"rate": {"query": "sum(rate(http_requests_total[5m])", "warn": 1}}))
    assert "PromQL syntax error: '(' is not closed" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(app_yaml(rig, {"rate": {"query": 'up{job="api"]', "warn": 1}}))
    assert "PromQL syntax error: unexpected ']' at character 13" in str(caught.value)


async def test_a_query_the_server_refuses_is_one_sentence_in_health(rig, make_bot):
    bot = await make_bot(app_yaml(rig, {"typo": {"query": "foo bar", "warn": 1}}))
    reply = await health(bot)
    line = rows(reply)["metrics"]
    assert status_of(reply, "metrics") == "WARNING"
    detail = line.split("typo: ", 1)[1]
    assert detail == 'Prometheus rejected the query: 1:5: parse error: unexpected identifier "bar"'


async def test_prometheus_down_is_one_sentence(rig, make_bot):
    port = free_port()
    bot = await make_bot(app_yaml(rig, {"p95_latency": LATENCY}, url=f"http://127.0.0.1:{port}"))
    reply = await health(bot)
    assert status_of(reply, "api") == "WARNING"
    assert rows(reply)["api"].endswith(f"p95_latency: Prometheus at 127.0.0.1:{port} is unreachable (connection refused)")


async def test_a_prometheus_that_does_not_answer_is_cut_off_at_prometheus_timeout(rig, make_bot):
    gate = asyncio.Event()

    async def silent(_: web.Request) -> web.Response:
        await gate.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/api/v1/query", silent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        bot = await make_bot(app_yaml(rig, {"p95_latency": LATENCY}, url=f"http://127.0.0.1:{port}", timeout="1s"))
        reply = await health(bot)
        assert rows(reply)["api"].endswith(f"p95_latency: Prometheus at 127.0.0.1:{port} did not answer within 1 s")
    finally:
        gate.set()
        await runner.cleanup()


async def test_a_query_with_several_series_or_none_is_one_sentence(rig, make_bot):
    metrics = {
        "errors": {"query": "test_requests_total", "warn": 1000},
        "errors-sum": {"query": "sum(test_requests_total)", "warn": 1000},
        "absent": {"query": "test_never_exported", "warn": 1},
    }
    bot = await make_bot(app_yaml(rig, metrics))
    reply = await health(bot)
    line = rows(reply)["metrics"]
    assert status_of(reply, "metrics") == "WARNING"
    assert (
        'errors: the query returned 2 series ({code="200"}, {code="500"}) where one number is needed: '
        "aggregate them, e.g. with sum() or max()"
    ) in line
    assert "absent: the query returned no series, so there is no number to grade (is the metric scraped under that name?)" in line
    results = {r.check: r for r in (await bot.checks.run(bot.config, list(bot.config.services)))}
    assert results["errors-sum"].status == "ok"
    assert results["errors-sum"].detail == "errors sum 103 (warning at 1,000)"
    assert {r.kind for r in results.values() if r.service == "metrics"} == {"metric"}


async def test_the_bots_own_metrics_are_scraped_and_readable(rig, make_bot):
    metrics = {"checks_counted": {"query": 'sum(opsbot_check_latency_seconds_count{kind="tcp"})', "warn": 1e12}}
    bot = await make_bot(app_yaml(rig, metrics))
    await health(bot)  # two tcp checks counted in the bot's own /metrics

    async def counted():
        result = await rig.query('sum(opsbot_check_latency_seconds_count{kind="tcp", job="opsbot"})')
        return result and float(result[0]["value"][1]) >= 2

    await wait_until(counted, timeout=20, interval=0.2)
    reply = await health(bot)
    assert status_of(reply, "metrics") == "OK"
    assert "checks_counted: checks counted " in rows(reply)["metrics"]
    # A metric reading is itself counted, under kind "metric".
    await wait_until(lambda: rig.query('opsbot_check_latency_seconds_count{kind="metric", job="opsbot"}'), timeout=20, interval=0.2)


def test_for_reads_the_range_like_prometheus_alerting():
    from bot.config.schedule_models import Metric
    from bot.metrics_check.grade import for_note, held_for

    metric = Metric.model_validate({"query": "cpu", "warn": 90, "for": "5m", "unit": "%"})
    now, step = 10_000.0, range_step(300)
    start = now - 300
    points = [(start + i * step, 50.0 if start + i * step < now - 120 else 92.0) for i in range(21)]
    held = held_for(points, start, now, step, 92.0, 90, False)
    assert held == 120
    assert for_note("warning", metric, held, step) == "above warning for only 2m (needs 5m)"
    always = [(t, 92.0) for t, _ in points]
    assert held_for(always, start, now, step, 92.0, 90, False) is None
    gap = [point for point in always if point[0] != now - 60]  # the series was absent for a scrape
    assert held_for(gap, start, now, step, 92.0, 90, False) == 45
