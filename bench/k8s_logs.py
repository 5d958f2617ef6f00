"""How long does /logs take on a Kubernetes service with many pods, next to reading the same streams bare?

Starts the Kubernetes API double (tests/k8s_double.py) with one Deployment of P pods of two
containers, each container holding L log lines, then times:

  1. the adapter (bot/targets/kubernetes): list pods, read every (pod, container) stream with
     timestamps through kubernetes-asyncio, merge by time in a worker thread, keep the newest 5,000;
  2. a baseline in the same run: the same log requests with bare aiohttp, all lines sorted on the loop.

It reports p50/p99 of each, the ratio adapter/baseline, and the event loop's longest stall
during the adapter runs (a ticker every 5 ms; the merge must not block the loop; the double serves from
its own process, so the stall is the bot's alone).

    .venv/bin/python bench/k8s_logs.py [--pods 12] [--lines 2000] [--runs 20]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from k8s_double import K8sDouble  # noqa: E402

from bot.config.target_models import KubernetesConnection, KubernetesTarget  # noqa: E402
from bot.targets.base import LogQuery  # noqa: E402
from bot.targets.kubernetes import KubernetesAdapter  # noqa: E402

TAIL = 5000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def baseline(base: str, token: str, pods: list[str]) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def one(pod: str, container: str) -> list[str]:
            url = f"{base}/api/v1/namespaces/shop/pods/{pod}/log"
            async with session.get(url, params={"container": container, "timestamps": "true", "tailLines": str(TAIL)}) as response:
                return (await response.text()).splitlines()

        streams = await asyncio.gather(*(one(pod, c) for pod in pods for c in ("app", "proxy")))
    return len(sorted(line for stream in streams for line in stream)[-TAIL:])


async def serve(args) -> None:
    double = K8sDouble()
    await double.start()
    double.cluster.add_deployment("shop", "web", replicas=args.pods, containers=("app", "proxy"))
    for (_, pod) in list(double.cluster.pods):
        for container in ("app", "proxy"):
            for i in range(args.lines):
                double.cluster.write_log("shop", pod, container, f"GET /cart/{i} 200 user=u{i % 97} took {i % 300} ms", ago=args.lines - i)
    kubeconfig = double.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
    print(double.url, double.token, kubeconfig, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await double.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=12)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help="(internal) run the double until stdin closes")
    args = parser.parse_args()
    if args.serve:
        await serve(args)
        return

    # The double serves from a process of its own, so the stall measured is the bot's alone.
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--pods", str(args.pods), "--lines", str(args.lines)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url, token, kubeconfig = child.stdout.readline().split()
    adapter = KubernetesAdapter(KubernetesConnection(kubeconfig=str(kubeconfig)))
    target = KubernetesTarget(namespace="shop", deployment="web")

    stall = 0.0
    ticking = True

    async def ticker() -> None:
        nonlocal stall
        last = time.perf_counter()
        while ticking:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stall = max(stall, now - last - 0.005)
            last = now

    await adapter.logs(target, LogQuery(tail=TAIL))  # warm: client, schemas, connections
    pods = [p.metadata.name for p in await adapter.list_pods(target, {"app": "web"})]
    await baseline(url, token, pods)
    ours, bare = [], []
    tick = asyncio.create_task(ticker())
    for _ in range(args.runs):
        started = time.perf_counter()
        read = await adapter.logs(target, LogQuery(tail=TAIL))
        ours.append(time.perf_counter() - started)
    ticking = False
    await tick
    for _ in range(args.runs):
        started = time.perf_counter()
        await baseline(url, token, pods)
        bare.append(time.perf_counter() - started)
    await adapter.close()
    child.stdin.close()
    child.wait(10)

    streams = args.pods * 2
    print(f"{streams} streams x {args.lines} lines, newest {TAIL} kept ({len(read.lines)} returned), {args.runs} runs")
    print(f"adapter   p50 {statistics.median(ours) * 1000:7.1f} ms   p99 {percentile(ours, 0.99) * 1000:7.1f} ms")
    print(f"baseline  p50 {statistics.median(bare) * 1000:7.1f} ms   p99 {percentile(bare, 0.99) * 1000:7.1f} ms")
    print(f"ratio adapter/baseline p50 {statistics.median(ours) / statistics.median(bare):.2f}x")
    print(f"longest event-loop stall during the adapter runs: {stall * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
