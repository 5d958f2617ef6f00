"""N replicas with PostgreSQL as the only coordinator (issue 15), on a PostgreSQL database of this module's own.

- Two replicas without Redis get the same Slack delivery and its retry (X-Slack-Retry-Num over signed
  HTTP, retry_attempt over Socket Mode, each to the other replica): the handler runs once, claimed in
  `delivery_claims`. A claim expires, is claimable again then, and is purged; with Redis set but down
  the claim goes to the database, not to each process's memory.
- A replica whose clock is two minutes off (ahead or behind) neither runs a job early, nor waits for a
  due one, nor takes back a live lease, nor breaks a periodic chain: the database's clock judges.
- SIGTERM: the real `opsbot serve` answers /readyz 503 at once and drains an in-flight command; a
  scheduled job still running when the drain ends is handed back and the other replica takes it at
  once; one that ends within the drain finishes where it started.

Console: nothing here is a command (a console has no retried deliveries and is one process); the
console's SQLite uses the same table (the sqlite case of the expiry test).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import uuid
from datetime import datetime, timedelta, timezone

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, select

from conftest import PG_USER, SIGNING_SECRET, free_port, wait_until
from slack_signing import block_actions_body, event_callback_payload, reaction_added_event, sign, slash_command_body, slash_command_fields
from test_escalation import pg_template  # noqa: F401  (fixture: a migrated PostgreSQL database for this module)
from test_slack_http import OPSBOT, QUICK_CONFIG, QUIET, RETRY, serve_bot, serve_env, wait_for_healthz  # noqa: F401 (fixture)

from bot.audit import service as audit
from bot.coordination import CLAIMS, Coordinator
from bot.incident.models import Incident, IncidentState
from bot.migrate import upgrade_async
from bot.schedule import JobState, JobType, ManualClock, Scheduler, SystemClock
from bot.schedule import service as jobs
from bot.schedule.jobs import slot
from bot.transport.edge import SlackEdge
from bot.transport.slack import web_client
from bot.transport.socket_mode import SocketModeTransport

UTC = timezone.utc
OFF = timedelta(minutes=2)


@pytest_asyncio.fixture(scope="module")
async def replicas_db(pg_template):  # noqa: F811
    """The URL of the migrated PostgreSQL database this module's replicas share (created for the module)."""
    _, name = pg_template
    return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"


class SkewedClock(SystemClock):
    """A replica's wall clock that is `offset` off (its host lost NTP)."""

    def __init__(self, offset: timedelta):
        self.offset = offset

    def now(self) -> datetime:
        return super().now() + self.offset


def kind_of(name: str) -> str:
    return f"test.{name}.{uuid.uuid4().hex[:8]}"


async def database_now(db) -> datetime:
    async with db.sessions() as session:
        return await session.scalar(select(func.now()))


async def audit_count(bot) -> int:
    return len(await audit.entries(bot.db))


async def claim_row(db, key: str):
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    async with db.sessions() as session:
        return (await session.execute(select(CLAIMS).where(CLAIMS.c.key == digest))).first()


# --------------------------------------------------------------------------- retried deliveries, no Redis


@pytest.mark.parametrize("delivery", ["command", "click"])
async def test_two_replicas_without_redis_run_a_retried_http_delivery_once(slack, serve_bot, replicas_db, delivery):  # noqa: F811
    first = await serve_bot(database_url=replicas_db)
    second = await serve_bot(database_url=replicas_db)
    assert first.bot.coordinator.redis is None and second.bot.coordinator.redis is None
    before = await audit_count(first.bot)
    url = slack.new_response_url()
    trigger = f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
    if delivery == "command":
        body = slash_command_body("/health", "", user_id="UOPS1", response_url=url, trigger_id=trigger)
    else:  # a button no interaction declares: refused in one sentence on its response_url
        body = block_actions_body("UOPS1", "replicas.nosuch", "1", response_url=url, trigger_id=trigger)

    # The first delivery and Slack's retry race on the two replicas; a later retry comes to the first.
    results = await asyncio.gather(first.command(body), second.command(body, **RETRY))
    assert [status for status, _ in results] == [200, 200]
    assert (await first.command(body, **{**RETRY, "X-Slack-Retry-Num": "2"}))[0] == 200
    await slack.wait_for_response_posts(1)
    await asyncio.sleep(QUIET)
    assert len(slack.response_posts(url)) == 1
    if delivery == "command":
        assert await audit_count(first.bot) == before + 1
    row = await claim_row(first.bot.db, f"trigger:{trigger}")
    assert row is not None and row.expires_at > await database_now(first.bot.db)

    _, doc = await first.get("/readyz")
    assert doc["checks"]["deduplication"] == {"status": "healthy", "message": "retried deliveries are claimed once in PostgreSQL"}


async def test_two_replicas_over_socket_mode_run_a_redelivered_envelope_once(slack, make_bot, replicas_db):
    replicas = []
    try:
        for count in (1, 2):
            bot = await make_bot(QUICK_CONFIG, replicas_db, api_url=slack.api_url)
            client = web_client(bot.settings)
            edge = SlackEdge(bot, client)
            transport = SocketModeTransport(edge, slack.app_token, client)
            await transport.connect()
            replicas.append((transport, edge, await slack.socket.wait_connected(count, timeout=15)))
        before = await audit_count(replicas[0][1].bot)
        url = slack.new_response_url()
        fields = slash_command_fields("/health", "", user_id="UOPS1", response_url=url)
        # Slack re-delivers an envelope it saw no ack for, possibly over another of the app's connections.
        await slack.socket.deliver("slash_commands", fields, connection=replicas[0][2])
        await slack.socket.deliver("slash_commands", fields, retry_attempt=1, retry_reason="timeout", connection=replicas[1][2])
        for _, edge, _ in replicas:
            await edge.work.drain(30)
        assert len(slack.response_posts(url)) == 1
        assert await audit_count(replicas[0][1].bot) == before + 1
    finally:
        for transport, edge, _ in replicas:
            await transport.close()
            await edge.work.drain(30)
    await slack.socket.assert_clean()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_claim_holds_until_it_expires_then_is_claimable_again_and_purged(open_db, replicas_db, tmp_path, backend):
    if backend == "sqlite":  # the console and `make run`: one process, the same table
        url = f"sqlite+aiosqlite:///{tmp_path / 'console.db'}"
        await upgrade_async(url)
    else:
        url = replicas_db
    clock = ManualClock(datetime(2020, 1, 1, tzinfo=UTC))  # the test's database clock, years before the others' rows
    one, two = Coordinator(None, open_db(url), clock), Coordinator(None, open_db(url), clock)
    key, brief = f"event:Ev{uuid.uuid4().hex}", f"event:Ev{uuid.uuid4().hex}"
    assert await one.claim(key, ttl=60)
    assert not await two.claim(key, ttl=60)
    clock.advance(59)
    assert not await two.claim(key, ttl=60)
    clock.advance(1)
    assert await two.claim(key, ttl=60)  # its row expired: the claim is taken over, once
    assert not await one.claim(key, ttl=60)

    assert await one.claim(brief, ttl=10)
    clock.advance(11)
    assert await one.purge() >= 1
    assert await claim_row(one.db, brief) is None  # expired: gone
    kept = await claim_row(one.db, key)  # claimed again at +60 s for 60 s: still live
    assert kept.expires_at == clock.now() + timedelta(seconds=49)
    assert len(kept.key) == 64  # a digest: no Slack text in the table

    # A key Slack text could hold (a lone surrogate from a JSON escape) is claimed, not a crash.
    assert await one.claim("event:Ev\ud800") and not await two.claim("event:Ev\ud800")
    await one.close()
    await two.close()


async def test_redis_set_but_down_falls_back_to_the_database_not_to_memory(open_db, replicas_db):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    one = Coordinator(dead, open_db(replicas_db), SystemClock())
    two = Coordinator(dead, open_db(replicas_db), SystemClock())
    try:
        key = f"trigger:{uuid.uuid4().hex}"
        assert await one.claim(key)
        assert not await two.claim(key)  # each process's memory would have said yes twice
        assert await claim_row(one.db, key) is not None
    finally:
        await one.close()
        await two.close()


async def test_a_claims_expiry_is_the_databases_clock_not_the_replicas(open_db, replicas_db):
    db = open_db(replicas_db)
    skewed = Coordinator(None, db, SkewedClock(-timedelta(hours=2)))
    key = f"trigger:{uuid.uuid4().hex}"
    assert await skewed.claim(key, ttl=600)
    left = (await claim_row(db, key)).expires_at - await database_now(db)
    assert timedelta(seconds=590) < left <= timedelta(seconds=600)
    await skewed.close()



async def test_a_claim_slower_than_the_ack_budget_still_runs_a_retried_command_once(slack, serve_bot, replicas_db):  # noqa: F811
    """The database is slow (here: delivery_claims locked, as a migration's ALTER TABLE would hold it) for
    longer than Slack waits for an ack. The ack does not wait for the claim, and the claim does not give
    up into this replica's memory: Slack's retry on the other replica finds it claimed. (bench/rolling_restart.py
    found this: under load a claim past its 1.5 s budget fell back to memory, its INSERT was cancelled,
    and the retry ran the command a second time on another replica.)"""
    first = await serve_bot(database_url=replicas_db)
    second = await serve_bot(database_url=replicas_db)
    before = await audit_count(first.bot)
    url = slack.new_response_url()
    body = slash_command_body("/health", "", user_id="UOPS1", response_url=url)
    locker = await asyncpg.connect(replicas_db.replace("postgresql+asyncpg", "postgresql"))
    try:
        locking = locker.transaction()
        await locking.start()
        await locker.execute("LOCK TABLE delivery_claims IN EXCLUSIVE MODE")  # claims wait; reads do not
        assert (await first.command(body))[0] == 200  # acknowledged while the claim waits
        retried = asyncio.create_task(second.command(body, **RETRY))  # Slack's retry, on the other replica
        await asyncio.sleep(2.0)  # past the 1.5 s a claim before the ack was given
        assert slack.response_posts(url) == []  # nothing ran before it was claimed
        await locking.rollback()
    finally:
        await locker.close()
    assert (await retried)[0] == 200
    await slack.wait_for_response_posts(1, timeout=15)
    await asyncio.sleep(QUIET)
    assert len(slack.response_posts(url)) == 1
    assert await audit_count(first.bot) == before + 1



async def test_a_claim_slower_than_the_ack_budget_still_runs_a_retried_event_once(slack, serve_bot, replicas_db):  # noqa: F811
    """Events too are acknowledged first and claimed after: with delivery_claims locked, both replicas
    acknowledge the same delivery (a 📌 in an incident's channel), neither runs it in the meantime, and
    once the lock goes it runs once: the pinned message is read from Slack once."""
    first = await serve_bot(database_url=replicas_db)
    second = await serve_bot(database_url=replicas_db)
    channel = f"C{uuid.uuid4().hex[:10].upper()}"
    async with first.bot.db.sessions() as session:
        session.add(Incident(title="pins", severity="P2", state=IncidentState.open, services=[], opened_by="UOPS1",
                             opened_at=datetime.now(timezone.utc), updated_at=datetime.now(timezone.utc), transport="slack",
                             channel_id=channel))
        await session.commit()
    ts = slack.add_message(channel, "UOPS1", "the pool is full")
    body = json.dumps(event_callback_payload(reaction_added_event("UOPS1", "pushpin", channel, ts)))
    headers = {"Content-Type": "application/json", **sign(SIGNING_SECRET, body)}
    locker = await asyncpg.connect(replicas_db.replace("postgresql+asyncpg", "postgresql"))
    try:
        locking = locker.transaction()
        await locking.start()
        await locker.execute("LOCK TABLE delivery_claims IN EXCLUSIVE MODE")
        assert (await first.post(body, headers))[0] == 200  # acknowledged while its claim waits
        assert (await second.post(body, {**headers, **RETRY}))[0] == 200  # Slack's retry, on the other replica
        await asyncio.sleep(2.0)  # past the 1.5 s a claim before the ack was given
        assert slack.calls_to("conversations.history") == []  # nothing ran before it was claimed
        await locking.rollback()
    finally:
        await locker.close()
    await wait_until(lambda: slack.calls_to("conversations.history"), timeout=15)
    await asyncio.sleep(QUIET)
    assert len(slack.calls_to("conversations.history")) == 1

# --------------------------------------------------------------------------- a replica's clock two minutes off


class Calls:
    """A handler recording each run's key; keys in `hold` run until cancelled."""

    def __init__(self, hold: set[str] = frozenset()):
        self.runs: list[tuple[str, bool]] = []  # (key, late)
        self.hold = set(hold)

    async def __call__(self, context, job) -> None:
        self.runs.append((job.key, job.late))
        if job.key in self.hold:
            await asyncio.Event().wait()


def scheduler(db, job_types, clock, name: str) -> Scheduler:
    return Scheduler(db, job_types, None, clock=clock, replica=name, poll=60.0)


@pytest.mark.parametrize("skew", [OFF, -OFF], ids=["ahead", "behind"])
async def test_a_replica_two_minutes_off_neither_runs_early_nor_waits_nor_takes_a_live_lease(open_db, replicas_db, skew):
    kind, held_kind = kind_of("skew"), kind_of("held")
    db = open_db(replicas_db)
    calls = Calls(hold={f"{held_kind}:1"})
    types = [JobType(kind, calls), JobType(held_kind, calls, lease=timedelta(seconds=30))]
    true = scheduler(db, types, SystemClock(), "true")
    off = scheduler(open_db(replicas_db), types, SkewedClock(skew), "off")

    now = await database_now(db)
    await jobs.enqueue(db, kind, f"{kind}:due", now - timedelta(seconds=1))
    await jobs.enqueue(db, kind, f"{kind}:later", now + timedelta(minutes=1))
    assert await off.run_due() == 1  # behind, it would have waited two minutes for it
    assert calls.runs == [(f"{kind}:due", False)]  # ahead, it would have taken `later` too, and called this late
    assert (await jobs.get(db, f"{kind}:later")).state is JobState.pending

    # A lease set by one replica's clock and judged by the other's: ahead, the skewed replica takes a
    # live lease back; behind, its own lease looks expired to the other. Judged by the database: neither.
    holder, other = (true, off) if skew > timedelta(0) else (off, true)
    await jobs.enqueue(db, held_kind, f"{held_kind}:1", now - timedelta(seconds=1))
    holder.start()
    try:
        await wait_until(lambda: (f"{held_kind}:1", False) in calls.runs)
        await other.recover()
        assert await other.run_due() == 0
        row = await jobs.get(db, f"{held_kind}:1")
        assert (row.state, row.claimed_by, row.attempts) == (JobState.running, holder.replica, 1)
        assert row.lease_until - await database_now(db) > timedelta(seconds=20)
    finally:
        await holder.stop()  # a clean stop hands the held job back
    row = await jobs.get(db, f"{held_kind}:1")
    assert (row.state, row.claimed_by, row.attempts) == (JobState.pending, None, 0)
    await jobs.cancel(db, f"{held_kind}:1")
    await jobs.cancel(db, f"{kind}:later")


@pytest.mark.parametrize("skew", [OFF, -OFF], ids=["ahead", "behind"])
async def test_a_replica_two_minutes_off_keeps_a_periodic_chain_on_the_databases_slots(open_db, replicas_db, skew):
    kind = kind_of("periodic")
    db = open_db(replicas_db)
    calls = Calls()
    job_type = JobType(kind, calls, every=timedelta(seconds=60))
    off = scheduler(db, [job_type], SkewedClock(skew), "off")
    await off.ensure_periodic()
    assert await off.run_due() == 1
    now = await database_now(db)
    async with db.sessions() as session:
        from bot.schedule.models import ScheduledJob

        rows = list((await session.execute(select(ScheduledJob).where(ScheduledJob.kind == kind).order_by(ScheduledJob.due_at))).scalars())
    assert [row.state for row in rows] == [JobState.done, JobState.pending]
    # The slot that ran is the database's current one, and the next is the one after it: behind, the
    # chain would restart in the past (a slot run twice, or a key already taken); ahead, skip two.
    assert rows[0].due_at <= now and rows[1].due_at == slot(job_type, now) + job_type.every
    await jobs.cancel(db, rows[1].key)


# --------------------------------------------------------------------------- SIGTERM


class HeldHealth:
    """An HTTP health endpoint whose answer waits for `release`: a /health that is still running."""

    def __init__(self):
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def _health(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self.release.wait()
        return web.json_response({"status": "healthy"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.release.set()
        await self.runner.cleanup()


async def signed_post(url: str, body: str) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/slack/events", data=body.encode(), headers=headers) as response:
            return response.status


async def readyz(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/readyz") as response:
            return response.status, await response.json()


@pytest.mark.parametrize("transport", ["http", "socket"])
async def test_sigterm_turns_readyz_503_at_once_and_drains_an_in_flight_command(slack, replicas_db, tmp_path, transport):
    """The real process. (The console is one person's terminal, not a replica behind a balancer.)"""
    held = HeldHealth()
    await held.start()
    config = tmp_path / "app.yaml"
    config.write_text(
        "version: 1\nservices:\n  slow:\n    checks:\n"
        f"      - {{kind: http, url: 'http://127.0.0.1:{held.port}/health', timeout: 30s}}\n"
        "roles:\n  ops:\n    users: [UOPS1]\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A replica as deployed: its own process on PostgreSQL, no Redis.
    socket = {"SLACK_APP_TOKEN": slack.app_token, "SLACK_SIGNING_SECRET": None} if transport == "socket" else {}
    process = await asyncio.create_subprocess_exec(
        str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(config),
        cwd=tmp_path, env=serve_env(slack, tmp_path, DATABASE_URL=replicas_db, **socket),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_healthz(url, process)
        if transport == "socket":
            await slack.socket.wait_connected(timeout=15)
        status, doc = await readyz(url)
        assert status == 200, doc
        assert doc["checks"]["deduplication"]["message"] == "retried deliveries are claimed once in PostgreSQL"

        response_url = slack.new_response_url()
        if transport == "socket":
            await slack.socket.deliver("slash_commands", slash_command_fields("/health", "slow", user_id="UOPS1", response_url=response_url))
        else:
            assert await signed_post(url, slash_command_body("/health", "slow", user_id="UOPS1", response_url=response_url)) == 200
        await asyncio.wait_for(held.arrived.wait(), 15)  # acknowledged, and still running
        process.send_signal(signal.SIGTERM)

        status, doc = await readyz(url)
        assert status == 503 and doc["checks"] == {
            "shutdown": {"status": "unhealthy", "message": "stopping: acknowledged work drains, new work goes to other replicas"}
        }
        if transport == "http":  # a request the balancer routed here before it noticed is still served
            late_url = slack.new_response_url()
            assert await signed_post(url, slash_command_body("/help", "", user_id="UOPS1", response_url=late_url)) == 200
            await wait_until(lambda: slack.response_posts(late_url), timeout=15)
        else:  # Socket Mode disconnected at once: Slack sends new envelopes to the other replicas
            await wait_until(lambda: not slack.socket.live, timeout=15)
        assert slack.response_posts(response_url) == [] and process.returncode is None

        held.release.set()
        post = await _first_post(slack, response_url)
        assert "Health:" in post.text
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
        await held.stop()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode() and "cancelling work still running" not in stderr.decode()
    if transport == "socket":
        await slack.socket.assert_clean()


async def _first_post(slack, response_url: str):
    await wait_until(lambda: slack.response_posts(response_url), timeout=15)
    return slack.response_posts(response_url)[0]


async def two_bots(make_bot, url: str, handler, kind: str):
    """Two Bots on one database whose schedulers know only `kind` and look at the table once a minute:
    nothing but the job itself (or a hand-back's notice) wakes them."""
    bots = [await make_bot(QUICK_CONFIG, url) for _ in range(2)]
    for bot in bots:
        bot.scheduler = Scheduler(bot.db, [JobType(kind, handler)], bot.context, clock=bot.clock, poll=60.0)
    return bots


async def test_a_job_running_when_the_drain_ends_is_handed_back_and_taken_at_once_by_the_other_replica(make_bot, replicas_db):
    kind = kind_of("handback")
    ran_on: list[str] = []

    async def handler(bot, job) -> None:
        ran_on.append(bot.scheduler.replica)
        if bot is first.context:
            await asyncio.Event().wait()  # mid-run when the drain deadline passes

    first, second = await two_bots(make_bot, replicas_db, handler, kind)
    first.scheduler.start()
    key = f"{kind}:1"
    await first.scheduler.enqueue(kind, key, await database_now(first.db))
    await wait_until(lambda: ran_on == [first.scheduler.replica])

    # The other replica sleeps towards the running job's lease (five minutes), polling once a minute:
    # only the hand-back's notice can wake it in time.
    second.scheduler.start()
    await wait_until(lambda: second.scheduler._hand_backs._connection is not None)
    await asyncio.sleep(QUIET)  # its first pass is over: it sleeps

    await first.scheduler.stop(drain=0.2)
    await wait_until(lambda: len(ran_on) == 2, timeout=5)
    assert ran_on == [first.scheduler.replica, second.scheduler.replica]

    async def done():
        row = await jobs.get(first.db, key)
        return row.state is JobState.done and row

    row = await wait_until(done)
    assert row.claimed_by == second.scheduler.replica
    assert row.attempts == 1  # the handed-back run did not count against max_attempts
    await second.scheduler.stop()


async def test_a_job_that_ends_within_the_drain_finishes_where_it_started_and_nothing_new_is_claimed(make_bot, replicas_db):
    kind = kind_of("drain")
    ran: list[str] = []
    finish = asyncio.Event()

    async def handler(bot, job) -> None:
        ran.append(job.key)
        await finish.wait()

    first, _ = await two_bots(make_bot, replicas_db, handler, kind)
    first.scheduler.start()
    await first.scheduler.enqueue(kind, f"{kind}:running", await database_now(first.db))
    await wait_until(lambda: ran == [f"{kind}:running"])

    stopping = asyncio.create_task(first.scheduler.stop(drain=30))
    await asyncio.sleep(0.1)
    await first.scheduler.enqueue(kind, f"{kind}:new", await database_now(first.db))  # during the drain: not claimed here
    await asyncio.sleep(QUIET)
    assert not stopping.done()
    finish.set()
    await asyncio.wait_for(stopping, 10)

    running = await jobs.get(first.db, f"{kind}:running")
    assert (running.state, running.claimed_by, running.attempts) == (JobState.done, first.scheduler.replica, 1)
    assert (await jobs.get(first.db, f"{kind}:new")).state is JobState.pending
    assert ran == [f"{kind}:running"]
    await jobs.cancel(first.db, f"{kind}:new")
