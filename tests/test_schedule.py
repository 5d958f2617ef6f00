"""The durable scheduler (bot/schedule/) on real PostgreSQL and SQLite, on a test clock.

Hours pass by clock.advance(); nothing here waits on the wall clock for a schedule. Each test
uses job kinds of its own (the session's PostgreSQL database is shared), and a scheduler only
claims the kinds it has handlers for.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from conftest import fleet, free_port, wait_until
from sqlalchemy import select, update

from bot.action import service as requests
from bot.action.models import ActionRequest
from bot.action.kinds.base import PlanContext
from bot.action.kinds.docker_restart import KIND as RESTART
from bot.action.scheduled import JOBS as ACTION_JOBS
from bot.action.scheduled import SWEEP
from bot.migrate import upgrade, upgrade_async
from bot.redaction import CUT_MARK
from bot.schedule import Job, JobState, JobType, ManualClock, Scheduler
from bot.schedule import service as jobs
from bot.schedule.jobs import slot_key
from bot.schedule.loop import ERROR_LIMIT
from bot.schedule.models import ScheduledJob
from bot.storage import Database


from action_helpers import RecordingMessenger, app_yaml, lock_of, service, trail, unique_service  # noqa: E402

EVERY = timedelta(seconds=30)
LEASE = timedelta(minutes=10)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    """The session's PostgreSQL database, or a migrated SQLite file of this test's own."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database_url")
    url = f"sqlite+aiosqlite:///{tmp_path / 'schedule.db'}"
    upgrade(url)  # a plain fixture: no event loop runs here, so Alembic may start its own
    return url


@pytest.fixture
def db(url, open_db):
    return open_db(url)


@pytest.fixture
def clock():
    """The wall clock's current 30-second slot, then only what the test advances."""
    now = datetime.now(timezone.utc)
    return ManualClock(now.replace(second=now.second - now.second % 30, microsecond=0))


def kind_of(name: str) -> str:
    return f"test.{name}.{uuid.uuid4().hex[:8]}"


class Calls:
    """A handler that records every call by key: started, and finished (it returned)."""

    def __init__(self, *, block: set[str] = frozenset(), fail: dict[str, Exception] | None = None):
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.jobs: list[tuple[object, Job]] = []
        self.block = set(block)  # keys whose every run hangs (until the task is cancelled)
        self.fail = fail or {}

    async def __call__(self, context, job: Job) -> None:
        self.started[job.key] += 1
        self.jobs.append((context, job))
        await asyncio.sleep(0)  # a real handler awaits: let other claimers interleave
        if job.key in self.block:
            await asyncio.Event().wait()
        if job.key in self.fail:
            raise self.fail[job.key]
        self.finished[job.key] += 1


@contextlib.asynccontextmanager
async def looping(scheduler: Scheduler):
    """The scheduler's loop as a task, killed (cancelled, no clean stop) on the way out unless stopped."""
    task = asyncio.create_task(scheduler.run_forever())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def idle(clock: ManualClock) -> None:
    """The one loop on this clock has finished its pass and sleeps until the clock moves."""
    await wait_until(lambda: clock.sleepers == 1, timeout=15)


async def advance(clock: ManualClock, delta: timedelta) -> None:
    await idle(clock)
    clock.advance(delta)
    await asyncio.sleep(0.01)  # the loop notices before the next idle() looks
    await idle(clock)


async def rows(db: Database, kind: str) -> list[ScheduledJob]:
    async with db.sessions() as session:
        result = await session.execute(select(ScheduledJob).where(ScheduledJob.kind == kind).order_by(ScheduledJob.due_at, ScheduledJob.id))
        return list(result.scalars())


# --------------------------------------------------------------------------- enqueue


async def test_enqueue_is_idempotent_and_times_are_aware(db, clock):
    kind = kind_of("idem")
    due = clock.now() + timedelta(hours=1)
    assert await jobs.enqueue(db, kind, f"{kind}:1", due, {"n": 1})
    assert not await jobs.enqueue(db, kind, f"{kind}:1", due + timedelta(hours=5), {"n": 2})
    [row] = await rows(db, kind)
    assert (row.key, row.due_at, row.payload, row.state, row.attempts) == (f"{kind}:1", due, {"n": 1}, JobState.pending, 0)
    assert row.due_at.tzinfo is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        await jobs.enqueue(db, kind, f"{kind}:naive", datetime(2026, 11, 24, 5, 30))
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 11, 24, 5, 30))


# --------------------------------------------------------------------------- exactly once across replicas


async def run_on_two_replicas(url: str, open_db, clock: ManualClock, count: int) -> None:
    kind = kind_of("once")
    calls = Calls()
    replicas = [Scheduler(open_db(url), [JobType(kind, calls)], name, clock=clock, replica=name, batch=25) for name in ("replica-a", "replica-b")]
    async with replicas[0].db.sessions() as session, session.begin():
        for n in range(count):
            await jobs.add(session, kind, f"{kind}:{n}", clock.now() - timedelta(seconds=n % 7))

    ran = await asyncio.gather(*(replica.run_due() for replica in replicas))

    assert sum(ran) == count
    assert calls.started == calls.finished == Counter({f"{kind}:{n}": 1 for n in range(count)})
    by = Counter(context for context, _ in calls.jobs)
    assert by["replica-a"] and by["replica-b"], by  # both claimed: they really ran side by side
    done = await rows(replicas[0].db, kind)
    assert {(row.state, row.attempts) for row in done} == {(JobState.done, 1)}
    assert Counter(row.claimed_by for row in done) == by


async def test_two_replicas_on_postgres_run_1000_due_jobs_exactly_once(pg_database_url, open_db, clock):
    await run_on_two_replicas(pg_database_url, open_db, clock, 1000)


async def test_two_replicas_on_sqlite_run_due_jobs_exactly_once(tmp_path, open_db, clock):
    url = f"sqlite+aiosqlite:///{tmp_path / 'replicas.db'}"
    await upgrade_async(url)
    await run_on_two_replicas(url, open_db, clock, 200)


# --------------------------------------------------------------------------- lost claims


async def test_a_killed_scheduler_loses_nothing_and_doubles_nothing(url, open_db, clock):
    kind = kind_of("kill")
    a, slow, c = (f"{kind}:{name}" for name in ("a", "slow", "c"))
    calls = Calls(block={slow})
    job_types = [JobType(kind, calls, lease=LEASE)]
    first = Scheduler(open_db(url), job_types, None, clock=clock, replica="replica-a")
    for key in (a, slow, c):
        await first.enqueue(kind, key, clock.now())

    async def others_recorded() -> bool:  # finished and recorded, not only returned
        states = [(await jobs.get(first.db, key)).state for key in (a, c)]
        return calls.started[slow] == 1 and states == [JobState.done, JobState.done]

    async with looping(first):  # killed while `slow` runs: no clean stop, nothing handed back
        await wait_until(others_recorded)
    row = await jobs.get(first.db, slow)
    assert (row.state, row.claimed_by, row.attempts) == (JobState.running, "replica-a", 1)

    calls.block.clear()
    second = Scheduler(open_db(url), job_types, None, clock=clock, replica="replica-b")
    async with looping(second):
        # Nine minutes on, the claim still holds: replica-a may be alive, only slow.
        await advance(clock, timedelta(minutes=9))
        assert calls.started[slow] == 1 and (await jobs.get(second.db, slow)).state is JobState.running
        await advance(clock, timedelta(minutes=2))
        await wait_until(lambda: calls.finished[slow] == 1)
        await idle(clock)

    assert calls.finished == Counter({a: 1, slow: 1, c: 1})
    assert calls.started == Counter({a: 1, slow: 2, c: 1})  # the killed run, and the one that finished
    row = await jobs.get(second.db, slow)
    assert (row.state, row.claimed_by, row.attempts) == (JobState.done, "replica-b", 2)
    assert row.error == "attempt 1 on replica-a did not finish within its lease"


async def test_a_job_that_never_finishes_fails_after_its_attempts(url, open_db, clock):
    kind = kind_of("doomed")
    key = f"{kind}:1"
    calls = Calls(block={key})
    job_types = [JobType(kind, calls, lease=LEASE)]
    await jobs.enqueue(open_db(url), kind, key, clock.now())
    for attempt in (1, 2, 3):
        replica = Scheduler(open_db(url), job_types, None, clock=clock, replica=f"r{attempt}", max_attempts=3)
        run = asyncio.create_task(replica.run_due())
        await wait_until(lambda: calls.started[key] == attempt)
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        clock.advance(LEASE + timedelta(seconds=1))

    assert await Scheduler(open_db(url), job_types, None, clock=clock, max_attempts=3).run_due() == 0
    row = await jobs.get(open_db(url), key)
    assert (row.state, row.attempts, row.finished_at) == (JobState.failed, 3, clock.now())
    assert row.error == "attempt 3 on r3 did not finish within its lease; gave up after 3 attempts"
    assert calls.started[key] == 3 and not calls.finished


async def test_a_clean_stop_hands_a_running_job_back_at_once(url, open_db, clock):
    kind = kind_of("handback")
    key = f"{kind}:1"
    calls = Calls(block={key})
    job_types = [JobType(kind, calls, lease=LEASE)]
    first = Scheduler(open_db(url), job_types, None, clock=clock, replica="replica-a")
    await first.enqueue(kind, key, clock.now())
    first.start()
    await wait_until(lambda: calls.started[key] == 1)
    await first.stop()
    row = await jobs.get(first.db, key)
    assert (row.state, row.claimed_by, row.attempts) == (JobState.pending, None, 0)

    calls.block.clear()
    assert await Scheduler(open_db(url), job_types, None, clock=clock, replica="replica-b").run_due() == 1  # no lease to wait for
    row = await jobs.get(first.db, key)
    assert (row.state, row.claimed_by, row.attempts) == (JobState.done, "replica-b", 1)
    assert calls.finished[key] == 1


# --------------------------------------------------------------------------- cancel, wake, errors


async def test_a_cancelled_job_never_runs(db, clock):
    kind = kind_of("cancel")
    calls = Calls()
    scheduler = Scheduler(db, [JobType(kind, calls)], None, clock=clock)
    await scheduler.enqueue(kind, f"{kind}:later", clock.now() + timedelta(hours=1))
    await scheduler.enqueue(kind, f"{kind}:now", clock.now())
    assert await scheduler.cancel(f"{kind}:later")
    assert not await scheduler.cancel(f"{kind}:later")
    assert not await scheduler.enqueue(kind, f"{kind}:later", clock.now())  # the key stays taken
    assert not await scheduler.cancel(f"{kind}:nosuch")

    clock.advance(timedelta(hours=2))
    assert await scheduler.run_due() == 1
    assert not await scheduler.cancel(f"{kind}:now")  # done: too late to cancel
    assert list(calls.started) == [f"{kind}:now"]
    assert [(row.key, row.state) for row in await rows(db, kind)] == [(f"{kind}:now", JobState.done), (f"{kind}:later", JobState.cancelled)]


async def test_the_loop_wakes_for_a_job_due_now_and_sleeps_until_the_next(db, clock, caplog):
    kind = kind_of("wake")
    calls = Calls()
    # No polling in this test: only an enqueue or the next due time may wake the loop.
    scheduler = Scheduler(db, [JobType(kind, calls)], None, clock=clock, poll=timedelta(days=7).total_seconds())
    async with looping(scheduler):
        await idle(clock)
        await scheduler.enqueue(kind, f"{kind}:now", clock.now())
        await wait_until(lambda: calls.finished[f"{kind}:now"] == 1)  # the clock did not move

        await scheduler.enqueue(kind, f"{kind}:in-2h", clock.now() + timedelta(hours=2))
        await advance(clock, timedelta(hours=1, minutes=59))
        assert not calls.started[f"{kind}:in-2h"]
        await advance(clock, timedelta(minutes=1))
        assert calls.finished[f"{kind}:in-2h"] == 1
    assert [job.late for _, job in calls.jobs] == [False, False]
    assert "scheduler pass failed" not in caplog.text


async def test_handler_errors_are_contained_redacted_and_bounded(db, clock):
    kind = kind_of("boom")
    boom, fine, later = f"{kind}:boom", f"{kind}:fine", f"{kind}:later"
    calls = Calls(fail={boom: RuntimeError("Slack said token=xoxb-123-456-abcdef " + "x" * 5000)})
    scheduler = Scheduler(db, [JobType(kind, calls)], None, clock=clock)
    await scheduler.enqueue(kind, boom, clock.now())
    await scheduler.enqueue(kind, fine, clock.now())
    async with looping(scheduler):
        await wait_until(lambda: calls.finished[fine] == 1 and calls.started[boom] == 1)
        await idle(clock)
        await scheduler.enqueue(kind, later, clock.now())  # the loop lives on
        await wait_until(lambda: calls.finished[later] == 1)

    failed = await jobs.get(db, boom)
    assert failed.state is JobState.failed and failed.finished_at == clock.now()
    assert failed.error.startswith("RuntimeError: Slack said token=[REDACTED] xxx")
    assert "xoxb-123" not in failed.error
    assert failed.error.endswith(CUT_MARK) and len(failed.error) <= ERROR_LIMIT + len(CUT_MARK)
    assert calls.started[boom] == 1  # a failed job is not retried
    assert (await jobs.get(db, fine)).state is JobState.done


async def test_an_unreachable_database_does_not_end_the_loop(open_db, clock, caplog):
    scheduler = Scheduler(open_db(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone"), ACTION_JOBS, None, clock=clock)
    scheduler.start()
    await idle(clock)
    await advance(clock, timedelta(seconds=scheduler.poll))
    assert scheduler.running
    await scheduler.stop()
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.name == "bot.schedule.loop"] == ["scheduler pass failed"]  # once, not every poll


# --------------------------------------------------------------------------- periodic jobs


async def test_downtime_runs_what_fell_due_once_marked_late(url, open_db, clock):
    """Down for two hours: a 30-second periodic job (240 missed slots) runs once, and a reminder
    due during the downtime runs once; both are marked late."""
    kind, reminders = kind_of("tick"), kind_of("remind")
    calls, reminded = Calls(), Calls()
    job_types = [JobType(kind, calls, every=EVERY), JobType(reminders, reminded)]
    start = clock.now()
    first = Scheduler(open_db(url), job_types, None, clock=clock, replica="before")
    await first.enqueue(reminders, f"{reminders}:1", start + timedelta(hours=1))
    async with looping(first):
        await wait_until(lambda: len(calls.jobs) == 1)  # first start: the current slot, at once
        await advance(clock, EVERY)
        assert len(calls.jobs) == 2
    # Killed, and down for two hours.
    clock.advance(timedelta(hours=2))
    second = Scheduler(open_db(url), job_types, None, clock=clock, replica="after")
    async with looping(second):
        await wait_until(lambda: len(calls.jobs) == 3 and reminded.finished)
        await idle(clock)
        assert len(calls.jobs) == 3
        await advance(clock, EVERY)
        assert len(calls.jobs) == 4

    slots = [start + n * EVERY for n in range(3)] + [clock.now()]
    assert [job.key for _, job in calls.jobs] == [slot_key(job_types[0], due) for due in slots]
    assert [job.late for _, job in calls.jobs] == [False, False, True, False]
    history = await rows(open_db(url), kind)
    assert [(row.state, row.late) for row in history] == [(JobState.done, False)] * 2 + [(JobState.done, True), (JobState.done, False), (JobState.pending, False)]
    assert history[-1].due_at == clock.now() + EVERY  # one slot ahead, never a backlog
    assert [(job.key, job.late) for _, job in reminded.jobs] == [(f"{reminders}:1", True)]


async def test_two_replicas_never_double_a_slot_and_a_failed_tick_keeps_the_chain(url, open_db, clock):
    kind = kind_of("tick")
    calls = Calls()
    tick = JobType(kind, calls, every=EVERY)
    replicas = [Scheduler(open_db(url), [tick], name, clock=clock, replica=name) for name in ("a", "b")]
    for _ in range(3):  # both start (or restart) in the same slot, and both run what is due
        for replica in replicas:
            await replica.ensure_periodic()
        await asyncio.gather(*(replica.run_due() for replica in replicas))
        clock.advance(EVERY)
    assert len(calls.started) == 3 and set(calls.started.values()) == {1}
    history = await rows(replicas[0].db, kind)
    assert [row.state for row in history] == [JobState.done] * 3 + [JobState.pending]

    calls.fail = {history[-1].key: RuntimeError("tick failed")}
    assert await replicas[1].run_due() == 1
    history = await rows(replicas[0].db, kind)
    assert [row.state for row in history] == [JobState.done] * 3 + [JobState.failed, JobState.pending]
    assert history[3].error == "RuntimeError: tick failed"
    assert history[4].due_at == clock.now() + EVERY


# --------------------------------------------------------------------------- the action sweep


async def test_the_action_sweep_expires_and_recovers_requests_through_the_scheduler(make_bot, url, clock):
    expiring, stranded = unique_service(), unique_service()
    container = fleet()["OPSBOT_FLEET_WEB"]  # only inspected for the plan: nothing is restarted
    bot = await make_bot(app_yaml({name: service(container) for name in (expiring, stranded)}), database_url=url)
    messenger = bot.messengers["console"] = RecordingMessenger()
    assert bot.scheduler.registry.get(SWEEP) is not None  # the composition root registered the slice's job

    opened = {}
    for name, approvals in ((expiring, 1), (stranded, 0)):
        spec = bot.config.action("restart")
        plan = await RESTART.plan(PlanContext(bot, "UOPS1"), "restart", spec, {"service": name, "with_dependents": False, "force_recreate": False})
        opened[name] = await requests.open_request(
            bot.db, action="restart", service=name, plan=plan.to_json(), plan_hash=plan.hash, requester="UOPS1", channel="C1",
            transport="console", approvals_needed=approvals, expires_in=900, locks=[f"service:{name}"],
        )
        await requests.set_message_ref(bot.db, opened[name].id, f"rec:{name}")
    ago = datetime.now(timezone.utc) - timedelta(minutes=20)
    async with bot.db.sessions() as session, session.begin():  # aged in the database, as a stopped bot leaves them
        await session.execute(update(ActionRequest).where(ActionRequest.id == opened[expiring].id).values(expires_at=ago))
        await session.execute(update(ActionRequest).where(ActionRequest.id == opened[stranded].id).values(created_at=ago))

    scheduler = Scheduler(bot.db, ACTION_JOBS, bot.context, clock=clock)  # as the composition root wires it, on the test clock
    async with looping(scheduler):
        await idle(clock)
        await advance(clock, EVERY)  # past any slot another test's bot left pending in this database
    for name, state in ((expiring, "expired"), (stranded, "failed")):
        assert (await requests.get(bot.db, opened[name].id)).state == state
        assert await lock_of(bot, name) is None
        assert await trail(bot, name, opened[name].id) == [state]
    assert {ref for ref, _ in messenger.updates} == {f"rec:{expiring}", f"rec:{stranded}"}
    assert (await requests.get(bot.db, opened[stranded].id)).result == "opsbot stopped before running it"
    async with bot.db.sessions() as session:
        sweeps = (await session.execute(select(ScheduledJob).where(ScheduledJob.kind == SWEEP, ScheduledJob.claimed_by == scheduler.replica))).scalars().all()
    assert sweeps and {(row.state, row.error) for row in sweeps} == {(JobState.done, "")}


async def test_ended_jobs_are_purged_after_a_week_and_pending_ones_stay(db, clock):
    from types import SimpleNamespace

    from bot.schedule.retention import KEEP, purge

    kind = kind_of("purge")
    old, recent = clock.now() - KEEP - timedelta(hours=1), clock.now() - timedelta(hours=1)
    for name, due in (("old-done", old), ("old-pending", old), ("old-cancelled", old), ("recent-done", recent)):
        await jobs.enqueue(db, kind, f"{kind}:{name}", due)
    await jobs.cancel(db, f"{kind}:old-cancelled")
    scheduler = Scheduler(db, [JobType(kind, Calls())], None, clock=clock)
    # Only the two done-to-be rows are due to this claimer: the pending one is due later.
    async with db.sessions() as session, session.begin():
        await session.execute(
            ScheduledJob.__table__.update().where(ScheduledJob.key == f"{kind}:old-pending").values(due_at=clock.now() + timedelta(days=1))
        )
    assert await scheduler.run_due() == 2
    async with db.sessions() as session, session.begin():  # the old one finished a week ago
        await session.execute(
            ScheduledJob.__table__.update().where(ScheduledJob.key == f"{kind}:old-done").values(finished_at=old)
        )

    await purge(SimpleNamespace(db=db), Job(id=0, kind="schedule.purge", key="k", due_at=clock.now(), attempts=1, late=False, payload={}))
    assert {row.key.split(":")[1] for row in await rows(db, kind)} == {"old-pending", "recent-done"}


async def test_due_times_in_any_time_zone_are_stored_and_claimed_in_utc(db, clock):
    """SQLite keeps only the clock time: a due time written as +02:00 or -05:00 must still fall due
    at its UTC instant, not hours early or late."""
    from zoneinfo import ZoneInfo

    kind = kind_of("zones")
    due = clock.now() + timedelta(hours=1)
    await jobs.enqueue(db, kind, f"{kind}:berlin", due.astimezone(ZoneInfo("Europe/Berlin")))
    await jobs.enqueue(db, kind, f"{kind}:new-york", due.astimezone(ZoneInfo("America/New_York")))
    calls = Calls()
    scheduler = Scheduler(db, [JobType(kind, calls)], None, clock=clock)
    clock.advance(timedelta(minutes=59))
    assert await scheduler.run_due() == 0  # neither is due a minute early
    clock.advance(timedelta(minutes=1))
    assert await scheduler.run_due() == 2
    assert {row.due_at for row in await rows(db, kind)} == {due}


async def test_a_handler_is_stopped_at_its_lease_and_the_job_failed(db, clock):
    kind = kind_of("lease")

    async def hangs(context, job):
        await asyncio.sleep(3600)

    scheduler = Scheduler(db, [JobType(kind, hangs, lease=timedelta(seconds=0.2))], None, clock=clock)
    await scheduler.enqueue(kind, f"{kind}:1", clock.now())
    assert await scheduler.run_due() == 1
    job = await jobs.get(db, f"{kind}:1")
    assert job.state is JobState.failed and "did not finish within its lease" in job.error


async def test_a_slow_job_holds_back_neither_a_wake_nor_a_job_falling_due(db, clock):
    """While one job hangs (a Slack call waiting out a 429), the loop still starts what enqueue()
    announces, at once, and what falls due, at its due time: each before the slow one ends."""
    kind = kind_of("fair")
    slow, announced, later = f"{kind}:slow", f"{kind}:announced", f"{kind}:later"
    calls = Calls(block={slow})
    # No polling: only an enqueue, a job ending or the next due time may move the loop.
    scheduler = Scheduler(db, [JobType(kind, calls)], None, clock=clock, poll=timedelta(days=7).total_seconds())
    async with looping(scheduler):
        await idle(clock)
        await scheduler.enqueue(kind, slow, clock.now())
        await wait_until(lambda: calls.started[slow] == 1)

        await scheduler.enqueue(kind, announced, clock.now())  # the clock does not move
        await wait_until(lambda: calls.finished[announced] == 1)

        await scheduler.enqueue(kind, later, clock.now() + timedelta(minutes=5))
        await asyncio.sleep(0.05)
        assert not calls.started[later]  # not early
        clock.advance(timedelta(minutes=5))
        await wait_until(lambda: calls.finished[later] == 1)
        assert calls.started[slow] == 1 and not calls.finished[slow]  # still hanging all along
    assert [job.key for _, job in calls.jobs] == [slow, announced, later]
    assert not any(job.late for _, job in calls.jobs)


async def test_among_due_jobs_the_most_urgent_is_claimed_first(db, clock):
    """A backlog of pages: the P0's is claimed before a P3's that fell due earlier (priority, then due time)."""
    kind = kind_of("urgency")
    now = clock.now()
    async with db.sessions() as session, session.begin():
        await jobs.add(session, kind, f"{kind}:p3-early", now - timedelta(minutes=5), priority=3)
        await jobs.add(session, kind, f"{kind}:p0", now - timedelta(minutes=1), priority=0)
        await jobs.add(session, kind, f"{kind}:p2", now - timedelta(minutes=3), priority=2)
        await jobs.add(session, kind, f"{kind}:p0-earlier", now - timedelta(minutes=2), priority=0)
    order = []
    for _ in range(4):
        claimed = await jobs.claim(db, "r1", {kind: timedelta(minutes=1)}, now, grace=timedelta(seconds=60), limit=1)
        assert len(claimed) == 1, [j.key for j in claimed]
        [job] = claimed
        order.append(job.key.split(":", 1)[1])
    assert order == ["p0-earlier", "p0", "p2", "p3-early"]
