"""/health under load: concurrent runs of the same services are shared, each user's runs are capped,
and the Docker client is created once however many worker threads ask for it at the same moment.

The checks are http checks against a server started here, which counts its hits and can hold its
answers until the test lets them go; time windows use an injected clock, never real waiting.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import Counter

import pytest
from aiohttp import web
from conftest import fleet, free_port, wait_until

from bot.check.limits import HEALTH_RUNS_PER_USER, HEALTH_WINDOW, HealthLimits, UserQuota
from bot.check.service import recent_runs
from bot.docker_engine import DockerGateway, DockerUnavailable
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request

SHARED = "shared with a run already in progress"


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingServer:
    """Answers every path with {"status": "healthy"}, counting hits; held answers wait for release()."""

    def __init__(self):
        self.hits: Counter[str] = Counter()
        self._released = asyncio.Event()
        self._released.set()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        await self._released.wait()
        return web.json_response({"status": "healthy"})


@contextlib.asynccontextmanager
async def counting_server():
    server = CountingServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        server.release()
        await runner.cleanup()


def config_for(base: str) -> str:
    check = "latency: {warn: 30s, critical: 60s}\n        timeout: 60s"
    return f"""
version: 1
services:
  web:
    checks:
      - kind: http
        url: {base}/web
        {check}
  api:
    checks:
      - kind: http
        url: {base}/api
        {check}
"""


def health(user: str, text: str = "", *, channel: str = "C0LIMITS", trigger: str = "command", transport: str = "slack") -> Request:
    return Request(user, channel, "health", text, transport, trigger=trigger, team_id="T0LIMITS")


def footer(reply) -> str:
    return reply.blocks[-1].text


async def run_count(bot) -> int:
    return len(await recent_runs(bot.db, limit=1000))


@pytest.fixture
async def server():
    async with counting_server() as server:
        yield server


# --------------------------------------------------------------------------- coalescing


async def test_ten_concurrent_requests_for_the_same_services_run_the_checks_once(make_bot, server):
    bot = await make_bot(config_for(server.base))
    server.hold()
    key = HealthLimits.key(["web", "api"])
    callers = [asyncio.create_task(bot.handle(health(f"U0CALLER{i}", channel=f"C0CHAN{i}"))) for i in range(10)]
    # All ten are waiting on the one run, which has reached each check exactly once.
    await wait_until(lambda: bot.checks.health.flights.waiters(key) == 10)
    assert server.hits == {"/web": 1, "/api": 1}
    server.release()
    replies = await asyncio.gather(*callers)

    assert server.hits == {"/web": 1, "/api": 1}
    runs = await recent_runs(bot.db, limit=100)
    assert len(runs) == 1, "ten concurrent /health saved more than one check run"
    run = runs[0]
    assert run.requested_by == "U0CALLER0" and run.channel == "C0CHAN0" and run.trigger == "command"
    for reply in replies:
        assert reply.outcome is Outcome.ok
        assert reply.text == replies[0].text
        assert f"run #{run.id}" in footer(reply)
    assert sum(SHARED in footer(r) for r in replies) == 9
    assert SHARED not in footer(replies[0])
    assert bot.checks.health.flights.waiters(key) == 0


async def test_service_order_as_typed_does_not_matter_and_different_sets_are_not_shared(make_bot, server):
    bot = await make_bot(config_for(server.base))
    server.hold()
    callers = [
        asyncio.create_task(bot.handle(health("U0ONE", "web"))),
        asyncio.create_task(bot.handle(health("U0TWO", "api"))),
        asyncio.create_task(bot.handle(health("U0THREE", "web api"))),
        asyncio.create_task(bot.handle(health("U0FOUR", "api web"))),  # the same set as the one before
        asyncio.create_task(bot.handle(health("U0FIVE"))),  # all services: again the same set
    ]
    # Three runs in progress at once: web, api, and web+api (which reaches both paths).
    await wait_until(lambda: server.hits == {"/web": 2, "/api": 2})
    await wait_until(lambda: bot.checks.health.flights.waiters(HealthLimits.key(["api", "web"])) == 3)
    server.release()
    one, two, three, four, five = await asyncio.gather(*callers)

    assert server.hits == {"/web": 2, "/api": 2}
    assert await run_count(bot) == 3
    assert [line.split()[1] for line in one.text.splitlines()[1:]] == ["web"]
    assert [line.split()[1] for line in three.text.splitlines()[1:]] == ["web", "api"]
    assert SHARED not in footer(one) and SHARED not in footer(two)
    assert sum(SHARED in footer(r) for r in (three, four, five)) == 2
    assert len({footer(r).split(" · ")[1] for r in (one, two, three)}) == 3  # three different run ids
    assert {footer(r).split(" · ")[1] for r in (three, four, five)} == {footer(three).split(" · ")[1]}


async def test_a_finished_run_is_never_handed_out_again(make_bot, server):
    bot = await make_bot(config_for(server.base))
    first = await bot.handle(health("U0SAME", "web"))
    second = await bot.handle(health("U0OTHER", "web"))
    assert server.hits == {"/web": 2}
    assert await run_count(bot) == 2
    assert SHARED not in footer(first) and SHARED not in footer(second)
    assert footer(first).split(" · ")[1] != footer(second).split(" · ")[1]


async def test_a_caller_that_goes_away_leaves_the_shared_run_to_the_others(make_bot, server):
    bot = await make_bot(config_for(server.base))
    server.hold()
    key = HealthLimits.key(["web"])
    leader = asyncio.create_task(bot.handle(health("U0LEADER", "web")))
    await wait_until(lambda: server.hits["/web"] == 1)
    follower = asyncio.create_task(bot.handle(health("U0FOLLOWER", "web")))
    await wait_until(lambda: bot.checks.health.flights.waiters(key) == 2)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    server.release()
    reply = await follower
    assert reply.outcome is Outcome.ok
    assert SHARED in footer(reply)
    assert server.hits == {"/web": 1}
    runs = await recent_runs(bot.db)
    assert len(runs) == 1 and runs[0].requested_by == "U0LEADER"


# --------------------------------------------------------------------------- per-user cap


async def test_a_user_over_the_cap_gets_one_sentence_and_nothing_runs_until_the_window_passes(make_bot, server):
    assert (HEALTH_RUNS_PER_USER, HEALTH_WINDOW) == (6, 60.0)  # the documented defaults
    bot = await make_bot(config_for(server.base))
    clock = FakeClock()
    bot.checks.health = HealthLimits(UserQuota(clock=clock))

    for i in range(HEALTH_RUNS_PER_USER):
        reply = await bot.handle(health("U0BUSY", "web" if i % 2 else ""))
        assert reply.outcome is Outcome.ok, reply.text
        clock.advance(5)  # six runs over 25 seconds; the first was at t=1000
    hits, runs = dict(server.hits), await run_count(bot)

    refused = await bot.handle(health("U0BUSY"))
    assert refused.outcome is Outcome.usage_error
    assert refused.ephemeral
    assert refused.text == "You have started 6 health runs in the last minute, the most opsbot allows; try /health again in 30 seconds."
    assert [b.text for b in refused.blocks] == [refused.text]
    assert dict(server.hits) == hits and await run_count(bot) == runs, "a refused /health ran checks"

    # Someone else is not affected, and neither is the same user ID in another workspace.
    assert (await bot.handle(health("U0CALM"))).outcome is Outcome.ok
    other_team = Request("U0BUSY", "C0LIMITS", "health", "", "slack", team_id="T0OTHER")
    assert (await bot.handle(other_team)).outcome is Outcome.ok

    clock.advance(29)  # t=1059: the first run is still inside the window
    again = await bot.handle(health("U0BUSY", "api"))
    assert again.outcome is Outcome.usage_error
    assert again.text.endswith("try /health again in 1 second.")

    clock.advance(1)  # t=1060: the first run has left the window, so one more is allowed ...
    assert (await bot.handle(health("U0BUSY", "api"))).outcome is Outcome.ok
    assert (await bot.handle(health("U0BUSY", "api"))).outcome is Outcome.usage_error  # ... and only one

    clock.advance(HEALTH_WINDOW)  # a quiet minute: the full allowance is back
    for _ in range(HEALTH_RUNS_PER_USER):
        assert (await bot.handle(health("U0BUSY", "web"))).outcome is Outcome.ok
    assert (await bot.handle(health("U0BUSY", "web"))).outcome is Outcome.usage_error


async def test_unknown_services_are_refused_without_using_the_allowance(make_bot, server):
    bot = await make_bot(config_for(server.base))
    bot.checks.health = HealthLimits(UserQuota(limit=1, window=60, clock=FakeClock()))
    for _ in range(3):
        assert (await bot.handle(health("U0TYPO", "wbe"))).text.startswith("Unknown service 'wbe'.")
    assert (await bot.handle(health("U0TYPO", "web"))).outcome is Outcome.ok


async def test_joining_a_run_in_progress_is_free_even_at_the_cap(make_bot, server):
    bot = await make_bot(config_for(server.base))
    bot.checks.health = HealthLimits(UserQuota(limit=1, window=60, clock=FakeClock()))
    assert (await bot.handle(health("U0CAPPED", "api"))).outcome is Outcome.ok  # the allowance is used up

    server.hold()
    other = asyncio.create_task(bot.handle(health("U0OTHER", "web")))
    await wait_until(lambda: server.hits["/web"] == 1)
    joined = asyncio.create_task(bot.handle(health("U0CAPPED", "web")))
    await wait_until(lambda: bot.checks.health.flights.waiters(HealthLimits.key(["web"])) == 2)
    # A set with no run in progress would start one: that is refused.
    refused = await bot.handle(health("U0CAPPED", "api"))
    assert refused.outcome is Outcome.usage_error
    server.release()

    reply = await joined
    assert reply.outcome is Outcome.ok and SHARED in footer(reply)
    assert (await other).outcome is Outcome.ok
    assert server.hits == {"/api": 1, "/web": 1}
    assert await run_count(bot) == 2


async def test_opsbot_run_is_not_capped(make_bot, server):
    bot = await make_bot(config_for(server.base))
    bot.checks.health = HealthLimits(UserQuota(limit=2, window=60, clock=FakeClock()))
    for _ in range(5):
        reply = await bot.handle(health("UCONSOLE", "web", channel="CONSOLE", trigger="cli", transport="console"))
        assert reply.outcome is Outcome.ok
    # The interactive console is capped like Slack.
    console = [await bot.handle(health("UCONSOLE", "web", channel="CONSOLE", transport="console")) for _ in range(3)]
    assert [r.outcome for r in console] == [Outcome.ok, Outcome.ok, Outcome.usage_error]
    assert server.hits == {"/web": 7}


def test_quota_is_a_sliding_window():
    clock = FakeClock(0.0)
    quota = UserQuota(limit=2, window=10, clock=clock)
    assert quota.take("u") == 0.0
    clock.advance(4)
    assert quota.take("u") == 0.0
    assert quota.take("u") == pytest.approx(6.0)
    clock.advance(6)
    assert quota.take("u") == 0.0  # the start at t=0 left the window
    assert quota.take("u") == pytest.approx(4.0)  # the one at t=4 has not
    with pytest.raises(ValueError):
        UserQuota(limit=0)


# --------------------------------------------------------------------------- the Docker client


def _from_threads(fn, count: int = 24) -> list:
    """fn() called from `count` threads released at the same instant; results or exceptions, in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # collected, the test looks at them
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_docker_client_is_created_once_by_concurrent_threads():
    gateway = DockerGateway()
    try:
        clients = _from_threads(gateway._docker)
        assert not [c for c in clients if isinstance(c, Exception)], clients
        assert len({id(c) for c in clients}) == 1
        assert gateway._docker() is clients[0]
    finally:
        gateway.close()


async def test_docker_calls_from_the_worker_pool_share_one_client():
    web_container = fleet()["OPSBOT_FLEET_WEB"]
    gateway = DockerGateway()
    try:
        docs = await asyncio.gather(*(gateway.inspect(web_container) for _ in range(32)))
        assert {d["Name"] for d in docs} == {"/" + web_container}
        seen = await asyncio.gather(*(gateway._run(gateway._docker) for _ in range(32)))
        assert len({id(c) for c in seen}) == 1
    finally:
        gateway.close()


def test_an_unreachable_engine_is_one_sentence_for_every_thread_and_is_retried_later(monkeypatch):
    original = os.environ.get("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    gateway = DockerGateway()
    try:
        failures = _from_threads(gateway._docker, count=8)
        assert all(isinstance(f, DockerUnavailable) for f in failures), failures
        assert all(str(f).startswith("the Docker Engine is not reachable (") for f in failures)
        # A failure is not remembered: once the engine is reachable the next call connects.
        if original is None:
            monkeypatch.delenv("DOCKER_HOST")
        else:
            monkeypatch.setenv("DOCKER_HOST", original)
        client = gateway._docker()
        assert client.ping()
        assert gateway._docker() is client
    finally:
        gateway.close()
