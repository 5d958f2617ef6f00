"""The scheduler: one loop per process, started by the composition root, that recovers lost
claims, claims what is due and runs it. Several replicas may run it against one database;
the claim (bot.schedule.service) makes sure each job runs once, judged by the database's clock
unless the injected clock is the database's (bot.schedule.clock). On a clean stop it claims
nothing more, lets running jobs finish within the drain, and hands back whatever is still running.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bot.coordination import fixed_now
from bot.metrics import SCHEDULER_LAST_TICK
from bot.redaction import redact_cut
from bot.schedule import service
from bot.schedule.clock import Clock, SystemClock
from bot.schedule.current import current_job
from bot.schedule.jobs import JobType, Registry, next_slot, slot, slot_key
from bot.schedule.models import Job
from bot.schedule.wakeups import HandBackListener
from bot.storage import Database

log = logging.getLogger(__name__)
IDLE_RETRY = 0.5  # seconds between passes while due jobs are held by another replica

ERROR_LIMIT = 500  # characters of a handler's error kept in the row


def replica_name() -> str:
    """Who claimed a job, for a reader of the table: host, process, and a nonce for restarts."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def _retry_pause(seconds: float = IDLE_RETRY) -> None:
    """The pause before looking again at what is already due: a cadence of asking, not a due time,
    so it passes in real time whatever the clock. An injected clock that stands still (a test's)
    would otherwise never end it, and a job that fell due while the last pass ran would wait for
    the next advance of the clock."""
    await asyncio.sleep(seconds)


class Scheduler:
    def __init__(
        self,
        db: Database,
        job_types: Iterable[JobType],
        context: Any,
        *,
        clock: Clock | None = None,
        replica: str | None = None,
        grace: timedelta = timedelta(minutes=1),
        poll: float = 5.0,
        batch: int = 16,
        max_attempts: int = 3,
    ):
        self.db = db
        self.registry = Registry(job_types)
        self.context = context  # what handlers are given: the composition root decides
        self.clock = clock or SystemClock()
        self.replica = replica or replica_name()
        self.grace = grace  # a job run later than this after its due time is marked late
        # Other replicas enqueue without waking this one: look at the table at least this often.
        self.poll = poll
        self.batch = batch  # jobs claimed (and run concurrently) at a time
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False  # stop() is cancelling: a job cut short is handed back
        self._draining = False  # stop() was called: claim nothing more, end once running jobs have
        self._failing = False
        self._periodic_checked: datetime | None = None  # when ensure_periodic last looked (clock time)
        self._recovered: datetime | None = None  # when recover last looked (clock time)
        self._hand_backs = HandBackListener(db.url, self.wake)  # other replicas' stops wake this loop

    # ------------------------------------------------------------------ for domains

    async def enqueue(self, kind: str, key: str, due_at: datetime, payload: dict | None = None) -> bool:
        """Promise `kind` at `due_at`, once per key (a second enqueue of the key is a no-op)."""
        created = await service.enqueue(self.db, kind, key, due_at, payload)
        if created:
            self._wake.set()  # it may be due before the loop's next look
        return created

    async def cancel(self, key: str) -> bool:
        return await service.cancel(self.db, key)

    async def cancel_prefix(self, prefix: str) -> int:
        return await service.cancel_prefix(self.db, prefix)

    def wake(self) -> None:
        """Look at the table now: a domain added jobs in its own transaction (service.add)."""
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run_forever(), name="scheduler")

    async def stop(self, drain: float = 0.0) -> None:
        """Claim nothing more, give running jobs up to `drain` seconds to finish, then cancel the
        loop and await it, so nothing of it runs once the database closes. A job cut short is handed
        back (pending, its attempt not counted), not left for its lease to run out."""
        task, self._task = self._task, None
        if task is None:
            return
        self._draining = True
        self._wake.set()  # out of its sleep: the loop ends as soon as nothing of it runs
        try:
            if drain > 0:
                await asyncio.wait({task}, timeout=drain)
            self._stopping = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._stopping = self._draining = False
            await self._hand_backs.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_forever(self) -> None:
        while not self._draining:
            self._wake.clear()  # set from here on by an enqueue: the next sleep is skipped
            wake_at, ran = None, 0
            try:
                await self._hand_backs.ensure()
                if self._periodic_due():
                    await self.ensure_periodic()
                ran = await self.run_due()
                wake_at = await self._next_wake()
                SCHEDULER_LAST_TICK.set(self.clock.now().timestamp())  # a failed pass is no tick: opsbot cannot page then
                if self._failing:
                    log.info("scheduler passes work again")
                self._failing = False
            except Exception as exc:  # database down or not migrated: try again at the next poll
                if not self._failing:
                    log.warning("scheduler pass failed (%s); retrying every %ss", redact_cut(f"{exc.__class__.__name__}: {exc}", 200), self.poll)
                self._failing = True
            await self._sleep_until(wake_at, idle=ran == 0)

    # ------------------------------------------------------------------ one pass

    async def ensure_periodic(self) -> None:
        """A periodic kind with no pending or running row (first start, or its chain was cancelled)
        gets its current slot, due now; the slot key keeps replicas starting together to one row.

        A chain only breaks when someone cancels or deletes its row (finish and recover add the
        next slot in the same transaction), so the loop looks on its first pass and then once per
        `poll`, not on every pass: the look cannot use an index (there is none on kind) and scans
        the table, a week of ended rows included."""
        self._periodic_checked = self.clock.now()
        now = await service.current_time(self.db, fixed_now(self.clock))  # the slot by the database's time
        for job_type in self.registry.periodic:
            if not await service.active(self.db, job_type.kind):
                # Not self.enqueue: run_due comes right after this, no need to wake.
                await service.enqueue(self.db, job_type.kind, slot_key(job_type, slot(job_type, now)), now)

    def _periodic_due(self) -> bool:
        checked = self._periodic_checked
        return checked is None or self.clock.now() - checked >= timedelta(seconds=self.poll) or self.clock.now() < checked

    async def run_due(self) -> int:
        """Recover expired claims, then claim and run due jobs until none is left; how many ran.

        Up to `batch` jobs run at once, and claiming goes on while they run: one slow job (a Slack
        call waiting out a 429, or a hung call up to the client's timeout) holds back neither the
        jobs claimed with it nor those falling due meanwhile. While jobs run the loop also waits for
        `wake()` and for the next due time, and claims at once then, into whatever slots are free.
        A finished job alone triggers a claim once half the slots are free (or none is running), so
        a backlog is claimed `batch / 2` rows per statement rather than one. Expired claims are
        recovered once per `poll` throughout: a dead replica's jobs must not wait until this one
        has caught up."""
        await self.recover()
        ran = 0
        running: dict[asyncio.Task, Job] = {}
        look = True  # claim now whatever the free slots: the first round, a wake() or a due time
        wake_at: datetime | None = None  # the next due time (or lease to recover) as of the last claim
        try:
            while True:
                free = self.batch - len(running)
                now = self.clock.now()
                if self._recover_due(now):
                    await self.recover()
                if free > 0 and not self._draining and (look or not running or free >= max(1, self.batch // 2)):
                    self._wake.clear()  # a wake() from here on may be for a row this claim does not see
                    jobs = await service.claim(self.db, self.replica, self.registry.leases(), fixed_now(self.clock), grace=self.grace, limit=free)
                    for job in jobs:
                        running[asyncio.ensure_future(self._run(job))] = job
                    if running and len(running) < self.batch:  # asked once per claim, not per job that ends
                        wake_at = await self._next_wake()
                if not running:
                    return ran
                look = await self._wait_busy(running, wake_at)
                for task in [task for task in running if task.done()]:
                    job = running.pop(task)
                    ran += 1
                    if not task.cancelled() and task.exception() is not None:  # _run contains everything else
                        log.error("scheduled job %s ended with %s", job.key, task.exception().__class__.__name__)
        except asyncio.CancelledError:
            await self._settle(running, cancel=True)
            raise
        except Exception:  # a claim failed (the database went away): what runs ends on its own first
            await self._settle(running, cancel=False)
            raise

    async def _wait_busy(self, running: dict[asyncio.Task, Job], wake_at: datetime | None) -> bool:
        """Wait while jobs run until one ends, wake() is called, the next job falls due or a `poll`
        passes (recovery); True when the loop should claim at once (anything but a job ending).

        With every slot taken only a job ending (or the poll) is waited for. Otherwise the next due
        time counts too; one already past, which the last claim left (another replica holds it, SKIP
        LOCKED, or a backlog waits for half the slots), is looked at again in IDLE_RETRY, not in a
        tight loop."""
        delay, past_due = self.poll, False
        waits: set[asyncio.Future] = set(running)
        if len(running) < self.batch and not self._draining:  # draining: only the jobs' ends matter
            if wake_at is not None:
                until = (wake_at - self.clock.now()).total_seconds()
                delay, past_due = (min(delay, until), False) if until > 0 else (IDLE_RETRY, True)
            waits.add(asyncio.ensure_future(self._wake.wait()))
        timer = asyncio.ensure_future(_retry_pause() if past_due else self.clock.sleep(delay, busy=True))
        waits.add(timer)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits - set(running):
                waiter.cancel()
        return not done <= set(running)

    async def _settle(self, running: dict[asyncio.Task, Job], *, cancel: bool) -> None:
        """No job task outlives run_due: cancelled (a stop or a kill) or waited for."""
        jobs = list(running.values())
        if cancel:
            for task in running:
                task.cancel()
        try:
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        finally:
            if cancel and self._stopping:  # claimed jobs that never started go back now, not after their lease
                await asyncio.shield(self._release_all(jobs))

    def _recover_due(self, now: datetime) -> bool:
        return self._recovered is None or now - self._recovered >= timedelta(seconds=self.poll) or now < self._recovered

    async def _release_all(self, jobs: list[Job]) -> None:
        for job in jobs:  # conditional on still running under this claim: finished ones are left alone
            with contextlib.suppress(Exception):
                await service.release(self.db, job, self.replica)

    async def recover(self) -> None:
        self._recovered = self.clock.now()
        recovered = await service.recover(self.db, fixed_now(self.clock), max_attempts=self.max_attempts, then_for=self._follow_up)
        for job, state in recovered:
            log.warning("scheduled job %s: its claim expired (attempt %s); now %s", job.key, job.attempts, state.value)

    async def _run(self, job: Job) -> None:
        """Run one claimed job; only cancellation escapes, so one job never stops the others."""
        job_type = self.registry.get(job.kind)
        error = None
        current_job.set(job)  # this task's own context: what the handler posts can say which job it is
        try:
            # Past its lease another replica may take the job back; it must not still be running then.
            async with asyncio.timeout(job_type.lease.total_seconds()):
                await job_type.handler(self.context, job)
        except TimeoutError:
            error = f"did not finish within its lease ({job_type.lease})"
            log.warning("scheduled job %s %s", job.key, error)
        except asyncio.CancelledError:
            if self._stopping:
                with contextlib.suppress(Exception):
                    await service.release(self.db, job, self.replica)
            raise  # killed otherwise: the row stays running and its lease brings it back
        except Exception as exc:
            error = redact_cut(f"{exc.__class__.__name__}: {exc}", ERROR_LIMIT)
            log.warning("scheduled job %s failed: %s", job.key, error)
        # Shielded: a stop that lands while the end is written must not leave a finished job running
        # (its lease would then bring it back and run it twice).
        record = asyncio.ensure_future(service.finish(self.db, job, self.replica, fixed_now(self.clock), error=error, then=self._follow_up(job)))
        try:
            if not await asyncio.shield(record):
                log.warning("scheduled job %s ran past its lease and was taken back; its result is not recorded", job.key)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await record
            raise
        except Exception as exc:  # the lease will bring the job back
            log.warning("scheduled job %s: could not record its end (%s)", job.key, exc.__class__.__name__)

    def _follow_up(self, job: Job) -> service.FollowUpAt | None:
        """A periodic job's next slot: the first one after the database's time at its end, so a
        downtime costs one late run (and a replica's skewed clock neither repeats nor skips a slot)."""
        job_type = self.registry.get(job.kind)
        if job_type is None or job_type.every is None:
            return None
        return lambda at: (job.kind, *next_slot(job_type, at))

    async def _next_wake(self) -> datetime | None:
        """When there is next something to do, on this loop's clock (the database measures how far off)."""
        # The clock is read once, before the query: a ManualClock advanced while the query runs
        # would otherwise count the advance twice and sleep past what just fell due.
        fixed = fixed_now(self.clock)
        asked = fixed if fixed is not None else self.clock.now()
        wait = await service.next_wake(self.db, self.registry.kinds, fixed)
        return None if wait is None else asked + wait

    async def _sleep_until(self, wake_at: datetime | None, *, idle: bool = False) -> None:
        delay = self.poll
        if wake_at is not None:
            delay = min(delay, max(0.0, (wake_at - self.clock.now()).total_seconds()))
            if idle and delay == 0:
                # Nothing was claimed, yet something is due: another replica holds it (SKIP LOCKED,
                # its claim not yet committed). Wait a little instead of asking again at once. Only
                # then: a job due in 50 ms is woken for in 50 ms, not in IDLE_RETRY.
                delay = -1.0
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(_retry_pause(min(self.poll, IDLE_RETRY)) if delay < 0 else self.clock.sleep(delay))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
