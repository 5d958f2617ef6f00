"""A workload's pods: their troubles graded, and their log lines merged by time.

Readings (the k8s_pods check, and the `container` check on a Kubernetes service):
- a container waiting in CrashLoopBackOff: critical;
- a container whose last termination was OOMKilled (lastState.terminated.reason): critical when
  it ended within the restart window, a warning when older (history, not an emergency);
- a pod Pending longer than the limit: critical, with the reason its containers wait;
- restarts in the last hour: containers whose lastState.terminated.finishedAt is within the window
  (the API keeps only the last termination, so this counts recent crashes, not all restarts), graded
  by the check's thresholds.

Logs: each (pod, container) stream is read with timestamps=true; lines are merged by that
timestamp, the newest `tail` kept, and shown without it, each prefixed by where it came from when
more than one stream was read. Parsing runs in a worker thread (up to MAX_STREAMS streams of
MAX_STREAM_BYTES each).
"""
from __future__ import annotations

import heapq
from datetime import datetime, timedelta

from bot.targets.base import Reading

MAX_PODS = 20  # pods read for logs; the newest first
MAX_STREAMS = 24  # (pod, container) streams read for one /logs
MAX_STREAM_BYTES = 512 * 1024  # limitBytes per stream


def _age(now: datetime, then: datetime | None) -> float:
    return (now - then).total_seconds() if then is not None else 0.0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.0f} h"


def pod_readings(pods: list, now: datetime, *, pending_limit: float, restarts, window: float = 3600.0) -> list[Reading]:
    """Graded troubles of `pods` (kubernetes-asyncio V1Pod), one Reading each, or one ok Reading."""
    readings, recent = [], 0
    for pod in pods:
        name, status = pod.metadata.name, pod.status
        if status is None:
            continue
        if status.phase == "Pending" and _age(now, pod.metadata.creation_timestamp) > pending_limit:
            waiting = sorted({s.state.waiting.reason for s in status.container_statuses or [] if s.state and s.state.waiting and s.state.waiting.reason})
            why = f" ({', '.join(waiting)})" if waiting else ""
            readings.append(Reading("critical", f"Pending for {_minutes(_age(now, pod.metadata.creation_timestamp))}{why}", name))
        for container in status.container_statuses or []:
            part = f"{name}/{container.name}"
            waiting = container.state.waiting if container.state else None
            if waiting is not None and waiting.reason == "CrashLoopBackOff":
                readings.append(Reading("critical", f"CrashLoopBackOff after {container.restart_count} restarts", part))
            terminated = container.last_state.terminated if container.last_state else None
            if terminated is None or terminated.finished_at is None:
                continue
            ago = _age(now, terminated.finished_at)
            if ago <= window:
                recent += 1
            if terminated.reason == "OOMKilled":
                grade = "critical" if ago <= window else "warning"
                readings.append(Reading(grade, f"OOMKilled {_minutes(max(ago, 0))} ago (exit code {terminated.exit_code}); raise its memory limit or find the leak", part))
    grade = restarts.grade(recent)
    if grade != "ok":
        readings.append(Reading(grade, f"{recent} containers restarted in the last {_minutes(window)}"))
    if not readings:
        running = sum(1 for p in pods if p.status and p.status.phase == "Running")
        readings.append(Reading("ok", f"{running} of {len(pods)} pods running, no restarts in the last {_minutes(window)}"))
    return readings


def streams(pods: list, container: str | None) -> list[tuple[str, str]]:
    """(pod, container) pairs to read: the named container or every one, newest pods first, bounded."""
    pods = sorted(pods, key=lambda p: p.metadata.creation_timestamp or datetime.min, reverse=True)[:MAX_PODS]
    pairs = []
    for pod in pods:
        names = [c.name for c in pod.spec.containers]
        for name in ([container] if container else names):
            if name in names:
                pairs.append((pod.metadata.name, name))
    return pairs[:MAX_STREAMS]


def merge(read: list[tuple[str, str, str]], tail: int) -> list[str]:
    """Lines of each (pod, container, raw text with timestamps) merged by time; the newest `tail`.

    The API's RFC 3339 timestamps are UTC with a fixed width, so they sort as text. A line without
    one (a cut last line) sorts with the line before it.
    """
    prefixed = len(read) > 1

    def lines(pod: str, container: str, raw: str):
        last = ""
        for line in raw.splitlines():
            stamp, sep, text = line.partition(" ")
            if not sep or not stamp[:1].isdigit() or "T" not in stamp:
                stamp, text = last, line
            last = stamp
            yield stamp, f"[{pod}/{container}] {text}" if prefixed else text

    merged = heapq.merge(*(lines(*stream) for stream in read), key=lambda item: item[0])
    kept = [text for _, text in merged]
    return kept[-tail:]


def since_seconds(since: float | None) -> int | None:
    return int(timedelta(seconds=since).total_seconds() + 0.999) if since else None
