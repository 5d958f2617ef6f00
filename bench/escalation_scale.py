"""Escalation at scale: 10,000 open incidents whose first pings fall due within one minute, paged by
two scheduler replicas on one PostgreSQL database; then the same with one replica killed half-way.

Real: a fresh PostgreSQL database (created here, dropped at the end), two `Bot` objects in this
process (each its own engine, Database and Scheduler on the wall clock), and the real
`incident.ping` handler (`bot.incident.escalation.run_ping`: timeline entry, the ping in the
incident's channel, a direct message to the on-call, the delivered mark) posting through
`SlackWorkspaceMessenger(AsyncWebClient(token, base_url))`, as the bot does.

Slack is the Web API double of tests/slack_double.py (the same class the tests use, validating
every message), run in a child process: in production Slack's side of the HTTP calls does not
share the bot's CPU, and in this process it took about a sixth of it. It reports what it received
(`/calls` on a small control port) and when, and lateness is measured there: when the double
received a ping's channel message minus the job's due time.

Reported per run: lateness p50/p99/max, pings sent more than once, statements per scheduler tick
(one claim and the recovery, wake-up and periodic look-ups around it) and per ping (a SQLAlchemy
`before_cursor_execute` listener on each engine), throughput, CPU per ping. In the kill run one
replica's task is cancelled at half time, while it holds claimed jobs, without the clean release
(what SIGKILL leaves: its rows stay `running`); the survivor takes them back when their lease runs
out, and that recovery is timed.

Tuning: 10,000 pings a minute is 167 a second. A ping is a chain of awaited calls (two
transactions and a look-up in PostgreSQL, three Slack calls, the job's end), each waiting its turn
on a busy event loop, so the rate is bound by how many pings run at once: with a batch of 16 per
replica this machine sent about 120 a second and fell seconds behind; 64, which the Bot gives
its Scheduler, keeps up. The ping's lease is cut from 2 minutes to 10 seconds here
only so that the kill run's recovery fits in the run; the recovery takes the lease, whatever it is.

    .venv/bin/python bench/escalation_scale.py [--incidents 10000] [--spread 60] [--batch 64] [--poll 5] [--lease 10]

No assert on time: it prints figures, and a Markdown table to paste into README.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy import event, func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from slack_double import SlackDouble  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

from bot.action.scheduled import JOBS as ACTION_JOBS  # noqa: E402
from bot.app import Bot  # noqa: E402
from bot.config.loader import parse_config  # noqa: E402
from bot.incident.escalation import JOBS as INCIDENT_JOBS  # noqa: E402
from bot.incident.planning import PING, ping_key, planned_pings  # noqa: E402
from bot.incident.models import Incident, IncidentState, TimelineEntry  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.schedule import Scheduler  # noqa: E402
from bot.schedule.models import JobState, ScheduledJob  # noqa: E402
from bot.schedule.retention import JOBS as SCHEDULE_JOBS  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.transport.slack_channels import SlackWorkspaceMessenger  # noqa: E402

PG_USER = os.environ.get("PGUSER", "postgres")
PG_ADMIN_DSN = os.environ.get("OPSBOT_BENCH_POSTGRES_DSN", f"postgresql://{PG_USER}@127.0.0.1:5432/test")
BOT_TOKEN = "xoxb-bench-token"
ON_CALL = "U0ONCALL1"

# A P0 as runbook 003 has it: the on-call now and every 5 minutes, then the DevOps lead. Only the
# first pings fall due during the run; the repeats and the lead's level wait in the table, as they would.
CONFIG = f"""
version: 1
roles:
  ops: {{users: [U0OPS0001]}}
  devops-lead: {{users: [U0LEAD001]}}
oncall:
  primary: {{members: [{ON_CALL}], shift: 7d, starts: 2026-01-05}}
severities:
  P0:
    respond_within: 15m
    escalation:
      - {{rotation: primary, repeat_every: 5m, max_repeats: 2}}
      - {{role: devops-lead, name: DevOps lead, repeat_every: 5m, max_repeats: 3}}
"""
INC = re.compile(r"INC-(\d+)")


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# --------------------------------------------------------------------------- the Slack double, in a child process


async def serve_double(ready_file: str) -> None:
    """`--slack-double FILE`: the test double, plus a control port answering what it received."""
    double = SlackDouble(bot_token=BOT_TOKEN)
    await double.start()

    async def calls(_: web.Request) -> web.Response:
        seen = []
        for call in double.calls:
            channel = str(call.args.get("channel", "")) if call.method == "chat.postMessage" else ""
            found = INC.search(str(call.args.get("text", ""))) if call.method == "chat.postMessage" else None
            seen.append([call.method, channel, int(found.group(1)) if found else None, call.at, bool(call.response.get("ok"))])
        return web.json_response(seen)

    async def reset(_: web.Request) -> web.Response:
        double.reset()
        return web.json_response({"ok": True})

    control = web.Application()
    control.router.add_get("/calls", calls)
    control.router.add_post("/reset", reset)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    Path(ready_file).write_text(json.dumps({"api_url": double.api_url, "control": f"http://127.0.0.1:{port}", "pid": os.getpid()}))
    await asyncio.Event().wait()  # until the parent terminates it


class DoubleProcess:
    def __init__(self, process: asyncio.subprocess.Process, info: dict):
        self.process, self.api_url, self.control, self.pid = process, info["api_url"], info["control"], info["pid"]

    @classmethod
    async def start(cls) -> "DoubleProcess":
        ready = Path(f"/tmp/opsbot-bench-double-{os.getpid()}.json")
        ready.unlink(missing_ok=True)
        process = await asyncio.create_subprocess_exec(sys.executable, str(Path(__file__).resolve()), "--slack-double", str(ready))
        for _ in range(200):
            if ready.exists() and ready.read_text():
                info = json.loads(ready.read_text())
                ready.unlink()
                return cls(process, info)
            await asyncio.sleep(0.05)
        process.kill()
        raise SystemExit("the Slack double did not start")

    async def calls(self) -> list[list]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.control}/calls") as response:
            return await response.json()

    async def reset(self) -> None:
        async with aiohttp.ClientSession() as http, http.post(f"{self.control}/reset") as response:
            await response.read()

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --------------------------------------------------------------------------- replicas


class CountingScheduler(Scheduler):
    """The real loop; counts its passes (each pass starts with ensure_periodic or run_due) and jobs in flight."""

    passes = 0
    in_flight = 0

    async def run_due(self) -> int:
        self.passes += 1
        return await super().run_due()

    async def _run(self, job) -> None:
        self.in_flight += 1
        try:
            await super()._run(job)
        finally:
            self.in_flight -= 1


class StatementCounter:
    """Every statement an engine sends, by what it is for."""

    def __init__(self, engine):
        self.counts: Counter[str] = Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        head = " ".join(statement.split()).lower()
        if "scheduled_jobs" not in head:
            self.counts["handler"] += 1
        elif "skip locked" in head or (head.startswith("update") and "claimed_by=" in head and "attempts=(" in head):
            self.counts["claim"] += 1
        elif head.startswith("update") and "finished_at" in head:
            self.counts["finish"] += 1
        elif "lease_until <=" in head:  # the look for expired claims, and taking one back
            self.counts["recover"] += 1
        elif head.startswith("select") and "min(" in head:
            self.counts["next_wake"] += 1
        elif head.startswith("select") and "scheduled_jobs.state in" in head:
            self.counts["periodic"] += 1
        else:  # the purge, a periodic job's next slot
            self.counts["scheduler other"] += 1

    @property
    def overhead(self) -> int:
        """The scheduler's own statements but the jobs' ends: claims, recovery, wake-up times, periodic chains."""
        return sum(v for k, v in self.counts.items() if k not in ("handler", "finish"))


@dataclasses.dataclass
class Replica:
    bot: Bot
    scheduler: CountingScheduler
    counter: StatementCounter


def make_replica(name: str, url: str, api_url: str, args) -> Replica:
    bot = Bot(Settings.from_env({"DATABASE_URL": url, "SLACK_API_URL": api_url, "SLACK_BOT_TOKEN": BOT_TOKEN}), parse_config(CONFIG))
    bot.messengers["slack"] = SlackWorkspaceMessenger(AsyncWebClient(token=BOT_TOKEN, base_url=api_url))
    incident_jobs = [dataclasses.replace(j, lease=timedelta(seconds=args.lease)) if j.kind == PING else j for j in INCIDENT_JOBS]
    scheduler = CountingScheduler(bot.db, [*ACTION_JOBS, *incident_jobs, *SCHEDULE_JOBS], bot, clock=bot.clock, replica=name,
                                  poll=args.poll, batch=args.batch)
    bot.scheduler = scheduler
    return Replica(bot, scheduler, StatementCounter(bot.db.engine))


# --------------------------------------------------------------------------- one run


async def load_incidents(bot: Bot, count: int, spread: float, lead: float) -> datetime:
    """`count` open P0 incidents, each with its whole plan in scheduled_jobs as planning.plan writes it;
    the first pings due evenly over `spread` seconds, from `lead` seconds after the rows are in."""
    _, severity = bot.config.severity("P0")
    far = datetime.now(timezone.utc) + timedelta(days=1)  # written ahead, then moved to t0 in one statement
    step = spread / count
    incidents, jobs = [], []
    for n in range(1, count + 1):
        opened = far + timedelta(seconds=(n - 1) * step)
        incidents.append({
            "id": n, "title": f"checkout errors {n}", "severity": "P0", "state": IncidentState.open, "services": [], "description": "",
            "playbook": None, "opened_by": "U0OPS0001", "opened_at": opened, "transport": "slack", "team": "T0TEST", "summary": "",
            "channel_id": f"CINC{n:06d}", "headline_channel": f"CINC{n:06d}", "escalation_plan": 1, "escalation_level": 0,
            "updated_at": opened,
        })
        for ping in planned_pings(severity, bot.config, opened):
            payload = {"incident": n, "plan": 1, "level": ping.level, "repeat": ping.repeat, "forced": False}
            jobs.append({"kind": PING, "key": ping_key(n, 1, ping.level, ping.repeat), "due_at": ping.due, "payload": payload,
                         "state": JobState.pending, "attempts": 0, "late": False, "error": ""})
    async with bot.db.sessions() as session, session.begin():
        for chunk in range(0, len(incidents), 2000):
            await session.execute(insert(Incident.__table__), incidents[chunk:chunk + 2000])
        for chunk in range(0, len(jobs), 5000):
            await session.execute(insert(ScheduledJob.__table__), jobs[chunk:chunk + 5000])
        await session.execute(text("SELECT setval('incidents_id_seq', :n)"), {"n": count})
        await session.execute(text("ANALYZE scheduled_jobs"))
    t0 = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=lead + 1)
    moved = {"s": (far - t0).total_seconds()}
    async with bot.db.sessions() as session, session.begin():
        await session.execute(text("UPDATE scheduled_jobs SET due_at = due_at - make_interval(secs => :s)"), moved)
        await session.execute(text("UPDATE incidents SET opened_at = opened_at - make_interval(secs => :s), "
                                   "updated_at = updated_at - make_interval(secs => :s)"), moved)
    return t0


async def reset_tables(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("TRUNCATE incident_timeline, incident_followups, incidents, scheduled_jobs RESTART IDENTITY CASCADE")
        await conn.execute("VACUUM ANALYZE scheduled_jobs")
    finally:
        await conn.close()


async def run_once(url: str, double: DoubleProcess, args, *, kill: bool) -> dict:
    await double.reset()
    await reset_tables(url)
    replicas = [make_replica(name, url, double.api_url, args) for name in ("replica-a", "replica-b")]
    monitor = Bot(Settings.from_env({"DATABASE_URL": url, "SLACK_BOT_TOKEN": BOT_TOKEN}), parse_config(CONFIG))  # its statements are not counted
    t0 = await load_incidents(monitor, args.incidents, args.spread, args.lead)
    async with monitor.db.sessions() as session:
        rows = (await session.execute(select(ScheduledJob.key, ScheduledJob.due_at).where(ScheduledJob.key.like(f"{PING}:%:1:0:0")))).all()
    due = {int(key.split(":")[1]): at.timestamp() for key, at in rows}
    for replica in replicas:
        replica.counter.counts.clear()
    cpu_before, double_before, machine_before = time.process_time(), cpu_seconds(double.pid), machine_busy()
    for replica in replicas:
        replica.scheduler.start()

    killed = {"at": None, "claimed": [], "taken_back_at": None, "done_at": None}
    try:
        if kill:
            victim = replicas[0].scheduler
            await asyncio.sleep(max(0.0, t0.timestamp() + args.spread / 2 - time.time()))
            for _ in range(400):  # kill it while it holds claimed jobs, as a crash under load would
                if victim.in_flight:
                    break
                await asyncio.sleep(0.005)
            victim._task.cancel()  # no stop(): nothing handed back, the rows stay running
            try:
                await victim._task
            except asyncio.CancelledError:
                pass
            killed["at"] = time.time()
            async with monitor.db.sessions() as session:
                killed["claimed"] = list((await session.scalars(select(ScheduledJob.key).where(
                    ScheduledJob.state == JobState.running, ScheduledJob.claimed_by == victim.replica))).all())
        delivered = await wait_delivered(monitor, args, killed)
    finally:
        for replica in replicas:
            await replica.scheduler.stop()
    cpu = time.process_time() - cpu_before
    double_cpu = cpu_seconds(double.pid) - double_before
    machine_after = machine_busy()
    stats = await collect(monitor, await double.calls(), due, replicas, killed)
    for bot in (*(r.bot for r in replicas), monitor):
        await bot.close()
    stats.update(t0=t0.timestamp(), cpu=cpu, double_cpu=double_cpu, delivered_wait=delivered,
                 machine=(machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1]))
    return stats


async def wait_delivered(bot: Bot, args, killed: dict) -> int:
    """Until every first ping is delivered (and the killed replica's claimed rows ran elsewhere), or a timeout."""
    deadline = time.time() + args.spread + args.lead + args.lease + 90
    left = set(killed["claimed"])
    delivered = 0
    while time.time() < deadline:
        async with bot.db.sessions() as session:
            delivered = await session.scalar(select(func.count()).select_from(TimelineEntry).where(
                TimelineEntry.kind == "ping", TimelineEntry.data["delivered"].as_boolean()))
            if left:
                rows = (await session.execute(select(ScheduledJob.key, ScheduledJob.state, ScheduledJob.claimed_by).where(
                    ScheduledJob.key.in_(left)))).all()
                if killed["taken_back_at"] is None and any(claimed != "replica-a" for _, _, claimed in rows):
                    killed["taken_back_at"] = time.time()
                left -= {key for key, state, _ in rows if state in (JobState.done, JobState.failed)}
                if not left:
                    killed["done_at"] = time.time()
        if delivered >= args.incidents and not left:
            break
        await asyncio.sleep(0.05)
    else:
        print(f"warning: timed out with {delivered} of {args.incidents} pings delivered", file=sys.stderr)
    return delivered


async def collect(bot: Bot, calls: list[list], due: dict[int, float], replicas: list[Replica], killed: dict) -> dict:
    channel_posts: dict[int, list[float]] = defaultdict(list)
    direct_posts: Counter[int] = Counter()
    for method, channel, incident, at, ok in calls:
        if method != "chat.postMessage" or not ok or incident is None:
            continue
        if channel.startswith("D"):
            direct_posts[incident] += 1
        else:
            channel_posts[incident].append(at)
    recovered = {int(key.split(":")[1]) for key in killed["claimed"]}
    lateness = {n: min(times) - due[n] for n, times in channel_posts.items() if n in due}
    sends = sorted(t for times in channel_posts.values() for t in times)
    extra = {n: len(channel_posts[n]) - 1 + max(0, direct_posts[n] - 1) for n in set(channel_posts) | set(direct_posts)}
    async with bot.db.sessions() as session:
        entries = (await session.execute(select(TimelineEntry.data).where(TimelineEntry.kind == "ping"))).scalars().all()
        job_states = Counter(s.value for s in (await session.scalars(select(ScheduledJob.state).where(
            ScheduledJob.key.like(f"{PING}:%:1:0:0")))).all())
        marked_late = await session.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.late.is_(True)))
    return {
        "sent": len(channel_posts), "missing": len(due) - len(channel_posts), "directs": sum(direct_posts.values()),
        "lateness": sorted(lateness.values()),
        "others": sorted(v for n, v in lateness.items() if n not in recovered),
        "recovered_lateness": sorted(v for n, v in lateness.items() if n in recovered),
        "recovered_resent": sorted(max(channel_posts[n]) - due[n] for n in recovered if channel_posts.get(n)),
        "duplicates": sum(extra.values()), "duplicates_recovered": sum(v for n, v in extra.items() if n in recovered),
        "delivered_entries": sum(1 for data in entries if data.get("delivered")), "entries": len(entries),
        "job_states": dict(job_states), "marked_late": marked_late,
        "throughput": (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else float("nan"),
        "first_send": sends[0] if sends else float("nan"), "last_send": sends[-1] if sends else float("nan"),
        "replicas": [(r.scheduler.replica, r.scheduler.passes, dict(r.counter.counts), r.counter.overhead) for r in replicas],
        "killed": killed,
    }


# --------------------------------------------------------------------------- report


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def report(name: str, stats: dict, args) -> None:
    lat = stats["lateness"]
    print(f"\n## {name}")
    print(f"pings in incident channels: {stats['sent']:,} of {args.incidents:,} (missing {stats['missing']}), direct messages "
          f"{stats['directs']:,}, duplicates {stats['duplicates']}")
    print(f"timeline ping entries {stats['entries']:,}, delivered {stats['delivered_entries']:,}; first-ping jobs "
          f"{stats['job_states']}, marked late {stats['marked_late']}")
    print(f"lateness: p50 {ms(percentile(lat, 50))}  p99 {ms(percentile(lat, 99))}  max {ms(lat[-1] if lat else float('nan'))}")
    print(f"throughput: {stats['throughput']:.0f} pings/s; first ping sent {stats['first_send'] - stats['t0']:+.2f} s, last "
          f"{stats['last_send'] - stats['t0']:+.2f} s from the first due time (the last was due at +{args.spread * (1 - 1 / args.incidents):.2f} s)")
    sent = max(1, stats["sent"])
    print(f"CPU: this process (both replicas) {stats['cpu'] / sent * 1000:.2f} ms per ping; Slack double "
          f"{stats['double_cpu'] / sent * 1000:.2f} ms per ping; whole machine {stats['machine'] * 100:.0f}% busy (2 cores, PostgreSQL "
          f"and whatever else runs included)")
    for replica, passes, counts, overhead in stats["replicas"]:
        jobs, handler, ticks = counts.get("finish", 0), counts.get("handler", 0), counts.get("claim", 0)
        print(f"{replica}: {jobs:,} jobs in {passes} passes and {ticks:,} ticks (claims); scheduler statements per tick "
              f"{overhead / max(ticks, 1):.2f}, per job {overhead / max(jobs, 1):.2f} + 1 (its end); handler statements per ping "
              f"{handler / max(jobs, 1):.2f}; {dict(sorted(counts.items()))}")
    killed = stats["killed"]
    if killed["at"] is not None:
        others, rec = stats["others"], stats["recovered_lateness"]
        taken = (killed["taken_back_at"] or float("nan")) - killed["at"]
        done = (killed["done_at"] or float("nan")) - killed["at"]
        print(f"replica-a killed at {killed['at'] - stats['t0']:+.2f} s holding {len(killed['claimed'])} claimed jobs (rows left running); "
              f"replica-b took them back {taken:.2f} s after the kill and had sent them {done:.2f} s after (their lease: {args.lease:.0f} s)")
        resent = stats["recovered_resent"]
        print(f"lateness of the other pings: p50 {ms(percentile(others, 50))}  p99 {ms(percentile(others, 99))}  "
              f"max {ms(others[-1] if others else float('nan'))}; the {len(rec)} recovered ones were first sent at most "
              f"{ms(rec[-1] if rec else float('nan'))} late, and sent by replica-b at most {ms(resent[-1] if resent else float('nan'))} late")
        why = (" (Slack had taken them from replica-a, which died before their delivered mark: the one window run_ping documents)"
               if stats["duplicates_recovered"] else "")
        print(f"duplicates among the recovered ones {stats['duplicates_recovered']}{why}, among the others "
              f"{stats['duplicates'] - stats['duplicates_recovered']}")


def table(normal: dict, killed: dict, args) -> None:
    print("\n| run | pings | duplicates | lateness p50 | p99 | max | pings/s | statements/tick | statements/ping | recovery |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, stats in (("2 replicas", normal), ("one killed half-way", killed)):
        lat = stats["lateness"]
        ticks = sum(c.get("claim", 0) for _, _, c, _ in stats["replicas"])
        overhead = sum(s for _, _, _, s in stats["replicas"])
        statements = sum(sum(c.values()) for _, _, c, _ in stats["replicas"])
        k = stats["killed"]
        recovery = f"{k['done_at'] - k['at']:.1f} s ({len(k['claimed'])} jobs, lease {args.lease:.0f} s)" if k["at"] and k["done_at"] else "-"
        print(f"| {label} | {stats['sent']:,} | {stats['duplicates']} | {ms(percentile(lat, 50))} | {ms(percentile(lat, 99))} | "
              f"{ms(lat[-1])} | {stats['throughput']:.0f} | {overhead / max(ticks, 1):.2f} | {statements / max(stats['sent'], 1):.2f} | {recovery} |")


async def main(args) -> None:
    # The recovery is reported below; a line per recovered job, and SQLAlchemy's tracebacks for the
    # connections the killed replica's cancelled tasks were closing, would only bury the figures.
    logging.getLogger("bot.schedule.loop").setLevel(logging.ERROR)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    name = f"opsbot_bench_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
    double = await DoubleProcess.start()
    try:
        await upgrade_async(url)
        print(f"{args.incidents:,} incidents, first pings due over {args.spread:.0f} s; 2 replicas in this process, batch {args.batch}, "
              f"poll {args.poll:g} s, ping lease {args.lease:g} s; PostgreSQL database {name}; Slack double (tests/slack_double.py) "
              f"in a child process")
        normal = await run_once(url, double, args, kill=False)
        report("normal run", normal, args)
        killed = await run_once(url, double, args, kill=True)
        report("one replica killed at half time", killed, args)
    finally:
        await double.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    table(normal, killed, args)
    print(f"\nstatements/tick: the scheduler's own statements per claim (claim, expired-claim look-ups, next wake-up, periodic "
          f"chains); statements/ping: everything both replicas sent, per ping (handler 4, the job's end 1, the rest). "
          f"Batch {args.batch}, poll {args.poll:g} s, ping lease {args.lease:g} s; Slack double in a child process.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the first pings fall due")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds from the insert to the first due time")
    parser.add_argument("--batch", type=int, default=64, help="jobs a replica runs at once (as the Bot configures its Scheduler)")
    parser.add_argument("--poll", type=float, default=5.0, help="scheduler poll, seconds")
    parser.add_argument("--lease", type=float, default=10.0, help="lease of incident.ping, seconds")
    parser.add_argument("--slack-double", metavar="READY_FILE", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.slack_double:
        asyncio.run(serve_double(arguments.slack_double))
    else:
        asyncio.run(main(arguments))
