"""bench/escalation_scale.py's paced run: pages under chat.postMessage's per-channel limit.

500 open incidents (by default) with random severities P0..P3 whose first pages fall due within
5 s, in 50 shared incident channels (their `headline_channel`: ten pages a channel), paged by the
same two replicas, the double holding each channel to one post a second after a burst of 2 and
answering the rest 429 with Retry-After. Each level pages a Slack user group (`group:`), which
Slack notifies from the channel post: one chat.postMessage per page, no direct message, so what is
measured is the incident channels alone (the throughput runs cover direct messages).

From the double's record (every call, its status and Retry-After) and the timeline:

- lost and doubled: first pages without a 200 post, and posts beyond one per page;
- inversions: a page whose turn in its channel came (its first call) while a page of higher
  severity for that channel had been waiting (its timeline entry, written just before it is
  handed to the pacer, at least MARGIN older than that first call) and went later;
- interleaved: another page's call between a page's first call and its 200 (one in flight per channel);
- lateness (the 200 minus the due time) against the time its channel was held by Retry-After
  between the two: the union of [429, 429 + Retry-After] of that channel's refusals. What is
  left, "unexplained", is the scheduler's pick-up and the round trips, plus the random 0-1 s
  slack-sdk's retry handler adds to each Retry-After it waits out (reported as the jitter: the
  time from a 429's Retry-After to the channel's next call).
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict

from page_rig import ms, percentile

SEVERITIES = ("P0", "P1", "P2", "P3")
MARGIN = 0.05  # s: an entry this much older than a turn's first call was in the pacer's queue by then
CONFIG = """
version: 1
roles:
  ops: {users: [U0OPS0001]}
severities:
  P0: {respond_within: 15m, escalation: [{group: S0PAGEP0, name: P0 on-call, repeat_every: 5m, max_repeats: 2}]}
  P1: {respond_within: 30m, escalation: [{group: S0PAGEP1, name: P1 on-call, repeat_every: 10m, max_repeats: 2}]}
  P2: {respond_within: 4h, escalation: [{group: S0PAGEP2, name: P2 on-call}]}
  P3: {respond_within: 1d, escalation: [{group: S0PAGEP3, name: P3 on-call}]}
"""


def incidents(count: int, channels: int, seed: int) -> list[dict]:
    """Incident n in channel n mod `channels` (ten a channel for 500 over 50), a random severity each."""
    rng = random.Random(seed)
    return [{"severity": rng.choice(SEVERITIES), "channel_id": None, "headline_channel": f"CPACE{n % channels:04d}"}
            for n in range(1, count + 1)]


def _measure(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of `intervals` (sorted by start) within [start, end]."""
    total, reach = 0.0, start
    for a, b in intervals:
        a, b = max(a, reach), min(b, end)
        if b > a:
            total += b - a
            reach = b
    return total


def analyse(raw: dict, specs: list[dict]) -> dict:
    due = raw["due"]
    rank = {n: SEVERITIES.index(spec["severity"]) for n, spec in enumerate(specs, start=1)}
    channel = {n: spec["headline_channel"] for n, spec in enumerate(specs, start=1)}
    posts = [(at, ch, n, status, retry) for method, ch, n, at, status, retry in raw["calls"] if method == "chat.postMessage" and n is not None]
    posts.sort()
    delivered: dict[int, list[float]] = defaultdict(list)
    first_call: dict[int, float] = {}
    by_channel: dict[str, list[tuple[float, int, int, int]]] = defaultdict(list)
    for at, ch, n, status, retry in posts:
        first_call.setdefault(n, at)
        by_channel[ch].append((at, n, status, retry))
        if status == 200:
            delivered[n].append(at)
    wrong_channel = sum(1 for _, ch, n, _, _ in posts if ch != channel[n])
    entries = defaultdict(list)
    for incident, at, data in raw["entries"]:
        entries[incident].append((at.timestamp(), data))
    waiting_since = {n: min(at for at, _ in found) for n, found in entries.items()}
    entry_delivered = Counter(n for n, found in entries.items() for _, data in found if data.get("delivered"))

    # Holds: [429, 429 + Retry-After] per channel; jitter: from that end to the channel's next call.
    holds: dict[str, list[tuple[float, float]]] = defaultdict(list)
    jitter, interleaved = [], 0
    for ch, seq in by_channel.items():
        for i, (at, n, status, retry) in enumerate(seq):
            if status == 429:
                holds[ch].append((at, at + retry))
                if i + 1 < len(seq):
                    jitter.append(seq[i + 1][0] - (at + retry))
            if i and seq[i - 1][1] != n and seq[i - 1][2] != 200:
                interleaved += 1  # the one before was refused, and another page went before its retry

    inversions, inverted_pairs = [], 0
    for ch, seq in by_channel.items():
        pages = {n for _, n, _, _ in seq}
        for n in pages:
            start = first_call[n]
            before = [m for m in pages if rank[m] < rank[n] and m in waiting_since and waiting_since[m] + MARGIN < start
                      and first_call[m] > start]
            if before:
                inversions.append((ch, n, before))
                inverted_pairs += len(before)

    lateness, unexplained, by_severity = {}, {}, defaultdict(list)
    for n, times in delivered.items():
        went = min(times)
        lateness[n] = went - due[n]
        unexplained[n] = lateness[n] - _measure(holds[channel[n]], due[n], went)
        by_severity[SEVERITIES[rank[n]]].append((lateness[n], unexplained[n]))
    sends = sorted(min(t) for t in delivered.values())
    refused = [p for p in posts if p[3] == 429]
    return {
        "pages": len(due), "delivered": len(delivered), "lost": len(set(due) - set(delivered)),
        "doubled": sum(len(t) - 1 for t in delivered.values()),
        "entries_delivered": sum(entry_delivered.values()), "entries_doubled": sum(c - 1 for c in entry_delivered.values() if c > 1),
        "wrong_channel": wrong_channel, "interleaved": interleaved, "inversions": inversions, "inverted_pairs": inverted_pairs,
        "channels": len(by_channel), "refused": len(refused), "retry_after": Counter(p[4] for p in refused),
        "held_by_pacer": raw["held"], "jitter": sorted(jitter),
        "lateness": sorted(lateness.values()), "unexplained": sorted(unexplained.values()),
        "by_severity": {s: (sorted(l for l, _ in v), sorted(u for _, u in v)) for s, v in sorted(by_severity.items())},
        "first_due": min(due.values()), "last_due": max(due.values()), "last_sent": sends[-1] if sends else float("nan"),
        "cpu": raw["cpu"], "job_states": raw["job_states"],
    }


def _row(values: list[float]) -> str:
    return f"{ms(percentile(values, 50))} | {ms(percentile(values, 99))} | {ms(values[-1] if values else float('nan'))}"


def report(stats: dict, args, replicas: int) -> None:
    print(f"\n## under Slack's limit, {replicas} replica{'s' if replicas > 1 else ''}: {stats['pages']} incidents over "
          f"{stats['channels']} channels, 1 post/s per channel after a burst of {args.paced_burst}, first pages due over "
          f"{args.paced_spread:g} s")
    print(f"first pages delivered {stats['delivered']} of {stats['pages']}: lost {stats['lost']}, doubled {stats['doubled']}; "
          f"timeline entries marked delivered {stats['entries_delivered']} (twice: {stats['entries_doubled']}); first-page jobs "
          f"{stats['job_states']}; posts to another channel than the incident's {stats['wrong_channel']}")
    print(f"429s answered {stats['refused']} (Retry-After {dict(stats['retry_after'])}); the pacer itself waited "
          f"{stats['held_by_pacer']:.0f} s (429s left after slack-sdk's 3 retries); calls interleaved within a page's turn "
          f"{stats['interleaved']}")
    print(f"severity inversions: {len(stats['inversions'])} pages went while a more severe page of their channel waited "
          f"({stats['inverted_pairs']} pairs; waiting = timeline entry more than {ms(0.05)} before the turn's first call)")
    for ch, n, before in stats["inversions"][:5]:
        print(f"  {ch}: INC-{n} went before {', '.join(f'INC-{m}' for m in sorted(before))}")
    lat, unx, jit = stats["lateness"], stats["unexplained"], stats["jitter"]
    print(f"lateness p50 {ms(percentile(lat, 50))}  p99 {ms(percentile(lat, 99))}  max {ms(lat[-1])}; minus the time the "
          f"channel was held by Retry-After: p50 {ms(percentile(unx, 50))}  p99 {ms(percentile(unx, 99))}  max {ms(unx[-1])}")
    print(f"from a Retry-After's end to the channel's next call (slack-sdk's random 0-1 s, and the round trip): p50 "
          f"{ms(percentile(jit, 50))}  p99 {ms(percentile(jit, 99))}  max {ms(jit[-1] if jit else float('nan'))}")
    for severity, (late, left) in stats["by_severity"].items():
        print(f"  {severity} ({len(late)} pages): lateness {_row(late)}; unexplained {_row(left)}")
    print(f"run: last page sent {stats['last_sent'] - stats['first_due']:.1f} s after the first fell due (the last fell due at "
          f"+{stats['last_due'] - stats['first_due']:.1f} s); bot CPU {stats['cpu'] / max(1, stats['delivered']) * 1000:.2f} ms per page")


def table(runs: dict[int, dict], args) -> None:
    """`runs`: the stats by number of replicas."""
    print("\n| replicas | severity | pages | lateness p50 | p99 | max | minus Retry-After holds p50 | p99 | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for replicas, stats in runs.items():
        for severity, (late, left) in stats["by_severity"].items():
            print(f"| {replicas} | {severity} | {len(late)} | {_row(late)} | {_row(left)} |")
        print(f"| {replicas} | all | {len(stats['lateness'])} | {_row(stats['lateness'])} | {_row(stats['unexplained'])} |")
    print()
    for replicas, stats in runs.items():
        print(f"{replicas} replica{'s' if replicas > 1 else ''}: {stats['pages']} pages over {stats['channels']} channels (1 post/s "
              f"each, burst {args.paced_burst}): lost {stats['lost']}, doubled {stats['doubled']}, severity inversions "
              f"{len(stats['inversions'])}, 429s {stats['refused']}; the last page went {stats['last_sent'] - stats['first_due']:.1f} s "
              f"after the first fell due; bot CPU {stats['cpu'] / max(1, stats['delivered']) * 1000:.2f} ms per page.")
