"""systemd targets: the bot's paths against the obvious alternatives, on the same test systemd in the same run.

Reads tests/.fleet.systemd.env (scripts/test-env.sh boots this checkout's systemd container).
Run: .venv/bin/python bench/systemd.py [--reads 200] [--restarts 20] [--tail 5000]
Prints p50/p99 (ms) and the ratio baseline / ours for:
- state: the unit's properties over dbus-fast (the /health read) vs `busctl call ... GetAll` per read
  (what shelling out to systemd's own client would cost);
- restart: RestartUnit until the job's result is known, from the JobRemoved signal vs polling the
  unit's Job property every 100 ms (an implementation without signals);
- logs: /logs --tail N of opsbot-web's journal (journalctl -o json, parsed in a worker thread) vs
  `journalctl -o cat` (text, nothing parsed), and the event loop's worst stall during our reads.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from pathlib import Path

from bot.config.target_models import SystemdConnection, SystemdTarget
from bot.targets.base import LogQuery
from bot.targets.systemd import SystemdAdapter

ENV_FILE = Path(__file__).resolve().parent.parent / "tests" / ".fleet.systemd.env"
UNIT = "opsbot-web.service"


def fleet() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return dict(pairs)


def figures(name: str, ours: list[float], baseline: list[float], baseline_name: str) -> None:
    def p(values, q):
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]

    print(f"{name:8} ours p50 {p(ours, 50):8.2f} p99 {p(ours, 99):8.2f} | {baseline_name:26} p50 {p(baseline, 50):8.2f} p99 {p(baseline, 99):8.2f}"
          f" | ratio p50 {p(baseline, 50) / p(ours, 50):5.2f}x")


async def timed(times: int, call) -> list[float]:
    took = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return took


async def run_busctl(bus: str, path: str) -> None:
    """The same two GetAll reads as ours (the unit's and its service's properties), one busctl each."""
    for interface in ("org.freedesktop.systemd1.Unit", "org.freedesktop.systemd1.Service"):
        process = await asyncio.create_subprocess_exec(
            "busctl", f"--address={bus}", "call", "org.freedesktop.systemd1", path,
            "org.freedesktop.DBus.Properties", "GetAll", "s", interface, stdout=subprocess.DEVNULL,
        )
        await process.wait()


async def restart_polling(adapter: SystemdAdapter) -> None:
    [job] = await adapter.bus.call("RestartUnit", "ss", [UNIT, "replace"])
    [path] = await adapter.bus.call("GetUnit", "s", [UNIT])
    while True:
        [value] = await adapter.bus.call("Get", "ss", ["org.freedesktop.systemd1.Unit", "Job"], path=path, interface="org.freedesktop.DBus.Properties")
        if value.value[1] != job:
            return
        await asyncio.sleep(0.1)


async def restart_signal(adapter: SystemdAdapter) -> None:
    job = await adapter.bus.start_job("RestartUnit", UNIT)
    await job.done


async def loop_stall(during) -> tuple[list[float], float]:
    """Runs `during`, sampling the loop every 5 ms: (its result, the worst lateness in ms)."""
    worst, running = 0.0, True

    async def sampler():
        nonlocal worst
        while running:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, (time.perf_counter() - started - 0.005) * 1000)

    task = asyncio.create_task(sampler())
    result = await during
    running = False
    await task
    return result, worst


async def main(args) -> None:
    env = fleet()
    bus, journal = env["OPSBOT_FLEET_SYSTEMD_BUS"], env["OPSBOT_FLEET_SYSTEMD_JOURNAL"]
    adapter = SystemdAdapter(SystemdConnection(bus=bus, journal_directory=journal))
    target = SystemdTarget(unit=UNIT)
    [unit_path] = await adapter.bus.call("GetUnit", "s", [UNIT])

    ours = await timed(args.reads, lambda: adapter.properties(target))
    baseline = await timed(args.reads, lambda: run_busctl(bus, unit_path))
    figures("state", ours, baseline, "busctl subprocess")

    ours = await timed(args.restarts, lambda: restart_signal(adapter))
    baseline = await timed(args.restarts, lambda: restart_polling(adapter))
    figures("restart", ours, baseline, "poll Job every 100 ms")

    query = LogQuery(tail=args.tail)
    lines = len((await adapter.logs(target, query)).lines)
    ours, stall = await loop_stall(timed(20, lambda: adapter.logs(target, query)))

    async def plain():
        process = await asyncio.create_subprocess_exec(
            "journalctl", "--no-pager", "-q", "-o", "cat", f"--unit={UNIT}", f"--lines={args.tail}", f"--directory={journal}", stdout=subprocess.DEVNULL
        )
        await process.wait()

    baseline = await timed(20, plain)
    figures("logs", ours, baseline, "journalctl -o cat")
    _, idle = await loop_stall(asyncio.sleep(sum(ours) / 1000))  # the machine's own noise, as long as our reads took
    print(f"logs: {lines} lines per read; worst event-loop stall during our reads {stall:.1f} ms (idle loop, same time: {idle:.1f} ms)")
    await adapter.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--tail", type=int, default=5000)
    asyncio.run(main(parser.parse_args()))
