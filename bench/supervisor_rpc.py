"""supervisord XML-RPC: the bot's client (aiohttp + xmlrpc.client marshalling) against the stdlib's
ServerProxy run on a worker thread, the other way the brief allowed. Same supervisord, same run.

Reads tests/.fleet.supervisor.env (scripts/test-env.sh starts this checkout's supervisord).
Run: .venv/bin/python bench/supervisor_rpc.py [--calls 300] [--concurrency 10] [--tail 2000]
Prints p50/p99 per call of getAllProcessInfo (the state read behind /health) and of a stdout tail
(/logs), one call at a time and `concurrency` at once, and the ratio ServerProxy / ours.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import xmlrpc.client
from pathlib import Path

from bot.config.target_models import SupervisorConnection
from bot.targets.supervisor_rpc import SupervisorRPC

ENV_FILE = Path(__file__).resolve().parent.parent / "tests" / ".fleet.supervisor.env"


def fleet() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return dict(pairs)


async def timed(calls: int, concurrency: int, call) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    took: list[float] = []

    async def one():
        async with gate:
            started = time.perf_counter()
            await call()
            took.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(one() for _ in range(calls)))
    return took


def figures(took: list[float]) -> tuple[float, float]:
    ordered = sorted(took)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main(calls: int, concurrency: int, tail: int) -> None:
    env = fleet()
    os.environ["BENCH_SUP_USER"], os.environ["BENCH_SUP_PASSWORD"] = env["OPSBOT_FLEET_SUPERVISOR_USER"], env["OPSBOT_FLEET_SUPERVISOR_PASSWORD"]
    ours = SupervisorRPC(SupervisorConnection(url=env["OPSBOT_FLEET_SUPERVISOR_URL"], username_env="BENCH_SUP_USER", password_env="BENCH_SUP_PASSWORD"))
    authed = env["OPSBOT_FLEET_SUPERVISOR_URL"].replace("http://", f"http://{os.environ['BENCH_SUP_USER']}:{os.environ['BENCH_SUP_PASSWORD']}@")

    def proxy_call(method: str, *params):
        # A ServerProxy per call: it is not safe to share one across threads.
        return getattr(xmlrpc.client.ServerProxy(authed).supervisor, method)(*params)

    cases = {
        "getAllProcessInfo": (lambda: ours.call("supervisor.getAllProcessInfo"), lambda: asyncio.to_thread(proxy_call, "getAllProcessInfo")),
        f"tail {tail * 200} B": (
            lambda: ours.call("supervisor.tailProcessStdoutLog", "healthy:healthy", 0, tail * 200),
            lambda: asyncio.to_thread(proxy_call, "tailProcessStdoutLog", "healthy:healthy", 0, tail * 200),
        ),
    }
    print(f"{calls} calls per row, against {env['OPSBOT_FLEET_SUPERVISOR_URL']}")
    print(f"{'call':<22}{'at once':>8}{'ours p50':>10}{'ours p99':>10}{'proxy p50':>11}{'proxy p99':>11}{'p50 ratio':>11}")
    for name, (ours_call, proxy) in cases.items():
        for at_once in (1, concurrency):
            await timed(10, at_once, ours_call)  # warm up both
            await timed(10, at_once, proxy)
            a50, a99 = figures(await timed(calls, at_once, ours_call))
            b50, b99 = figures(await timed(calls, at_once, proxy))
            print(f"{name:<22}{at_once:>8}{a50:>9.2f}ms{a99:>9.2f}ms{b50:>10.2f}ms{b99:>10.2f}ms{b50 / a50:>10.2f}x")
    await ours.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--tail", type=int, default=2000, help="lines of a /logs tail (200 bytes each are asked for)")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrency, args.tail))
