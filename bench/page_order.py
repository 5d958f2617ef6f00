"""bench/escalation_scale.py's paced run: pages under chat.postMessage's per-channel limit.

500 open incidents (by default) with random severities P0..P3 whose first pages fall due within
1 s, in 50 shared incident channels (their `headline_channel`: ten pages a channel), paged by one
replica, then two, the double holding each channel to one post a second after a burst of 2 and
answering the rest 429 with Retry-After; then the same at 0.2 posts a second, a limit that binds
however slowly a busy machine pages (at 1/s a channel is only held while the bot keeps up with it). Each level pages a Slack user group (`group:`), which
Slack notifies from the channel post: one chat.postMessage per page, no direct message, so what is
measured is the incident channels alone (the throughput runs cover direct messages).

From the double's record (every call, its status and Retry-After) and the timeline:

- lost and doubled: first pages without a 200 post, and posts beyond one per page;
- inversions: a page whose turn in its channel came (its first call) while a page of higher
  severity for that channel had been waiting (handed to the messenger, page_rig.RecordingMessenger,
  at least MARGIN before that first call) and went later;
- interleaved: another page's call between a page's first call and its 200 (one in flight per channel);
- lateness (the 200 minus the due time) against the time its channel was held by Retry-After
  between the two: the union of [429, 429 + Retry-After] of that channel's refusals. What is
  left, "unexplained", is the scheduler's pick-up, the database and the round trips (the time
  from a 429's Retry-After end to the channel's next call is reported too: slack-sdk's retry
  handler added a random 0-1 s there before posts left their 429s to the pacer).
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict

from page_rig import ms, percentile

SEVERITIES = ("P0", "P1", "P2", "P3")
MARGIN = 0.005  # s: a post handed to the messenger this much before a turn's first call was in the pacer's queue by then
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
    waiting_since = {n: raw["handed"][(channel[n], n)] for n in due if (channel[n], n) in raw["handed"]}
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

    # Lateness = before the messenger (the scheduler's pick-up, the database: the bot's own pace) +
    # in it (the channel's queue and Slack); of the latter, what the channel's Retry-After holds leave.
    lateness, unexplained, by_severity = {}, {}, defaultdict(list)
    for n, times in delivered.items():
        went, handed = min(times), waiting_since.get(n, due[n])
        lateness[n] = went - due[n]
        unexplained[n] = went - handed - _measure(holds[channel[n]], handed, went)
        by_severity[SEVERITIES[rank[n]]].append((lateness[n], handed - due[n], went - handed, unexplained[n]))
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
        "by_severity": {s: [sorted(column) for column in zip(*v)] for s, v in sorted(by_severity.items())},
        "before": sorted(v[1] for rows in by_severity.values() for v in rows), "queued": sorted(v[2] for rows in by_severity.values() for v in rows),
        "first_due": min(due.values()), "last_due": max(due.values()), "last_sent": sends[-1] if sends else float("nan"),
        "cpu": raw["cpu"], "job_states": raw["job_states"],
    }


def _row(values: list[float]) -> str:
    return f"{ms(percentile(values, 50))} | {ms(percentile(values, 99))} | {ms(values[-1] if values else float('nan'))}"


def report(stats: dict, args, label: str) -> None:
    print(f"\n## under Slack's limit, {label}: {stats['pages']} incidents over {stats['channels']} channels, first pages due "
          f"over {args.paced_spread:g} s")
    print(f"first pages delivered {stats['delivered']} of {stats['pages']}: lost {stats['lost']}, doubled {stats['doubled']}; "
          f"timeline entries marked delivered {stats['entries_delivered']} (twice: {stats['entries_doubled']}); first-page jobs "
          f"{stats['job_states']}; posts to another channel than the incident's {stats['wrong_channel']}")
    print(f"429s answered {stats['refused']} (Retry-After {dict(stats['retry_after'])}); the pacers waited them out, "
          f"{stats['held_by_pacer']:.0f} s in all; calls interleaved within a page's turn "
          f"{stats['interleaved']}")
    print(f"severity inversions: {len(stats['inversions'])} pages went while a more severe page of their channel waited "
          f"({stats['inverted_pairs']} pairs; waiting = handed to the messenger more than {ms(MARGIN)} before the turn's first call)")
    for ch, n, before in stats["inversions"][:5]:
        print(f"  {ch}: INC-{n} went before {', '.join(f'INC-{m}' for m in sorted(before))}")
    lat, unx, jit = stats["lateness"], stats["unexplained"], stats["jitter"]
    print(f"lateness {_row(lat)} (p50 | p99 | max); before the messenger (scheduler, database) {_row(stats['before'])}; in it "
          f"(the channel's queue, Slack) {_row(stats['queued'])}; of that, left once the channel's Retry-After holds are taken "
          f"out: {_row(unx)}")
    print(f"from a Retry-After's end to the channel's next call: {_row(jit)}")
    for severity, (late, before, queued, left) in stats["by_severity"].items():
        print(f"  {severity} ({len(late)} pages): lateness {_row(late)}; in the messenger {_row(queued)}; minus holds {_row(left)}")
    print(f"run: last page sent {stats['last_sent'] - stats['first_due']:.1f} s after the first fell due (the last fell due at "
          f"+{stats['last_due'] - stats['first_due']:.1f} s); bot CPU {stats['cpu'] / max(1, stats['delivered']) * 1000:.2f} ms per page")


def table(runs: dict[str, dict], args) -> None:
    """`runs`: the stats by a label (replicas, limit)."""
    print("\n| run | severity | pages | lateness p50 | p99 | max | in the messenger p50 | p99 | minus Retry-After holds p50 | p99 | max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, stats in runs.items():
        for severity, (late, _, queued, left) in stats["by_severity"].items():
            print(f"| {label} | {severity} | {len(late)} | {_row(late)} | {ms(percentile(queued, 50))} | {ms(percentile(queued, 99))} | "
                  f"{_row(left)} |")
    print()
    for label, stats in runs.items():
        print(f"{label}: {stats['pages']} pages over {stats['channels']} channels: lost {stats['lost']}, doubled {stats['doubled']}, "
              f"severity inversions {len(stats['inversions'])}, 429s {stats['refused']}; the last page went "
              f"{stats['last_sent'] - stats['first_due']:.1f} s after the first fell due; bot CPU "
              f"{stats['cpu'] / max(1, stats['delivered']) * 1000:.2f} ms per page.")
