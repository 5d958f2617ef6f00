"""The header line over a post that arrived on its own: `── page · INC-12 · 03:14 UTC ──`.

What a post is comes from the scheduled job posting it (bot.schedule.current_job): its kind in
words, and what it is about from its payload. A kind not named here is shown as it is registered
("alerts.heartbeat"), so a new job kind is still told apart; a post made by no job (none today
on the console) is "message".
"""
from __future__ import annotations

from datetime import datetime, timezone

from bot.schedule import Job

_KINDS = {
    "incident.ping": "page",
    "incident.remind": "update reminder",
    "maintenance.announce": "maintenance notice",
    "maintenance.start": "maintenance started",
    "maintenance.end": "maintenance ended",
    "schedules.run": "scheduled post",
    "schedules.run_long": "scheduled post",
    "alerts.heartbeat.post": "alert heartbeat",
}
_SUBJECT_MAX = 60  # a schedule's name is the config's; the header stays one line


def what(job: Job | None) -> list[str]:
    """The kind in words, then what it is about when the job's payload says."""
    if job is None:
        return ["message"]
    words = [_KINDS.get(job.kind, job.kind)]
    payload = job.payload or {}
    if isinstance(payload.get("incident"), int):
        words.append(f"INC-{payload['incident']}")
    elif isinstance(payload.get("window"), int):
        words.append(f"window #{payload['window']}")
    elif isinstance(payload.get("schedule"), str):
        words.append(_one_line(payload["schedule"]))
    return words


def header(words: list[str], at: datetime) -> str:
    return "── " + " · ".join([*words, f"{at.astimezone(timezone.utc):%H:%M} UTC"]) + " ──"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SUBJECT_MAX else text[: _SUBJECT_MAX - 1] + "…"
