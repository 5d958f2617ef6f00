"""/health fan-out: 50 checks, one of them slow. Wall time against the slowest check and against the sum.

Run: .venv/bin/python bench/health_fanout.py [--checks 50] [--slow 1.0] [--rounds 5]
Target: wall time within 1.1x of the slowest check.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from aiohttp import web

from bot.check.engine import CheckEngine
from bot.config.loader import parse_config
from bot.docker_engine import DockerGateway


async def start_server(slow: float, fast: float) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(slow if request.match_info["kind"] == "slow" else fast)
        return web.json_response({"status": "healthy"})

    app = web.Application()
    app.router.add_get("/{kind}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def config_text(port: int, checks: int) -> str:
    lines = ["services:"]
    for i in range(checks):
        path = "slow" if i == 0 else "fast"
        lines += [f"  s{i}:", "    checks:", "      - kind: http", f"        url: http://127.0.0.1:{port}/{path}", "        latency: {warn: 10s}"]
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=50)
    parser.add_argument("--slow", type=float, default=1.0, help="seconds the slow check takes")
    parser.add_argument("--fast", type=float, default=0.05, help="seconds each other check takes")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    runner, port = await start_server(args.slow, args.fast)
    config = parse_config(config_text(port, args.checks))
    engine = CheckEngine(DockerGateway())
    walls, slowest, sums = [], [], []
    try:
        await engine.run(config, list(config.services))  # warm-up: connection setup, imports
        for _ in range(args.rounds):
            started = time.perf_counter()
            results = await engine.run(config, list(config.services))
            walls.append(time.perf_counter() - started)
            latencies = [r.latency_ms / 1000 for r in results]
            slowest.append(max(latencies))
            sums.append(sum(latencies))
            assert all(r.status == "ok" for r in results), [r for r in results if r.status != "ok"]
    finally:
        await engine.close()
        await runner.cleanup()

    wall, slow, total = statistics.median(walls), statistics.median(slowest), statistics.median(sums)
    print(f"checks per run:        {args.checks} (one takes {args.slow:.2f} s, the others {args.fast:.2f} s)")
    print(f"rounds:                {args.rounds}")
    print(f"wall time (median):    {wall * 1000:.1f} ms")
    print(f"slowest check:         {slow * 1000:.1f} ms")
    print(f"sum of all checks:     {total * 1000:.1f} ms")
    print(f"wall / slowest:        {wall / slow:.3f}x  (target <= 1.1x)")
    print(f"wall / sum:            {wall / total:.3f}x")


if __name__ == "__main__":
    asyncio.run(main())
