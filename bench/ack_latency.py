"""How fast does `opsbot serve` acknowledge a slash command, next to a bare Bolt app?

Slack gives a slash command 3 s to be acknowledged. This script starts the Slack
Web API double (tests/slack_double.py), then two servers as subprocesses, measured
the same way:

  1. the real `opsbot serve` (HTTP mode, SQLite, a config with cheap checks);
  2. a bare Bolt AsyncApp on the same aiohttp adapter whose /health listener only
     calls ack().

It POSTs N signed /health requests at concurrency C to each with aiohttp and
reports the time to the HTTP ack (p50/p99), the ratio opsbot/bare, and the
resident memory (VmRSS) of the idle opsbot process before the load.

    .venv/bin/python bench/ack_latency.py [--requests 300] [--concurrency 10]

slack-bolt comes with the bench extra (`pip install -e '.[bench]'`, which `make bench` runs).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from slack_double import SlackDouble  # noqa: E402
from slack_signing import sign, slash_command_body  # noqa: E402

SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-bench-token"
OPSBOT = ROOT / ".venv" / "bin" / "opsbot"

CONFIG = """
version: 1
services:
  host:
    checks:
      - kind: disk
        path: /
        usage: {warn: 99, critical: 100}
      - kind: memory
        usage: {warn: 99, critical: 100}
  tmp:
    checks:
      - kind: disk
        path: /tmp
        usage: {warn: 99, critical: 100}
roles:
  ops:
    users: [UOPS1]
"""


# --- the bare Bolt app (run as a subprocess: `ack_latency.py --bare-server PORT`) ---------


async def bare_server(port: int) -> None:
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"], process_before_response=False)

    @app.command("/health")
    async def health(ack):
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    web_app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# --- measuring -------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def wait_healthy(url: str, process: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                stderr = (await process.stderr.read()).decode()[-2000:] if process.stderr else ""
                raise SystemExit(f"server exited with {process.returncode} before serving:\n{stderr}")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not answer /healthz within {timeout:.0f}s")


async def load(url: str, double: SlackDouble, requests: int, concurrency: int) -> tuple[list[float], int, set[str]]:
    """Send `requests` signed /health commands, `concurrency` at a time.

    Returns the ack latencies (s, sorted), the count of non-200 answers and the response_urls used.
    """
    latencies: list[float] = []
    failures = 0
    response_urls: set[str] = set()
    remaining = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal failures
            for _ in remaining:
                response_url = double.new_response_url()
                response_urls.add(response_url)
                body = slash_command_body("/health", "", user_id="UOPS1", response_url=response_url)
                headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
                started = time.perf_counter()
                async with http.post(f"{url}/slack/events", data=body, headers=headers) as response:
                    await response.read()
                    elapsed = time.perf_counter() - started
                if response.status == 200:
                    latencies.append(elapsed)
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(latencies), failures, response_urls


async def delivered(double: SlackDouble, urls: set[str], timeout: float = 60.0) -> int:
    """How many of `urls` got an accepted response_url post, waiting up to `timeout` for all of them."""

    def count() -> int:
        return len({p.url for p in double.response_posts() if p.url in urls and p.status == 200})

    deadline = time.monotonic() + timeout
    while count() < len(urls) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return count()


async def start(argv: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.communicate(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


def bench_workdir(double: SlackDouble) -> tuple[Path, dict[str, str]]:
    """A temporary directory with CONFIG as app.yaml, and the environment `opsbot serve` runs with there."""
    workdir = Path(tempfile.mkdtemp(prefix="opsbot-bench-"))
    (workdir / "app.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_")) and k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    env.update(
        SLACK_API_URL=double.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'opsbot.db'}",
    )
    return workdir, env


async def main(requests: int, concurrency: int, warmup: int) -> None:
    double = SlackDouble(bot_token=BOT_TOKEN)
    await double.start()
    workdir, env = bench_workdir(double)

    opsbot_port, bare_port = free_port(), free_port()
    opsbot = await start(
        [str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(opsbot_port), "--config", str(workdir / "app.yaml")], env, workdir
    )
    bare = await start([sys.executable, str(Path(__file__).resolve()), "--bare-server", str(bare_port)], env, workdir)
    results = {}
    try:
        opsbot_url, bare_url = f"http://127.0.0.1:{opsbot_port}", f"http://127.0.0.1:{bare_port}"
        await wait_healthy(opsbot_url, opsbot)
        await wait_healthy(bare_url, bare)
        await asyncio.sleep(1.0)  # let start-up settle before reading the idle footprint
        idle_rss = {"opsbot": rss_mib(opsbot.pid), "bare": rss_mib(bare.pid)}

        for name, url in (("opsbot", opsbot_url), ("bare", bare_url)):
            # Warm-up: Bolt calls auth.test on the first dispatch; opsbot's replies are let through.
            _, _, warm_urls = await load(url, double, warmup, min(concurrency, warmup))
            if name == "opsbot":
                await delivered(double, warm_urls)
            started = time.perf_counter()
            latencies, failures, urls = await load(url, double, requests, concurrency)
            wall = time.perf_counter() - started
            # Every acked opsbot command must also be answered via its response_url.
            replies = await delivered(double, urls) if name == "opsbot" else 0
            results[name] = (latencies, failures, wall, replies)
        loaded_rss = rss_mib(opsbot.pid)
    finally:
        await stop(opsbot)
        await stop(bare)
        await double.stop()

    print(f"ack latency: {requests} signed /health requests, concurrency {concurrency}, {warmup} warm-up each")
    print(f"{'server':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8} {'non-200':>8}")
    for name, (latencies, failures, wall, _) in results.items():
        print(
            f"{name:<8} {percentile(latencies, 50) * 1000:8.2f} {percentile(latencies, 99) * 1000:8.2f} "
            f"{(latencies[-1] if latencies else float('nan')) * 1000:8.2f} {requests / wall:8.0f} {failures:8d}"
        )
    o, b = results["opsbot"][0], results["bare"][0]
    print(f"ratio opsbot/bare: p50 {percentile(o, 50) / percentile(b, 50):.2f}x, p99 {percentile(o, 99) / percentile(b, 99):.2f}x")
    print(f"opsbot replies delivered via response_url: {results['opsbot'][3]}/{requests}")
    print(f"RSS idle before load: opsbot serve {idle_rss['opsbot']:.1f} MiB (bare Bolt app {idle_rss['bare']:.1f} MiB)")
    print(f"RSS opsbot serve after load: {loaded_rss:.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import slack_bolt  # noqa: F401 (the baseline only: the bot itself never imports Bolt)
    except ImportError:
        sys.exit("bench/ack_latency.py compares against a bare Bolt app: install the bench extra first "
                 "(pip install -e '.[bench]'; make bench does).")
    if args.bare_server:
        asyncio.run(bare_server(args.bare_server))
    else:
        asyncio.run(main(args.requests, args.concurrency, args.warmup))
