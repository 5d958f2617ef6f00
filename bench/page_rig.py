"""What bench/escalation_scale.py's runs share: the Slack double in a child process, a fresh
PostgreSQL database, two scheduler replicas wired as the bot wires them, statement and CPU counters.

Slack is the Web API double of tests/slack_double.py (the same class the tests use, validating
every message, enforcing chat.postMessage's per-channel limit), run in a child process: in
production Slack's side of the HTTP calls does not share the bot's CPU, and in this process it
took about a sixth of it. A small control port reports what it received, and when (`/calls`),
clears it (`/reset`) and sets the per-channel limit (`/limit`).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from slack_double import SlackDouble  # noqa: E402

from bot.action.scheduled import JOBS as ACTION_JOBS  # noqa: E402
from bot.app import Bot  # noqa: E402
from bot.config.loader import parse_config  # noqa: E402
from bot.incident.escalation import JOBS as INCIDENT_JOBS  # noqa: E402
from bot.incident.planning import PING  # noqa: E402
from bot.schedule import Scheduler  # noqa: E402
from bot.schedule.retention import JOBS as SCHEDULE_JOBS  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.transport.slack import web_client  # noqa: E402
from bot.transport.slack_channels import SlackWorkspaceMessenger  # noqa: E402

PG_USER = os.environ.get("PGUSER", "postgres")
PG_ADMIN_DSN = os.environ.get("OPSBOT_BENCH_POSTGRES_DSN", f"postgresql://{PG_USER}@127.0.0.1:5432/test")
BOT_TOKEN = "xoxb-bench-token"
INC = re.compile(r"INC-(\d+)")


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


# --------------------------------------------------------------------------- the Slack double, in a child process


async def serve_double(ready_file: str) -> None:
    """The test double, plus a control port: `/calls` answers [method, channel, incident, at, status,
    Retry-After] per call (the incident from "INC-<n>" in a post's text; Retry-After of a 429, else 0)."""
    double = SlackDouble(bot_token=BOT_TOKEN)
    await double.start()

    async def calls(_: web.Request) -> web.Response:
        refused = iter(double.posts_refused)  # in the order the 429s were answered, as `calls` records them
        seen = []
        for call in double.calls:
            post = call.method == "chat.postMessage"
            found = INC.search(str(call.args.get("text", ""))) if post else None
            retry_after = next(refused)[1] if post and call.status == 429 else 0
            seen.append([call.method, str(call.args.get("channel", "")) if post else "", int(found.group(1)) if found else None,
                         call.at, call.status, retry_after])
        return web.json_response(seen)

    async def reset(_: web.Request) -> web.Response:
        double.reset()
        return web.json_response({"ok": True})

    async def limit(request: web.Request) -> web.Response:
        wanted = await request.json()
        double.limit_channel_posts(per_second=float(wanted["per_second"]), burst=int(wanted["burst"]))
        return web.json_response({"ok": True})

    control = web.Application()
    control.router.add_get("/calls", calls)
    control.router.add_post("/reset", reset)
    control.router.add_post("/limit", limit)
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
    async def start(cls, script: Path) -> "DoubleProcess":
        """`script --slack-double FILE` must call serve_double(FILE)."""
        ready = Path(f"/tmp/opsbot-bench-double-{os.getpid()}.json")
        ready.unlink(missing_ok=True)
        process = await asyncio.create_subprocess_exec(sys.executable, str(script), "--slack-double", str(ready))
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

    async def reset(self, *, per_second: float, burst: int) -> None:
        """Clear what it holds, then set chat.postMessage's per-channel limit."""
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.control}/reset") as response:
                await response.read()
            async with http.post(f"{self.control}/limit", json={"per_second": per_second, "burst": burst}) as response:
                await response.read()

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()


@contextlib.asynccontextmanager
async def fresh_database():
    """A new PostgreSQL database (its SQLAlchemy URL), dropped on the way out."""
    name = f"opsbot_bench_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def reset_tables(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("TRUNCATE incident_timeline, incident_followups, incidents, scheduled_jobs RESTART IDENTITY CASCADE")
        await conn.execute("VACUUM ANALYZE scheduled_jobs")
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
        elif head.startswith("select") and "scheduled_jobs.state in" in head and "scheduled_jobs.kind =" in head:
            self.counts["periodic"] += 1
        elif head.startswith("select") and "scheduled_jobs.key like" in head:  # a late page's look for a later one (later_due_in)
            self.counts["handler"] += 1
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


class RecordingMessenger(SlackWorkspaceMessenger):
    """The bot's messenger, noting when each incident's post ("INC-n" in its text) is handed to it,
    and so to its channel's pacer: the paced run's "waiting since". Nothing else changes."""

    def __init__(self, client):
        super().__init__(client)
        self.handed: dict[tuple[str, int], float] = {}

    async def post(self, channel: str, reply) -> str:
        found = INC.search(str(reply.text))
        if found:
            self.handed.setdefault((channel, int(found.group(1))), time.time())
        return await super().post(channel, reply)


def make_replica(name: str, url: str, api_url: str, config: str, args) -> Replica:
    """A Bot as `opsbot serve` wires it (its Slack client from web_client: Retry-After honoured), with its own engine."""
    settings = Settings.from_env({"DATABASE_URL": url, "SLACK_API_URL": api_url, "SLACK_BOT_TOKEN": BOT_TOKEN})
    bot = Bot(settings, parse_config(config))
    bot.messengers["slack"] = RecordingMessenger(web_client(settings))
    incident_jobs = [dataclasses.replace(j, lease=timedelta(seconds=args.lease)) if j.kind == PING else j for j in INCIDENT_JOBS]
    scheduler = CountingScheduler(bot.db, [*ACTION_JOBS, *incident_jobs, *SCHEDULE_JOBS], bot.context, clock=bot.clock, replica=name,
                                  poll=args.poll, batch=args.batch)
    bot.scheduler = scheduler
    return Replica(bot, scheduler, StatementCounter(bot.db.engine))


def monitor_bot(url: str, config: str) -> Bot:
    """A Bot that loads and watches the tables; its statements are not counted, it sends nothing."""
    return Bot(Settings.from_env({"DATABASE_URL": url, "SLACK_BOT_TOKEN": BOT_TOKEN}), parse_config(config))


async def post_cost(double: "DoubleProcess", rounds: int = 3, posts: int = 1000, at_once: int = 64, channels: int = 100) -> None:
    """This process's CPU per chat.postMessage through SlackMessenger, as the bot wires it (calls in
    flight share one aiohttp session) against the same messenger on slack-sdk's own session and TCP
    connection per call, alternating in one run; the double's limit out of the way."""
    from bot.pipeline.reply import Reply
    from bot.transport.slack import SlackMessenger

    await double.reset(per_second=1e9, burst=1_000_000)
    settings = Settings.from_env({"SLACK_API_URL": double.api_url, "SLACK_BOT_TOKEN": BOT_TOKEN})
    figures: dict[str, list[float]] = {"session per call": [], "shared session": []}
    for _ in range(rounds):
        for label in figures:
            client = web_client(settings)
            messenger = SlackMessenger(client)
            if label == "session per call":
                messenger._client = messenger._posting = client
            gate = asyncio.Semaphore(at_once)

            async def one(i: int) -> None:
                async with gate:
                    await messenger.post(f"CCOST{i % channels:04d}", Reply(f"post {i}"))

            started = time.process_time()
            await asyncio.gather(*(one(i) for i in range(posts)))
            figures[label].append((time.process_time() - started) / posts * 1000)
    before, after = sorted(figures["session per call"]), sorted(figures["shared session"])
    print(f"\n## CPU per post ({posts:,} posts over {channels} channels, {at_once} at once, {rounds} rounds, medians)")
    print(f"slack-sdk's session per call {before[len(before) // 2]:.3f} ms; shared while in flight {after[len(after) // 2]:.3f} ms; "
          f"ratio {after[len(after) // 2] / before[len(before) // 2]:.2f}x (rounds: {', '.join(f'{v:.2f}' for v in figures['session per call'])} "
          f"vs {', '.join(f'{v:.2f}' for v in figures['shared session'])})")
