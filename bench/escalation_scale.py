"""Escalation at scale: 10,000 open incidents whose first pings fall due within one minute, paged by
two scheduler replicas on one PostgreSQL database; then the same with one replica killed half-way.

Real: a fresh PostgreSQL database (created here, dropped at the end), two `Bot` objects in this
process (each its own engine, Database and Scheduler on the wall clock), and the real
`incident.ping` handler (`bot.incident.escalation.run_ping`: timeline entry, the invitation to the
incident's channel, the ping there, a direct message to the on-call, the delivered mark) posting
through `SlackWorkspaceMessenger(web_client(settings))`, as `opsbot serve` wires it.

Slack is the Web API double of tests/slack_double.py in a child process (bench/page_rig.py), and
lateness is measured there: when the double received a ping's channel message minus its due time.

Reported per run: lateness p50/p99/max, pings sent more than once, statements per scheduler tick
(one claim and the recovery, wake-up and periodic look-ups around it) and per ping (a SQLAlchemy
`before_cursor_execute` listener on each engine), throughput, CPU per ping. In the kill run one
replica's task is cancelled at half time, while it holds claimed jobs, without the clean release
(what SIGKILL leaves: its rows stay `running`); the survivor takes them back when their lease runs
out, and that recovery is timed.

Tuning: 10,000 pings a minute is 167 a second. A ping is a chain of awaited calls (two
transactions and a look-up in PostgreSQL, four Slack calls, the job's end), each waiting its turn
on a busy event loop, so the rate is bound by how many pings run at once: with a batch of 16 per
replica this machine sent about 120 a second and fell seconds behind; 64, which the Bot gives
its Scheduler, keeps up. The ping's lease is cut from 2 minutes to 10 seconds here
only so that the kill run's recovery fits in the run; the recovery takes the lease, whatever it is.

    .venv/bin/python bench/escalation_scale.py [--incidents 10000] [--spread 60] [--batch 64] [--poll 5] [--lease 10]
        [--paced 500] [--paced-channels 50] [--paced-burst 2] [--profile FILE]

The throughput runs measure the bot's own cost, not Slack's limit. Their pages also go to an
on-call's direct-message channel: with one on-call for all 10,000 the bot itself sends that
channel's posts one at a time (bot/transport/pacing.py), and Slack would take one a second, so the
incidents are spread over 50 identical P0 severities, each paging its own rotation's on-call, and
the double's per-channel limit is raised out of reach for these runs (said so in the output).
The paced run (bench/page_order.py) measures behaviour under the limit: 500 incidents of random
severity whose first pages fall due within 1 s, posted to 50 shared incident channels by one
replica and then two, the double holding each channel to one post a second after a small burst
(and again at 0.2 a second: see bench/page_order.py).

`calls` first measures this process's CPU per post through SlackMessenger with its calls sharing
one aiohttp session, against slack-sdk's session and connection per call, in the same run.

`--profile FILE`: cProfile over the normal throughput run (this process: both replicas; CPU time,
not wall time, so a busy machine's waits do not count), for `python -m pstats FILE`; the figures
of a profiled run are the profiler's, not the bot's.

No assert on time: it prints figures, and Markdown tables to paste into docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, insert, select, text

from page_rig import (DoubleProcess, cpu_seconds, fresh_database, load_average, machine_busy, make_replica, monitor_bot, ms,
                      percentile, post_cost, reset_tables, serve_double)
import page_order  # noqa: E402

from bot.app import Bot  # noqa: E402
from bot.incident.models import Incident, IncidentState, TimelineEntry  # noqa: E402
from bot.incident.planning import PING, ping_key, planned_pings  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.schedule.models import JobState, ScheduledJob  # noqa: E402

ON_CALLS = 50  # the throughput runs' pages go to 50 on-calls' direct-message channels, not one (see above)
UNLIMITED = {"per_second": 1e9, "burst": 1_000_000}  # the throughput runs: Slack's limit out of the way (see above)


def throughput_config(on_calls: int) -> str:
    """A P0 as runbook 003 has it (the on-call now and every 5 minutes, then the DevOps lead), once per
    on-call: severity P0-07 pages rotation oncall-07. Only the first pings fall due during the run; the
    repeats and the lead's level wait in the table, as they would."""
    lines = ["version: 1", "roles:", "  ops: {users: [U0OPS0001]}", "  devops-lead: {users: [U0LEAD001]}", "oncall:"]
    lines += [f"  oncall-{k:02d}: {{members: [U0ONCALL{k:02d}], shift: 7d, starts: 2026-01-05}}" for k in range(on_calls)]
    lines.append("severities:")
    for k in range(on_calls):
        lines += [f"  P0-{k:02d}:", "    respond_within: 15m", "    escalation:",
                  f"      - {{rotation: oncall-{k:02d}, repeat_every: 5m, max_repeats: 2}}",
                  "      - {role: devops-lead, name: DevOps lead, repeat_every: 5m, max_repeats: 3}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- one run


async def load_incidents(bot: Bot, specs: list[dict], spread: float, lead: float) -> datetime:
    """One open incident per spec (its severity, channel_id, headline_channel), each with its whole plan
    in scheduled_jobs as planning.plan writes it; the first pings due evenly over `spread` seconds,
    from `lead` seconds after the rows are in."""
    far = datetime.now(timezone.utc) + timedelta(days=1)  # written ahead, then moved to t0 in one statement
    step = spread / len(specs)
    incidents, jobs = [], []
    for n, spec in enumerate(specs, start=1):
        opened = far + timedelta(seconds=(n - 1) * step)
        incidents.append({
            "id": n, "title": f"checkout errors {n}", "severity": spec["severity"], "state": IncidentState.open, "services": [],
            "description": "", "playbook": None, "opened_by": "U0OPS0001", "opened_at": opened, "transport": "slack", "team": "T0TEST",
            "summary": "", "channel_id": spec["channel_id"], "headline_channel": spec["headline_channel"], "escalation_plan": 1,
            "escalation_level": 0, "updated_at": opened,
        })
        for ping in planned_pings(bot.config.severity(spec["severity"])[1], bot.config, opened):
            payload = {"incident": n, "plan": 1, "level": ping.level, "repeat": ping.repeat, "forced": False}
            jobs.append({"kind": PING, "key": ping_key(n, 1, ping.level, ping.repeat), "due_at": ping.due, "payload": payload,
                         "state": JobState.pending, "attempts": 0, "late": False, "error": ""})
    async with bot.db.sessions() as session, session.begin():
        for chunk in range(0, len(incidents), 2000):
            await session.execute(insert(Incident.__table__), incidents[chunk:chunk + 2000])
        for chunk in range(0, len(jobs), 5000):
            await session.execute(insert(ScheduledJob.__table__), jobs[chunk:chunk + 5000])
        await session.execute(text("SELECT setval('incidents_id_seq', :n)"), {"n": len(specs)})
        await session.execute(text("ANALYZE scheduled_jobs"))
    t0 = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=lead + 1)
    moved = {"s": (far - t0).total_seconds()}
    async with bot.db.sessions() as session, session.begin():
        await session.execute(text("UPDATE scheduled_jobs SET due_at = due_at - make_interval(secs => :s)"), moved)
        await session.execute(text("UPDATE incidents SET opened_at = opened_at - make_interval(secs => :s), "
                                   "updated_at = updated_at - make_interval(secs => :s)"), moved)
    return t0


async def run_once(url: str, double: DoubleProcess, args, *, config: str, specs: list[dict], spread: float, limit: dict,
                   kill: bool = False, profile: cProfile.Profile | None = None, replicas: int = 2) -> dict:
    """Load the incidents, run both replicas until every first page is delivered; what the double
    received, the first pages' due times, the timeline's ping entries, CPU and statement counts."""
    await double.reset(**limit)
    await reset_tables(url)
    replicas = [make_replica(name, url, double.api_url, config, args) for name in ("replica-a", "replica-b")[:replicas]]
    monitor = monitor_bot(url, config)
    t0 = await load_incidents(monitor, specs, spread, args.lead)
    async with monitor.db.sessions() as session:
        rows = (await session.execute(select(ScheduledJob.key, ScheduledJob.due_at).where(ScheduledJob.key.like(f"{PING}:%:1:0:0")))).all()
    due = {int(key.split(":")[1]): at.timestamp() for key, at in rows}
    for replica in replicas:
        replica.counter.counts.clear()
    if profile is not None:
        profile.enable()
    cpu_before, double_before, machine_before = time.process_time(), cpu_seconds(double.pid), machine_busy()
    for replica in replicas:
        replica.scheduler.start()

    killed = {"at": None, "claimed": [], "taken_back_at": None, "done_at": None}
    try:
        if kill:
            victim = replicas[0].scheduler
            await asyncio.sleep(max(0.0, t0.timestamp() + spread / 2 - time.time()))
            for _ in range(400):  # kill it while it holds claimed jobs, as a crash under load would
                if victim.in_flight:
                    break
                await asyncio.sleep(0.005)
            victim._task.cancel()  # no stop(): nothing handed back, the rows stay running
            try:
                await victim._task
            except asyncio.CancelledError:
                pass
            killed["at"] = time.time()
            async with monitor.db.sessions() as session:
                killed["claimed"] = list((await session.scalars(select(ScheduledJob.key).where(
                    ScheduledJob.state == JobState.running, ScheduledJob.claimed_by == victim.replica))).all())
        delivered = await wait_delivered(monitor, len(specs), spread + args.lead + args.lease + 240, killed)
    finally:
        for replica in replicas:
            await replica.scheduler.stop()
    cpu = time.process_time() - cpu_before
    if profile is not None:
        profile.disable()
    double_cpu = cpu_seconds(double.pid) - double_before
    machine_after = machine_busy()
    async with monitor.db.sessions() as session:
        entries = (await session.execute(select(TimelineEntry.incident_id, TimelineEntry.at, TimelineEntry.data).where(
            TimelineEntry.kind == "ping"))).all()
        job_states = Counter(s.value for s in (await session.scalars(select(ScheduledJob.state).where(
            ScheduledJob.key.like(f"{PING}:%:1:0:0")))).all())
        marked_late = await session.scalar(select(func.count()).select_from(ScheduledJob).where(ScheduledJob.late.is_(True)))
        errors = Counter(e[:80] for e in (await session.scalars(select(ScheduledJob.error).where(ScheduledJob.error != ""))).all())
    raw = {"job_states": dict(job_states), "errors": dict(errors.most_common(5)), "marked_late": marked_late, "calls": await double.calls(), "due": due, "entries": entries, "replicas": replicas, "killed": killed, "monitor": monitor}
    raw.update(t0=t0.timestamp(), cpu=cpu, double_cpu=double_cpu, delivered_wait=delivered,
               held=sum(r.bot.messengers["slack"].pacer.held_seconds for r in replicas),
               handed={k: v for r in replicas for k, v in r.bot.messengers["slack"].handed.items()},
               machine=(machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1]))
    return raw


async def close(raw: dict) -> None:
    for bot in (*(r.bot for r in raw["replicas"]), raw["monitor"]):
        await bot.close()


async def wait_delivered(bot: Bot, expected: int, timeout: float, killed: dict) -> int:
    """Until every first ping is delivered (and the killed replica's claimed rows ran elsewhere), or a timeout."""
    deadline = time.time() + timeout
    left = set(killed["claimed"])
    delivered = 0
    while time.time() < deadline:
        async with bot.db.sessions() as session:
            delivered = await session.scalar(select(func.count()).select_from(TimelineEntry).where(
                TimelineEntry.kind == "ping", TimelineEntry.data["delivered"].as_boolean()))
            if left:
                rows = (await session.execute(select(ScheduledJob.key, ScheduledJob.state, ScheduledJob.claimed_by).where(
                    ScheduledJob.key.in_(left)))).all()
                if killed["taken_back_at"] is None and any(claimed != "replica-a" for _, _, claimed in rows):
                    killed["taken_back_at"] = time.time()
                left -= {key for key, state, _ in rows if state in (JobState.done, JobState.failed)}
                if not left:
                    killed["done_at"] = time.time()
        if delivered >= expected and not left:
            break
        await asyncio.sleep(0.25)  # this process's CPU is the bot's: look four times a second, no more
    else:
        print(f"warning: timed out with {delivered} of {expected} pings delivered", file=sys.stderr)
    return delivered


def collect(raw: dict) -> dict:
    """The throughput runs' figures: lateness of each first page's channel post, duplicates, statements."""
    due, killed, replicas = raw["due"], raw["killed"], raw["replicas"]
    channel_posts: dict[int, list[float]] = defaultdict(list)
    direct_posts: Counter[int] = Counter()
    for method, channel, incident, at, status, _ in raw["calls"]:
        if method != "chat.postMessage" or status != 200 or incident is None:
            continue
        if channel.startswith("D"):
            direct_posts[incident] += 1
        else:
            channel_posts[incident].append(at)
    recovered = {int(key.split(":")[1]) for key in killed["claimed"]}
    lateness = {n: min(times) - due[n] for n, times in channel_posts.items() if n in due}
    sends = sorted(t for times in channel_posts.values() for t in times)
    extra = {n: len(channel_posts[n]) - 1 + max(0, direct_posts[n] - 1) for n in set(channel_posts) | set(direct_posts)}
    entries = [data for _, _, data in raw["entries"]]
    return raw | {
        "sent": len(channel_posts), "missing": len(due) - len(channel_posts), "directs": sum(direct_posts.values()),
        "refused": sum(1 for call in raw["calls"] if call[4] == 429),
        "lateness": sorted(lateness.values()),
        "others": sorted(v for n, v in lateness.items() if n not in recovered),
        "recovered_lateness": sorted(v for n, v in lateness.items() if n in recovered),
        "recovered_resent": sorted(max(channel_posts[n]) - due[n] for n in recovered if channel_posts.get(n)),
        "duplicates": sum(extra.values()), "duplicates_recovered": sum(v for n, v in extra.items() if n in recovered),
        "delivered_entries": sum(1 for data in entries if data.get("delivered")), "entries": len(entries),
        "throughput": (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else float("nan"),
        "first_send": sends[0] if sends else float("nan"), "last_send": sends[-1] if sends else float("nan"),
        "replicas": [(r.scheduler.replica, r.scheduler.passes, dict(r.counter.counts), r.counter.overhead) for r in replicas],
    }


# --------------------------------------------------------------------------- report


def report(name: str, stats: dict, args) -> None:
    lat = stats["lateness"]
    print(f"\n## {name}")
    print(f"pings in incident channels: {stats['sent']:,} of {args.incidents:,} (missing {stats['missing']}), direct messages "
          f"{stats['directs']:,}, duplicates {stats['duplicates']}; posts answered 429: {stats['refused']} (limit raised out of reach)")
    print(f"timeline ping entries {stats['entries']:,}, delivered {stats['delivered_entries']:,}; first-ping jobs "
          f"{stats['job_states']}, marked late {stats['marked_late']}" + (f"; errors {stats['errors']}" if stats["errors"] else ""))
    print(f"lateness: p50 {ms(percentile(lat, 50))}  p99 {ms(percentile(lat, 99))}  max {ms(lat[-1] if lat else float('nan'))}")
    print(f"throughput: {stats['throughput']:.0f} pings/s; first ping sent {stats['first_send'] - stats['t0']:+.2f} s, last "
          f"{stats['last_send'] - stats['t0']:+.2f} s from the first due time (the last was due at +{args.spread * (1 - 1 / args.incidents):.2f} s)")
    sent = max(1, stats["sent"])
    print(f"CPU: this process (both replicas) {stats['cpu'] / sent * 1000:.2f} ms per ping; Slack double "
          f"{stats['double_cpu'] / sent * 1000:.2f} ms per ping; whole machine {stats['machine'] * 100:.0f}% busy (2 cores, PostgreSQL "
          f"and whatever else runs included)")
    for replica, passes, counts, overhead in stats["replicas"]:
        jobs, handler, ticks = counts.get("finish", 0), counts.get("handler", 0), counts.get("claim", 0)
        print(f"{replica}: {jobs:,} jobs in {passes} passes and {ticks:,} ticks (claims); scheduler statements per tick "
              f"{overhead / max(ticks, 1):.2f}, per job {overhead / max(jobs, 1):.2f} + 1 (its end); handler statements per ping "
              f"{handler / max(jobs, 1):.2f}; {dict(sorted(counts.items()))}")
    killed = stats["killed"]
    if killed["at"] is not None:
        others, rec = stats["others"], stats["recovered_lateness"]
        taken = (killed["taken_back_at"] or float("nan")) - killed["at"]
        done = (killed["done_at"] or float("nan")) - killed["at"]
        print(f"replica-a killed at {killed['at'] - stats['t0']:+.2f} s holding {len(killed['claimed'])} claimed jobs (rows left running); "
              f"replica-b took them back {taken:.2f} s after the kill and had sent them {done:.2f} s after (their lease: {args.lease:.0f} s)")
        resent = stats["recovered_resent"]
        print(f"lateness of the other pings: p50 {ms(percentile(others, 50))}  p99 {ms(percentile(others, 99))}  "
              f"max {ms(others[-1] if others else float('nan'))}; the {len(rec)} recovered ones were first sent at most "
              f"{ms(rec[-1] if rec else float('nan'))} late, and sent by replica-b at most {ms(resent[-1] if resent else float('nan'))} late")
        why = (" (Slack had taken them from replica-a, which died before their delivered mark: the one window run_ping documents)"
               if stats["duplicates_recovered"] else "")
        print(f"duplicates among the recovered ones {stats['duplicates_recovered']}{why}, among the others "
              f"{stats['duplicates'] - stats['duplicates_recovered']}")


def table(normal: dict, killed: dict, args) -> None:
    print("\n| run | pings | duplicates | lateness p50 | p99 | max | pings/s | statements/tick | statements/ping | recovery |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, stats in (("2 replicas", normal), ("one killed half-way", killed)):
        lat = stats["lateness"]
        ticks = sum(c.get("claim", 0) for _, _, c, _ in stats["replicas"])
        overhead = sum(s for _, _, _, s in stats["replicas"])
        statements = sum(sum(c.values()) for _, _, c, _ in stats["replicas"])
        k = stats["killed"]
        recovery = f"{k['done_at'] - k['at']:.1f} s ({len(k['claimed'])} jobs, lease {args.lease:.0f} s)" if k["at"] and k["done_at"] else "-"
        print(f"| {label} | {stats['sent']:,} | {stats['duplicates']} | {ms(percentile(lat, 50))} | {ms(percentile(lat, 99))} | "
              f"{ms(lat[-1])} | {stats['throughput']:.0f} | {overhead / max(ticks, 1):.2f} | {statements / max(stats['sent'], 1):.2f} | {recovery} |")


async def main(args) -> None:
    # The recovery is reported below; a line per recovered job, and SQLAlchemy's tracebacks for the
    # connections the killed replica's cancelled tasks were closing, would only bury the figures.
    logging.getLogger("bot.schedule.loop").setLevel(logging.ERROR)
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    runs = set(args.only.split(","))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load_average()} (2 cores, shared)")
    throughput = [{"severity": f"P0-{n % ON_CALLS:02d}", "channel_id": f"CINC{n:06d}", "headline_channel": f"CINC{n:06d}"}
                  for n in range(1, args.incidents + 1)]
    results = {}
    double = await DoubleProcess.start(Path(__file__).resolve())
    try:
        if "calls" in runs:
            await post_cost(double)
        async with fresh_database() as url:
            await upgrade_async(url)
            if "normal" in runs or "kill" in runs:
                print(f"\n{args.incidents:,} incidents, first pings due over {args.spread:.0f} s; 2 replicas in this process, batch "
                      f"{args.batch}, poll {args.poll:g} s, ping lease {args.lease:g} s; Slack double in a child process, its "
                      f"per-channel limit raised out of reach ({UNLIMITED['per_second']:g}/s, burst {UNLIMITED['burst']:,}); the "
                      f"direct messages go to {ON_CALLS} on-calls")
            for run, kill in (("normal", False), ("kill", True)):
                if run not in runs:
                    continue
                profile = cProfile.Profile(time.process_time) if args.profile and run == "normal" else None
                raw = await run_once(url, double, args, config=throughput_config(ON_CALLS), specs=throughput, spread=args.spread, limit=UNLIMITED,
                                     kill=kill, profile=profile)
                await close(raw)
                results[run] = collect(raw)
                report("normal run" if run == "normal" else "one replica killed at half time", results[run], args)
                if profile is not None:
                    profile.dump_stats(args.profile)
                    print(f"profile of the normal run written to {args.profile} (python -m pstats {args.profile})")
            if "paced" in runs:
                specs = page_order.incidents(args.paced, args.paced_channels, args.seed)
                for count, rate in ((1, 1.0), (2, 1.0), (1, args.paced_slow), (2, args.paced_slow)):
                    label = f"{count} replica{'s' if count > 1 else ''}, {rate:g}/s burst {args.paced_burst}"
                    limit = {"per_second": rate, "burst": args.paced_burst}
                    # The ping's real lease (2 minutes): a page waiting out a held channel must not lose its claim.
                    raw = await run_once(url, double, argparse.Namespace(**{**vars(args), "lease": 120.0}), config=page_order.CONFIG,
                                         specs=specs, spread=args.paced_spread, limit=limit, replicas=count)
                    await close(raw)
                    results[label] = page_order.analyse(raw, specs)
                    page_order.report(results[label], args, label)
    finally:
        await double.stop()
    if "normal" in results and "kill" in results:
        table(results["normal"], results["kill"], args)
        print(f"\nstatements/tick: the scheduler's own statements per claim (claim, expired-claim look-ups, next wake-up, periodic "
              f"chains); statements/ping: everything both replicas sent, per ping (handler 4, the job's end 1, the rest). "
              f"Batch {args.batch}, poll {args.poll:g} s, ping lease {args.lease:g} s; Slack double in a child process.")
    paced = {label: stats for label, stats in results.items() if label not in ("normal", "kill")}
    if paced:
        page_order.table(paced, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which the first pings fall due")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds from the insert to the first due time")
    parser.add_argument("--batch", type=int, default=64, help="jobs a replica runs at once (as the Bot configures its Scheduler)")
    parser.add_argument("--poll", type=float, default=5.0, help="scheduler poll, seconds")
    parser.add_argument("--lease", type=float, default=10.0, help="lease of incident.ping, seconds")
    parser.add_argument("--paced", type=int, default=500, help="incidents in the run under Slack's limit")
    parser.add_argument("--paced-channels", type=int, default=50, help="incident channels they share")
    parser.add_argument("--paced-spread", type=float, default=1.0, help="seconds over which their first pages fall due")
    parser.add_argument("--paced-burst", type=int, default=2, help="posts a channel takes at once before 1 a second")
    parser.add_argument("--paced-slow", type=float, default=0.2,
                        help="a second limit, posts/s per channel, low enough to bind however slowly this machine pages")
    parser.add_argument("--seed", type=int, default=14, help="of the paced run's severities and channels")
    parser.add_argument("--only", default="calls,normal,kill,paced", help="runs, comma-separated: calls, normal, kill, paced")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the normal run into FILE")
    parser.add_argument("--slack-double", metavar="READY_FILE", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.slack_double:
        asyncio.run(serve_double(arguments.slack_double))
    else:
        asyncio.run(main(arguments))
