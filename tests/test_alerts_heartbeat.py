"""Who watches the watcher: alerts.heartbeat on a ManualClock, two replicas on one database.

Alertmanager's always-firing Watchdog alert, posted to POST /alerts/<name> as Alertmanager sends it,
opens nothing; when it stops arriving for longer than the interval the ops channel hears once that the
alerting pipeline is down, and once that it is back when it arrives again. The other direction:
/metrics exposes when the scheduler last passed, for a rule that pages when opsbot stops.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web
from conftest import free_port, wait_until
from test_schedules import Channel

from bot.config.loader import ConfigError, parse_config
from bot.incident import service as incidents
from bot.schedule import ManualClock
from bot.transport.server import build_web_app

UTC = timezone.utc
START = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
TOKEN = "watchdog-token-9e8d"

CONFIG = """
version: 1
services:
  api:
    checks: [{kind: tcp, host: 127.0.0.1, port: 9}]
slack:
  ops_channel: C0OPS
alerts:
  heartbeat: {integration: am, interval: 5m}
  integrations:
    am:
      format: alertmanager
      token_env: TEST_HEARTBEAT_TOKEN
      routes:
        - {}
"""


def payload(*alertnames: str) -> dict:
    alerts = [{"status": "firing", "labels": {"alertname": name, "severity": "none" if name == "Watchdog" else "critical"},
               "annotations": {"summary": f"{name} fires"}, "startsAt": "2026-12-07T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"{abs(hash(name)) % 10**16:016d}"} for name in alertnames]
    return {"version": "4", "groupKey": "{}:{alertname=\"" + alertnames[0] + "\"}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "opsbot", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "alerts": alerts}


async def posted(url: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/alerts/am", data=json.dumps(body), headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def serve(bot) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_web_app(bot), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def passes(*bots) -> None:
    """Each replica's scheduler runs what is due now (its periodic check included), twice: a check's post is a job of its own."""
    for _ in range(2):
        for bot in bots:
            await bot.scheduler.ensure_periodic()
            await bot.scheduler.run_due()


def said(*channels: Channel) -> list[str]:
    """What the ops channel heard about the alerting pipeline (an alert's own incident is headlined there too)."""
    return [str(reply.text) for channel in channels for to, reply in channel.posts if to == "C0OPS" and "alerting pipeline" in str(reply.text)]


async def test_the_watchdog_stopping_and_coming_back_is_said_once_each_across_two_replicas(make_bot, sqlite_url, monkeypatch):
    monkeypatch.setenv("TEST_HEARTBEAT_TOKEN", TOKEN)
    from bot.migrate import upgrade_async

    await upgrade_async(sqlite_url)
    clock = ManualClock(START)
    one, two = [await make_bot(CONFIG, sqlite_url, clock=clock) for _ in range(2)]
    first, second = Channel(), Channel()
    one.messengers["slack"], two.messengers["slack"] = first, second
    runner, url = await serve(one)
    try:
        assert (await posted(url, payload("Watchdog")))["incidents"] == ["heartbeat"]
        assert await incidents.listing(one.db, include_resolved=True) == []  # the pulse opens nothing
        await passes(one, two)
        clock.advance(timedelta(minutes=4))
        await passes(one, two)
        assert said(first, second) == []

        clock.advance(timedelta(minutes=2))  # 6 minutes without a Watchdog: overdue by the 5 m interval
        await passes(one, two)
        clock.advance(timedelta(minutes=10))
        await passes(two, one)
        assert said(first, second) == [
            "The alerting pipeline looks down: no Watchdog alert from am since 2026-12-07 03:00 UTC (expected every 5m). "
            "Alerts may not reach opsbot: check Prometheus and Alertmanager. (alerting pipeline am.1)"]

        # Back, in a group with a real alert: the Watchdog is the pulse, the other alert opens its incident.
        answer = await posted(url, payload("Watchdog", "ApiDown"))
        assert answer["incidents"] == ["heartbeat", "INC-1"]
        [incident] = await incidents.listing(one.db, include_resolved=True)
        assert incident.title == "ApiDown fires"
        await posted(url, payload("Watchdog"))
        await passes(one, two)
        assert said(first, second)[1:] == ["The alerting pipeline is back: Watchdog from am arrives again (silent since 2026-12-07 03:00 UTC). (alerting pipeline am.2)"]
        clock.advance(timedelta(minutes=3))
        await posted(url, payload("Watchdog"))
        clock.advance(timedelta(minutes=3))
        await passes(one, two)
        assert len(said(first, second)) == 2  # beating: nothing more to say
    finally:
        await runner.cleanup()


async def test_metrics_expose_when_the_scheduler_last_passed(make_bot):
    clock = ManualClock(START)
    bot = await make_bot(CONFIG, clock=clock)
    runner, url = await serve(bot)
    bot.scheduler.start()
    try:
        async def exposed() -> bool:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/metrics") as response:
                    text = await response.text()
            values = [float(line.split()[1]) for line in text.splitlines() if line.startswith("opsbot_scheduler_last_tick_timestamp_seconds ")]
            return values == [START.timestamp()]

        await wait_until(lambda: clock.sleepers >= 1, timeout=10)
        assert await exposed()
    finally:
        await bot.scheduler.stop()
        await runner.cleanup()


def test_the_heartbeat_names_an_integration_and_a_channel():
    with pytest.raises(ConfigError, match="alerts.heartbeat.integration: the heartbeat names unknown integration 'nope'"):
        parse_config(CONFIG.replace("integration: am, interval", "integration: nope, interval"))
    with pytest.raises(ConfigError, match="the heartbeat has no channel, and slack.ops_channel is not set"):
        parse_config(CONFIG.replace("slack:\n  ops_channel: C0OPS\n", ""))
