"""Alerts in at load: 1,000 Alertmanager notifications in 10 s over 50 groups, against two replicas on PostgreSQL.

Real: a fresh PostgreSQL database (created here, dropped at the end), two `Bot` replicas, each in a
process of its own serving POST /alerts/<name> through `build_web_app` as `opsbot serve` does, each
with its own scheduler paging through `SlackWorkspaceMessenger` to the Web API double of
tests/slack_double.py in a child process (bench/page_rig.py). The sender posts Alertmanager's webhook
payload (version 4), alternating between the replicas as a load balancer would: each group's first
notifications land on both replicas at once, which is the race the de-duplication key settles.

Reported: incidents opened (must be 50) and duplicates (incidents sharing a key: must be 0), the
webhook latency p50/p99, and the time from the first notification to the first page Slack received.
The baseline, in the same run: the same requests with a wrong token, answered 401 by the same edge
before any body is read or anything stored; the ratio is the cost of storing the alert.

    .venv/bin/python bench/alert_intake.py [--notifications 1000] [--groups 50] [--seconds 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_rig import BOT_TOKEN, DoubleProcess, cpu_seconds, fresh_database, load_average, ms, percentile, serve_double  # noqa: E402

from bot.app import Bot  # noqa: E402
from bot.config.loader import parse_config  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.transport.server import build_web_app  # noqa: E402
from bot.transport.slack import web_client  # noqa: E402
from bot.transport.slack_channels import SlackWorkspaceMessenger  # noqa: E402

TOKEN = "bench-alert-token-4f1e"
CONFIG = """
version: 1
services:
  api: {}
slack:
  incidents_channel: C0INCIDENTS
severities:
  P1:
    respond_within: 15m
    escalation: [{users: [UONC1], repeat_every: 10m}]
  P2:
    respond_within: 1h
    escalation: [{users: [UONC1]}]
  P3:
    respond_within: 4h
    escalation: [{users: [UONC1]}]
alerts:
  integrations:
    am:
      format: alertmanager
      token_env: BENCH_ALERT_TOKEN
      routes:
        - {match: {service: api}, service: api, severities: {critical: P1}}
        - {}
"""


def notification(group: int) -> bytes:
    """A group's notification (each repeat is the same): Alertmanager's payload, three alerts that differ by instance."""
    alerts = [{"status": "firing", "labels": {"alertname": f"Bench{group}", "service": "api", "severity": "critical", "instance": f"api-{i}:80"},
               "annotations": {"summary": f"bench group {group} fires"}, "startsAt": "2026-12-07T00:00:00Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"{group:08d}{i:08d}"}
              for i in range(3)]
    return json.dumps({"version": "4", "groupKey": f'{{}}:{{alertname="Bench{group}"}}', "truncatedAlerts": 0, "status": "firing",
                       "receiver": "opsbot", "groupLabels": {"alertname": f"Bench{group}"},
                       "commonLabels": {"alertname": f"Bench{group}", "service": "api", "severity": "critical"},
                       "commonAnnotations": {"summary": f"bench group {group} fires"}, "externalURL": "http://am:9093",
                       "alerts": alerts}).encode()


async def serve_replica(url: str, api_url: str, ready_file: str, profile: str = "") -> None:
    """One replica, in a process of its own (as in production): the bot, its HTTP server and its scheduler,
    until the parent terminates it; the port goes to `ready_file`. With `profile`, cProfile's statistics of the
    whole process go to that file when it is terminated (stdlib: nothing to install on the machine measured)."""
    if profile:
        import cProfile
        import signal

        profiler = cProfile.Profile()
        profiler.enable()

        def dump(*_):
            profiler.disable()
            profiler.dump_stats(profile)
            os._exit(0)

        signal.signal(signal.SIGTERM, dump)
    os.environ["BENCH_ALERT_TOKEN"] = TOKEN
    settings = Settings.from_env({"DATABASE_URL": url, "SLACK_API_URL": api_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s"})
    bot = Bot(settings, parse_config(CONFIG))
    bot.messengers["slack"] = SlackWorkspaceMessenger(web_client(settings))
    runner = web.AppRunner(build_web_app(bot), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bot.scheduler.start()
    Path(ready_file).write_text(str(runner.addresses[0][1]))
    await asyncio.Event().wait()


async def start_replica(url: str, api_url: str, number: int, profile: str = "") -> tuple[asyncio.subprocess.Process, str]:
    ready = Path(f"/tmp/opsbot-bench-alert-replica-{os.getpid()}-{number}")
    ready.unlink(missing_ok=True)
    extra = ["--profile", profile] if profile else []
    process = await asyncio.create_subprocess_exec(sys.executable, __file__, "--replica", url, api_url, str(ready), *extra)
    for _ in range(400):
        if ready.exists() and ready.read_text():
            port = ready.read_text()
            ready.unlink()
            return process, f"http://127.0.0.1:{port}"
        await asyncio.sleep(0.05)
    process.kill()
    raise SystemExit("a replica did not start")


async def send(urls: list[str], count: int, groups: int, seconds: float, token: str) -> tuple[list[float], list[int], float]:
    """`count` posts spread evenly over `seconds`, round-robin over the replicas: (latencies, statuses, first send time)."""
    latencies: list[float] = []
    statuses: list[int] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        async def one(index: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            body = notification(index % groups)
            started = time.perf_counter()
            async with http.post(f"{urls[index % len(urls)]}/alerts/am", data=body, headers=headers) as response:
                await response.read()
                statuses.append(response.status)
            latencies.append(time.perf_counter() - started)

        begin = time.monotonic() + 0.2
        first_sent = time.time() + 0.2
        await asyncio.gather(*(one(i, begin + i * seconds / count) for i in range(count)))
    return sorted(latencies), statuses, first_sent


async def one_at_a_time(url: str, groups: int, count: int) -> list[float]:
    """Repeat notifications sent one after the other: what one costs when nothing queues."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies = []
    async with aiohttp.ClientSession() as http:
        for index in range(count):
            started = time.perf_counter()
            async with http.post(f"{url}/alerts/am", data=notification(index % groups), headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
    return sorted(latencies)


async def main(arguments) -> None:
    os.environ["BENCH_ALERT_TOKEN"] = TOKEN
    double = await DoubleProcess.start(Path(__file__))
    await double.reset(per_second=1000.0, burst=1000)  # Slack's per-channel limit out of reach: the bot's own cost is measured
    try:
        async with fresh_database() as url:
            await upgrade_async(url)
            replicas = [await start_replica(url, double.api_url, number, arguments.profile if number == 0 else "") for number in range(2)]
            urls = [address for _, address in replicas]
            try:
                baseline, base_statuses, _ = await send(urls, arguments.notifications, arguments.groups, arguments.seconds, "wrong-token")
                load = load_average()
                before = sum(cpu_seconds(process.pid) for process, _ in replicas)
                latencies, statuses, first_sent = await send(urls, arguments.notifications, arguments.groups, arguments.seconds, TOKEN)
                await asyncio.sleep(3)  # the first pages of the last groups
                stored_cpu = sum(cpu_seconds(process.pid) for process, _ in replicas) - before  # their schedulers' work included
                calls = await double.calls()
                alone = await one_at_a_time(urls[0], arguments.groups, 100)
                cpu = [cpu_seconds(process.pid) for process, _ in replicas]
            finally:
                for process, _ in replicas:
                    process.terminate()
                    await process.wait()
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                incidents = await conn.fetchval("SELECT count(*) FROM incidents")
                duplicates = await conn.fetchval("SELECT count(*) FROM (SELECT dedup_key FROM incidents GROUP BY dedup_key HAVING count(*) > 1) d")
                counted = await conn.fetchval("SELECT sum(firing_count) FROM alert_instances")
            finally:
                await conn.close()
    finally:
        await double.stop()
    # A page is the on-call's direct message (a D... channel); the headline and the channel ping go to C0INCIDENTS.
    posts = [(channel, incident, at) for method, channel, incident, at, status, _ in calls
             if method == "chat.postMessage" and status == 200 and incident is not None]
    pages = sorted(at for channel, _, at in posts if channel.startswith("D"))
    paged = {incident for channel, incident, _ in posts if channel.startswith("D")}
    print(f"{arguments.notifications} notifications in {arguments.seconds:g} s over {arguments.groups} groups, "
          f"2 replicas (a process each) on PostgreSQL; load average before: {load}")
    print(f"incidents {incidents} (expected {arguments.groups}), duplicates {duplicates}, incidents paged {len(paged)}")
    print(f"alerts counted firing {counted} (3 per notification stored: {3 * (arguments.notifications + 100)})")
    print(f"statuses: stored {sorted(set(statuses))}, baseline {sorted(set(base_statuses))}")
    print(f"{'':10} {'p50':>9} {'p99':>9} {'max':>9}")
    for name, values in (("stored", latencies), ("baseline", baseline), ("one by one", alone)):
        print(f"{name:10} {ms(percentile(values, 50)):>9} {ms(percentile(values, 99)):>9} {ms(values[-1]):>9}")
    print(f"ratio stored/baseline: p50 {percentile(latencies, 50) / percentile(baseline, 50):.1f}x, "
          f"p99 {percentile(latencies, 99) / percentile(baseline, 99):.1f}x")
    print(f"first notification to first page: {ms(pages[0] - first_sent) if pages else 'none'}")
    print(f"CPU of the replicas over the whole run (both passes, start-up included): {', '.join(f'{c:.1f} s' for c in cpu)}")
    print(f"CPU of both replicas per stored notification (the stored pass and its pages, headlines and redraws): "
          f"{1000 * stored_cpu / arguments.notifications:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", metavar="FILE", default="", help="cProfile the first replica into FILE (read it with pstats)")
    parser.add_argument("--slack-double", metavar="READY_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--replica", nargs=3, metavar=("DATABASE_URL", "SLACK_API_URL", "READY_FILE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.slack_double:
        asyncio.run(serve_double(arguments.slack_double))
    elif arguments.replica:
        asyncio.run(serve_replica(*arguments.replica, arguments.profile))
    else:
        asyncio.run(main(arguments))
