"""A rolling restart of three replicas under load: nothing lost, nothing done twice (issue 15).

Three `opsbot serve` processes on one fresh PostgreSQL database (created here, migrated once,
dropped at the end), no Redis: PostgreSQL is the only coordinator. A load balancer (bench/rolling_fleet.py:
health checks on /readyz, round-robin, a refused connection tried on the next replica) stands in
front of them; the Slack double (tests/slack_double.py) runs in this process and every replica's
SLACK_API_URL points at it.

Over a window of `--window` seconds:
- 1,000 signed `/incident note INC-n rr-NNNN` commands, sent open-loop at an even rate through the
  balancer, each with its own trigger_id and response_url and a unique `rr-NNNN` in its text. A note
  is one timeline row and one audit row, so each command's effect is counted exactly in the database.
  Slack's side is emulated: an ack not received within 3 s, or not a 200, is retried with
  X-Slack-Retry-Num 1..3 (and X-Slack-Retry-Reason), re-signed, after Slack's documented delays
  (at once, 1 minute, 5 minutes; `--retry-delays`). Lost: a command with no note after every retry.
- 200 pages fall due evenly over the same window: 200 open incidents (rows written as the
  planner writes them), each with one escalation level and no repeats, so exactly one page each.
  A page is a post in the incident's channel and a direct message to its on-call (20 on-calls,
  so no direct-message channel nears Slack's one post a second).
- Each replica in turn, one per third of the window: SIGTERM, wait for its exit (the bot's drain),
  start it again, wait for /readyz 200.

Counted: lost and duplicated commands (notes and audit rows per unique id), ack latency as the
client sees it through the balancer (p50/p99/max over the attempts answered 200), pages delivered
(posts in the incident channel that the double accepted, and direct messages), pages sent more than once,
page lateness (the double's receipt of the channel post minus the page's due time). Exits 1 when
anything was lost or duplicated. No assert on time: it prints the figures and a Markdown table.

    .venv/bin/python bench/rolling_restart.py [--commands 1000] [--pages 200] [--window 150] [--retry-delays 0,60,300]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
from sqlalchemy import select

from page_rig import ROOT, fresh_database, load_average, monitor_bot, percentile  # noqa: F401  (page_rig puts tests/ on the path)
from escalation_scale import load_incidents  # noqa: E402
from rolling_fleet import Balancer, ReplicaProcess, replica_env  # noqa: E402
from slack_double import SlackDouble  # noqa: E402
from slack_signing import new_trigger_id, sign, slash_command_body  # noqa: E402

from bot.audit.models import AuditEntry  # noqa: E402
from bot.incident.models import TimelineEntry  # noqa: E402
from bot.incident.planning import PING  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.schedule.models import ScheduledJob  # noqa: E402

BOT_TOKEN = "xoxb-bench-token"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
USER = "U0OPS0001"
ON_CALLS = 20
ACK_TIMEOUT = 3.0  # Slack's wait for an ack
UNIQUE = re.compile(r"\brr-(\d{4,6})\b")
INC = re.compile(r"INC-(\d+)")


def config(on_calls: int) -> str:
    """One severity per on-call, each a single level with no repeats: one page per incident."""
    lines = ["version: 1", "roles:", f"  ops: {{users: [{USER}]}}", "oncall:"]
    lines += [f"  oncall-{k:02d}: {{members: [U0ONCALL{k:02d}], shift: 7d, starts: 2026-01-05}}" for k in range(on_calls)]
    lines.append("severities:")
    for k in range(on_calls):
        lines += [f"  P1-{k:02d}:", "    respond_within: 1h", "    escalation:", f"      - {{rotation: oncall-{k:02d}}}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Slack's side of the commands


class Commands:
    """Slack sending slash commands: signed, each attempt re-signed, retried on a failed or late ack."""

    def __init__(self, lb_url: str, double: SlackDouble, pages: int, retry_delays: list[float]):
        self.lb_url, self.double, self.pages, self.retry_delays = lb_url, double, pages, retry_delays
        self.acks: list[float] = []  # seconds, attempts answered 200
        self.failures: Counter[str] = Counter()  # attempts not acknowledged, by why
        self.retried: set[int] = set()
        self.gave_up: set[int] = set()
        self.response_urls: dict[int, str] = {}
        self.attempts: dict[int, list[str]] = defaultdict(list)  # what each attempt got, and which replica answered

    async def send(self, http: aiohttp.ClientSession, number: int) -> None:
        url = self.double.new_response_url()
        self.response_urls[number] = url
        text = f"note INC-{number % self.pages + 1} rr-{number:04d}"
        body = slash_command_body("/incident", text, user_id=USER, channel_id="C0BENCH", response_url=url, trigger_id=new_trigger_id())
        reason = ""
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                await asyncio.sleep(self.retry_delays[attempt - 1])
                self.retried.add(number)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}  # signed as sent
            if attempt:
                headers |= {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": reason}
            started = time.perf_counter()
            try:
                async with http.post(f"{self.lb_url}/slack/events", data=body.encode(), headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=ACK_TIMEOUT)) as response:
                    await response.read()
                    self.attempts[number].append(f"{response.status} via {response.headers.get('X-Bench-Replica', '-')}")
                    if response.status == 200:
                        self.acks.append(time.perf_counter() - started)
                        return
                    reason = "http_error"
                    self.failures[f"HTTP {response.status}"] += 1
            except asyncio.TimeoutError:
                reason = "http_timeout"
                self.attempts[number].append("no ack")
                self.failures["no ack within 3 s"] += 1
            except aiohttp.ClientError as exc:
                reason = "connection_failed"
                self.failures[exc.__class__.__name__] += 1
        self.gave_up.add(number)

    async def run(self, count: int, window: float) -> None:
        """`count` commands at an even rate over `window` seconds, each on its own (open loop, as Slack sends)."""
        step = window / count
        started = time.monotonic()
        tasks = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for number in range(count):
                await asyncio.sleep(max(0.0, started + number * step - time.monotonic()))
                tasks.append(asyncio.create_task(self.send(http, number)))
            await asyncio.gather(*tasks)


# --------------------------------------------------------------------------- the run


async def rolling_restarts(replicas: list[ReplicaProcess], t0: float, window: float, log: list[str], spans: list) -> None:
    """Replica k is restarted a quarter into the k-th third of the window (or as soon as the one before is back)."""
    for k, replica in enumerate(replicas):
        await asyncio.sleep(max(0.0, t0 + window * (k + 0.25) / len(replicas) - time.time()))
        began = time.time()
        await replica.restart()
        spans.append((began, time.time()))
        log.append(f"{replica.name}: SIGTERM at {began - t0:+.1f} s, exited {replica.exit_codes[-1]} after {replica.drains[-1]:.1f} s, "
                   f"ready again {replica.startups[-1]:.1f} s after its start")


async def wait_for_pages(double: SlackDouble, pages: int, deadline: float) -> None:
    while time.time() < deadline:
        if len({n for n, _ in channel_posts(double)}) >= pages:
            return
        await asyncio.sleep(0.5)


def channel_posts(double: SlackDouble) -> list[tuple[int, float]]:
    """(incident, when the double took it) for each accepted page in an incident's own channel."""
    found = []
    for call in double.calls:
        if call.method != "chat.postMessage" or not call.ok:
            continue
        match = INC.search(str(call.args.get("text", "")))
        if match and str(call.args.get("channel")) == f"CINC{int(match.group(1)):06d}":
            found.append((int(match.group(1)), call.at))
    return found


def direct_posts(double: SlackDouble) -> Counter:
    counts: Counter[int] = Counter()
    for call in double.calls:
        if call.method == "chat.postMessage" and call.ok and str(call.args.get("channel", "")).startswith("D"):
            match = INC.search(str(call.args.get("text", "")))
            if match:
                counts[int(match.group(1))] += 1
    return counts


async def count(monitor, double: SlackDouble, commands: Commands, args, due: dict[int, float], spans: list) -> dict:
    async with monitor.db.sessions() as session:
        notes = (await session.scalars(select(TimelineEntry.text).where(TimelineEntry.kind == "note"))).all()
        started = (await session.execute(select(TimelineEntry.incident_id, TimelineEntry.at).where(TimelineEntry.kind == "ping"))).all()
        audited = (await session.scalars(select(AuditEntry.arguments).where(AuditEntry.command == "incident"))).all()
    def per_id(texts) -> Counter:
        return Counter(int(m.group(1)) for t in texts if (m := UNIQUE.search(t)))
    ran, recorded = per_id(notes), per_id(audited)
    replies = Counter(p.url for p in double.response_posts() if p.status == 200)
    posts: dict[int, list[float]] = defaultdict(list)
    for incident, at in channel_posts(double):
        posts[incident].append(at)
    directs = direct_posts(double)
    late = {n: min(times) - due[n] for n, times in posts.items() if n in due}
    restarting = {n for n, at in due.items() if any(a <= at <= b for a, b in spans)}  # due between a SIGTERM and that replica's ready
    return {
        "lost": [n for n in range(args.commands) if ran[n] == 0],
        "duplicated": {n: c for n, c in ran.items() if c > 1},
        "audit_lost": sum(1 for n in range(args.commands) if recorded[n] == 0),
        "audit_duplicated": sum(c - 1 for c in recorded.values() if c > 1),
        "replied": sum(1 for url in commands.response_urls.values() if replies[url] == 1),
        "replied_twice": sum(1 for url in commands.response_urls.values() if replies[url] > 1),
        "acks": sorted(commands.acks),
        "pages": len(posts), "pages_twice": sum(len(t) - 1 for t in posts.values()),
        "directs": sum(directs.values()), "directs_twice": sum(c - 1 for c in directs.values() if c > 1),
        "lateness": sorted(late.values()), "violations": len(double.violations),
        "late_restarting": sorted(v for n, v in late.items() if n in restarting),
        "late_otherwise": sorted(v for n, v in late.items() if n not in restarting),
        # when the handler started (its timeline entry's time, the replica's clock) minus the due time
        "claimed_late": sorted(at.timestamp() - due[n] for n, at in started if n in due),
    }


async def run(url: str, double: SlackDouble, app_yaml: Path, workdir: Path, replicas: list, args, retry_delays: list[float]) -> dict:
    await upgrade_async(url)  # once, as a deployment's migrate job does
    env = replica_env(url, double.api_url, BOT_TOKEN, SIGNING_SECRET)
    replicas += [ReplicaProcess(f"replica-{k + 1}", app_yaml, workdir, env) for k in range(3)]
    await asyncio.gather(*(r.start() for r in replicas))
    balancer = Balancer(replicas)
    await balancer.start()
    monitor = monitor_bot(url, config(ON_CALLS))
    try:
        specs = [{"severity": f"P1-{n % ON_CALLS:02d}", "channel_id": f"CINC{n:06d}", "headline_channel": f"CINC{n:06d}"}
                 for n in range(1, args.pages + 1)]
        first_due = await load_incidents(monitor, specs, args.window, args.lead)
        async with monitor.db.sessions() as session:
            rows = (await session.execute(select(ScheduledJob.key, ScheduledJob.due_at).where(ScheduledJob.kind == PING))).all()
        due = {int(key.split(":")[1]): at.timestamp() for key, at in rows}
        print(f"{args.commands:,} commands and {len(due)} pages over {args.window:.0f} s; 3 replicas on PostgreSQL, no Redis; "
              f"Slack's retries after {args.retry_delays} s; workdir {workdir}")
        t0 = first_due.timestamp()
        await asyncio.sleep(max(0.0, t0 - time.time()))
        commands = Commands(balancer.url, double, args.pages, retry_delays)
        restarts: list[str] = []
        spans: list[tuple[float, float]] = []
        await asyncio.gather(commands.run(args.commands, args.window), rolling_restarts(replicas, t0, args.window, restarts, spans))
        await wait_for_pages(double, args.pages, time.time() + args.page_wait)
        await asyncio.sleep(2.0)  # replies still on their way
        figures = await count(monitor, double, commands, args, due, spans)
        await asyncio.gather(*(r.stop() for r in replicas))
        restarts.append(f"balancer: failed health checks {dict(balancer.check_failures)}; no replica ready: "
                        + (", ".join(f"{a - t0:+.1f} s for {b - a:.1f} s" for a, b in balancer.none_ready) or "never"))
        report(figures, commands, balancer, replicas, restarts, args)
        return figures
    finally:
        await monitor.close()
        await balancer.stop()


async def main(args) -> int:
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load_average()} (2 cores, shared)")
    retry_delays = [float(v) for v in args.retry_delays.split(",")]
    double = SlackDouble(bot_token=BOT_TOKEN)
    await double.start()
    workdir = Path(tempfile.mkdtemp(prefix="opsbot-rolling-"))
    app_yaml = workdir / "app.yaml"
    app_yaml.write_text(config(ON_CALLS))
    replicas: list[ReplicaProcess] = []
    try:
        async with fresh_database() as url:
            try:
                figures = await run(url, double, app_yaml, workdir, replicas, args, retry_delays)
            finally:  # the replicas go before their database is dropped
                await asyncio.gather(*(r.stop() for r in replicas))
    finally:
        await double.stop()
    bad = figures["lost"] or figures["duplicated"] or figures["pages"] < args.pages or figures["pages_twice"] or figures["directs_twice"]
    return 1 if bad else 0


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def report(f: dict, commands: Commands, balancer: Balancer, replicas: list[ReplicaProcess], restarts: list[str], args) -> None:
    print("\n## rolling restart")
    for line in restarts:
        print(line)
    print(f"balancer: {dict(balancer.counts)}; answered per replica {dict(sorted(balancer.routed.items()))}")
    print(f"commands: {args.commands:,} sent; attempts not acknowledged {sum(commands.failures.values())} {dict(commands.failures)}; "
          f"retried {len(commands.retried)}, given up after every retry {len(commands.gave_up)}")
    print(f"executed (timeline notes): lost {len(f['lost'])}, duplicated {len(f['duplicated'])}"
          + (f" (lost ids {f['lost'][:20]}; duplicated {dict(list(f['duplicated'].items())[:20])})" if f["lost"] or f["duplicated"] else ""))
    for number in [*f["lost"][:10], *list(f["duplicated"])[:10]]:
        print(f"  rr-{number:04d}: attempts {commands.attempts[number]}")
    print(f"audit rows: lost {f['audit_lost']}, duplicated {f['audit_duplicated']}; replies on response_url: "
          f"{f['replied']:,} of {args.commands:,} once, {f['replied_twice']} more than once")
    acks = f["acks"]
    print(f"ack through the balancer: p50 {ms(percentile(acks, 50))}  p99 {ms(percentile(acks, 99))}  max {ms(acks[-1] if acks else float('nan'))}")
    lat = f["lateness"]
    print(f"pages: {f['pages']} of {args.pages} in their incident channels, {f['pages_twice']} sent twice; direct messages "
          f"{f['directs']}, {f['directs_twice']} twice; lateness p50 {ms(percentile(lat, 50))}  p99 {ms(percentile(lat, 99))}  "
          f"max {ms(lat[-1] if lat else float('nan'))}")
    during, other, claimed = f["late_restarting"], f["late_otherwise"], f["claimed_late"]
    print(f"  {len(during)} pages due while a replica was restarting (SIGTERM to ready): p50 {ms(percentile(during, 50))}  "
          f"p99 {ms(percentile(during, 99))}; the other {len(other)}: p50 {ms(percentile(other, 50))}  p99 {ms(percentile(other, 99))}")
    print(f"  handler started after the due time (its timeline entry): p50 {ms(percentile(claimed, 50))}  p99 {ms(percentile(claimed, 99))}  "
          f"max {ms(claimed[-1] if claimed else float('nan'))}")
    print(f"Slack double violations: {f['violations']}; replica logs: "
          + "; ".join(f"{r.name} {dict(r.log_findings())} exits {r.exit_codes}" for r in replicas))
    print("\n| commands | lost | duplicated | ack p50 | ack p99 | pages | pages twice | lateness p50 | lateness p99 | restarts (drain / ready) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    spans = ", ".join(f"{r.drains[0]:.1f} s / {r.startups[-1]:.1f} s" for r in replicas if r.drains)
    print(f"| {args.commands:,} | {len(f['lost'])} | {len(f['duplicated'])} | {ms(percentile(acks, 50))} | {ms(percentile(acks, 99))} | "
          f"{f['pages']} of {args.pages} | {f['pages_twice']} | {ms(percentile(lat, 50))} | {ms(percentile(lat, 99))} | {spans} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--window", type=float, default=150.0, help="seconds over which commands are sent and pages fall due")
    parser.add_argument("--lead", type=float, default=10.0, help="seconds from loading the incidents to the first due page")
    parser.add_argument("--retry-delays", default="0,60,300", help="Slack's waits before retries 1, 2, 3 (seconds)")
    parser.add_argument("--page-wait", type=float, default=120.0, help="seconds to wait for the last pages after the window")
    sys.exit(asyncio.run(main(parser.parse_args())))
