"""Does a flood of hostile requests slow the bot down for everyone else?

A security review found that one unsigned 64 KB POST of letters kept `/healthz` waiting
9.8 s (redaction of the logged body backtracked on the event loop). This script starts
the real `opsbot serve` (HTTP mode, SQLite) against the Slack Web API double, probes
`GET /healthz` while idle (the baseline), then again while attackers POST 1 MB hostile
bodies to `/slack/events` (unsigned, and signed but malformed) as fast as they are
answered, and prints p50/p99/max of both and their ratio. Target: `/healthz` p99 under
100 ms during the flood.

    .venv/bin/python bench/hostile_edge.py [--probes 300] [--attackers 4]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ack_latency import BOT_TOKEN, OPSBOT, SIGNING_SECRET, bench_workdir, free_port, percentile, start, stop, wait_healthy  # noqa: E402
from slack_double import SlackDouble  # noqa: E402  (ack_latency put tests/ on the path)
from slack_signing import sign  # noqa: E402

MEGABYTE = 1_000_000
HOSTILE = {
    "letters": b"a" * MEGABYTE,
    "key storm": b"key" * (MEGABYTE // 3),
    ":// storm": b"://" * (MEGABYTE // 3),
    ":@ storm": b":@" * (MEGABYTE // 2),
    "password= storm": b"password=" * (MEGABYTE // 9),
    "deep JSON": b"[" * (MEGABYTE // 2) + b"]" * (MEGABYTE // 2),
}


async def probe(url: str, count: int) -> list[float]:
    latencies = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            started = time.perf_counter()
            async with http.get(f"{url}/healthz") as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)
    return sorted(latencies)


async def attack(url: str, stop_at: asyncio.Event, statuses: Counter, signed: bool) -> None:
    async with aiohttp.ClientSession() as http:
        for name in itertools.cycle(HOSTILE):
            if stop_at.is_set():
                return
            body = HOSTILE[name]
            content_type = "application/json" if name == "deep JSON" else "application/x-www-form-urlencoded"
            headers = {"Content-Type": content_type, **(sign(SIGNING_SECRET, body) if signed else {})}
            async with http.post(f"{url}/slack/events", data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1


async def main(probes: int, attackers: int) -> None:
    double = SlackDouble(bot_token=BOT_TOKEN)
    await double.start()
    workdir, env = bench_workdir(double)
    port = free_port()
    server = await start([str(OPSBOT), "serve", "--host", "127.0.0.1", "--port", str(port), "--config", str(workdir / "app.yaml")], env, workdir)
    url = f"http://127.0.0.1:{port}"
    statuses: Counter = Counter()
    try:
        await wait_healthy(url, server)
        await asyncio.sleep(1.0)
        idle = await probe(url, probes)
        stop_at = asyncio.Event()
        flood = [asyncio.create_task(attack(url, stop_at, statuses, signed=i % 2 == 1)) for i in range(attackers)]
        await asyncio.sleep(0.5)  # the flood is under way before the first probe
        started = time.perf_counter()
        flooded = await probe(url, probes)
        wall = time.perf_counter() - started
        stop_at.set()
        await asyncio.gather(*flood)
    finally:
        await stop(server)
        await double.stop()

    print(f"/healthz while idle and during a flood of 1 MB hostile bodies ({attackers} attackers, half signed)")
    print(f"{'phase':<8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in (("idle", idle), ("flood", flooded)):
        print(f"{name:<8} {percentile(values, 50) * 1000:8.2f} {percentile(values, 99) * 1000:8.2f} {values[-1] * 1000:8.2f}")
    print(f"ratio flood/idle: p50 {percentile(flooded, 50) / percentile(idle, 50):.2f}x, p99 {percentile(flooded, 99) / percentile(idle, 99):.2f}x")
    total = sum(statuses.values())
    print(f"hostile requests answered: {total} in {wall:.1f} s ({total / wall:.0f}/s, {total * MEGABYTE / wall / 1e6:.0f} MB/s); statuses {dict(sorted(statuses.items()))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--attackers", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.probes, args.attackers))
