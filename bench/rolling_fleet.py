"""What bench/rolling_restart.py runs: `opsbot serve` replicas as real processes, and a load balancer
in front of them.

A replica is `opsbot serve --port N` on PostgreSQL with no Redis (DATABASE_URL=postgresql+asyncpg://...,
SLACK_API_URL at the Slack double), its output in a log file of its own (a pipe nobody reads would
fill and stall it). Restarting it is what a rolling update does: SIGTERM, wait for the exit (the
bot's drain), start it again, wait for /readyz 200.

The balancer is a small aiohttp proxy standing in for HAProxy or a cloud load balancer:
- Health checks: GET /readyz on every replica each CHECK_EVERY seconds (timeout CHECK_TIMEOUT); one
  200 makes a replica ready, FALL failures in a row (a 503 from a draining replica, a refused
  connection, no answer in time) take it out: HAProxy's `check inter 1s rise 1 fall 2 timeout check 2s`.
  With `fall 1` and a 1 s timeout, a busy 2-core machine (load 7) left the balancer with no replica
  ready for seconds: /readyz reads the database and, while a replica was starting, took over 1 s.
  A refused connection takes a replica out at once (below), whatever FALL says.
- Routing: round-robin over the ready replicas. When none is ready it fails open (every replica
  whose process runs is tried), as AWS's load balancers do and Envoy's panic threshold does: all
  of them failing their checks at once says more about the checks (a busy machine) than about them.
- Retries: a connection refused (the replica's listener is gone; the request never reached it) is
  tried on the next ready replica, as HAProxy's `retry-on conn-failure` with `option redispatch`
  does. Anything after the request was sent (a reset, a timeout) is not retried here: the balancer
  cannot know whether it ran, so it answers 502 and Slack's own retry (X-Slack-Retry-Num) decides.
- One connection per forwarded request (no keep-alive to the replicas), so "refused" always means
  "not delivered" and a replica closing an idle pooled connection cannot be mistaken for one.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
OPSBOT = ROOT / ".venv" / "bin" / "opsbot"
CHECK_EVERY = 1.0  # seconds between a replica's health checks
CHECK_TIMEOUT = 2.0
FALL = 2  # failed checks in a row that take a replica out
UPSTREAM_TIMEOUT = 30.0  # the client (Slack) gives up after 3 s; the balancer waits longer, as nginx's 60 s does
FORWARDED = ("Content-Type", "X-Slack-Request-Timestamp", "X-Slack-Signature", "X-Slack-Retry-Num", "X-Slack-Retry-Reason")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ReplicaProcess:
    """One `opsbot serve` on its own port, restartable; its output appended to `log_path`."""

    def __init__(self, name: str, config: Path, workdir: Path, env: dict[str, str]):
        self.name, self.config, self.workdir, self.env = name, config, workdir, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.exit_codes: list[int] = []
        self.drains: list[float] = []  # SIGTERM to exit, seconds
        self.startups: list[float] = []  # exec to /readyz 200, seconds

    async def start(self, timeout: float = 90.0) -> None:
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--config", str(self.config),
                cwd=self.workdir, env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as http:
            while time.monotonic() - started < timeout:
                if self.process.returncode is not None:
                    raise SystemExit(f"{self.name} exited with {self.process.returncode} while starting; see {self.log_path}")
                try:
                    async with http.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            self.startups.append(time.monotonic() - started)
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise SystemExit(f"{self.name} was not ready within {timeout:.0f} s; see {self.log_path}")

    async def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM and wait for the exit (the bot drains for up to 20 s); killed only past `timeout`."""
        if self.process is None or self.process.returncode is not None:
            return
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        self.drains.append(time.monotonic() - started)
        self.exit_codes.append(code)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def log_findings(self) -> Counter:
        """Lines in its log worth a look: tracebacks, jobs cut short by the drain, refused deliveries."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        found = Counter()
        for line in text.splitlines():
            for needle in ("Traceback", "cancelling work still running", "ERROR", "WARNING"):
                if needle in line:
                    found[needle] += 1
        return found


def replica_env(database_url: str, api_url: str, bot_token: str, signing_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "OPSBOT_")) and k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    env.update(DATABASE_URL=database_url, SLACK_API_URL=api_url, SLACK_BOT_TOKEN=bot_token, SLACK_SIGNING_SECRET=signing_secret)
    return env


class Balancer:
    """The proxy in front of the replicas (see the module's docstring)."""

    def __init__(self, replicas: list[ReplicaProcess]):
        self.replicas = replicas
        self.ready: dict[str, bool] = {r.name: False for r in replicas}
        self._failed: Counter[str] = Counter()  # failed checks in a row, per replica
        self.check_failures: Counter[str] = Counter()  # every failed check, by why
        self.none_ready_since: float | None = None
        self.none_ready: list[tuple[float, float]] = []  # (from, to) time.time() spans with no replica ready
        self._turn = itertools.count()
        self.counts: Counter[str] = Counter()  # forwarded, redispatched, 502, 503 (none ready)
        self.routed: Counter[str] = Counter()  # requests answered, per replica
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._checking: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # force_close: a new connection per forwarded request (see the module's docstring).
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0),
                                           timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT))
        await self._check_all()
        self._checking = asyncio.create_task(self._check_forever())
        app = web.Application()
        app.router.add_post("/slack/events", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            await self._check_all()

    async def _check_all(self) -> None:
        await asyncio.gather(*(self._check(r) for r in self.replicas))

    async def _check(self, replica: ReplicaProcess) -> None:
        why = ""
        try:
            async with self._http.get(f"{replica.url}/readyz", timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as response:
                await response.read()
                why = "" if response.status == 200 else f"HTTP {response.status}"
        except asyncio.TimeoutError:
            why = f"no answer in {CHECK_TIMEOUT:g} s"
        except aiohttp.ClientError as exc:
            why = exc.__class__.__name__
        if why:
            self.check_failures[why] += 1
            self._failed[replica.name] += 1
            if self._failed[replica.name] >= FALL:
                self._mark(replica.name, False)
        else:
            self._failed[replica.name] = 0
            self._mark(replica.name, True)

    def _mark(self, name: str, ready: bool) -> None:
        self.ready[name] = ready
        if not any(self.ready.values()) and self.none_ready_since is None:
            self.none_ready_since = time.time()
        elif any(self.ready.values()) and self.none_ready_since is not None:
            self.none_ready.append((self.none_ready_since, time.time()))
            self.none_ready_since = None

    def _candidates(self) -> list[ReplicaProcess]:
        """The ready replicas, starting from the next one's turn."""
        ready = [r for r in self.replicas if self.ready[r.name]]
        if not ready:
            return []
        start = next(self._turn) % len(ready)
        return ready[start:] + ready[:start]

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        candidates = self._candidates()
        if not candidates:
            self.counts["failed open"] += 1
            candidates = [r for r in self.replicas if r.process is not None and r.process.returncode is None]
        for replica in candidates:
            try:
                async with self._http.post(f"{replica.url}/slack/events", data=body, headers=headers) as response:
                    payload = await response.read()
                    self.counts["forwarded"] += 1
                    self.routed[replica.name] += 1
                    # X-Bench-Replica: which replica answered, for the bench's report (Slack ignores it)
                    return web.Response(status=response.status, body=payload, content_type=response.content_type,
                                        headers={"X-Bench-Replica": replica.name})
            except aiohttp.ClientConnectorError:  # refused: never reached it, so the next may take it
                self._mark(replica.name, False)
                self.counts["redispatched"] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):  # sent, fate unknown: Slack's retry decides
                self.counts["502 after sending"] += 1
                return web.Response(status=502, text="upstream failed")
        self.counts["502 all refused"] += 1
        return web.Response(status=502, text="every replica refused")
