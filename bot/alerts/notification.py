"""AlertNotification: what every format's payload becomes, whatever sent it.

A notification is a group of alerts (Alertmanager and Grafana send groups; a generic payload is a
group of one) with the labels they share, the sender's key for the group, and each alert's own
fingerprint, status and times. Sizes are bounded here, so nothing further down sees a 10,000-label alert.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_ALERTS = 1000  # Alertmanager's webhook max_alerts is unlimited by default; a bigger group is cut by the sender (truncatedAlerts)
MAX_LABELS = 64
Status = Literal["firing", "resolved"]
# Sender-written strings: bounded, never interpreted.
Key = Annotated[str, Field(max_length=256)]
Value = Annotated[str, Field(max_length=2048)]
Labels = Annotated[dict[Key, Value], Field(max_length=MAX_LABELS)]
Url = Annotated[str, Field(max_length=2048)]


class Malformed(ValueError):
    """The payload is not what its format says; the message is one sentence for the sender."""


class Payload(BaseModel):
    """Base for the senders' own payload models: unknown keys are the sender's business."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    fingerprint: str
    status: Status
    labels: dict[str, str]
    title: str
    description: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    source_url: str = ""


class AlertNotification(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Status  # firing while any alert of the group fires
    labels: dict[str, str]  # what every alert of the group carries: routes match these
    group_key: str  # the sender's key for the group (Alertmanager's groupKey)
    title: str
    description: str = ""
    starts: datetime | None = None  # the earliest alert's start
    ends: datetime | None = None  # the latest resolved alert's end, when all are resolved
    source_url: str = ""
    alerts: tuple[Alert, ...] = ()


def fingerprint_of(labels: dict[str, str]) -> str:
    """A stable fingerprint from the labels, for senders that give none (Alertmanager's is a hash of them too)."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def real_time(at: datetime | None) -> datetime | None:
    """Alertmanager writes 0001-01-01T00:00:00Z for "not yet" (a firing alert's end); tz-aware either way."""
    if at is None or at.year < 1971:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def common_labels(alerts: list[dict[str, str]]) -> dict[str, str]:
    """The labels every alert carries with the same value."""
    if not alerts:
        return {}
    shared = dict(alerts[0])
    for labels in alerts[1:]:
        shared = {k: v for k, v in shared.items() if labels.get(k) == v}
    return shared


def title_of(annotations: dict[str, str], labels: dict[str, str], fallback: str) -> str:
    return annotations.get("summary") or annotations.get("title") or labels.get("alertname") or fallback


def explain(exc: ValidationError, what: str) -> Malformed:
    """One sentence naming the first problem's place, never the sender's value."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "the body"
    return Malformed(f"This is not {what}: {where}: {first.get('msg', 'invalid')[:120].rstrip('.')}.")


def group_of(alerts: list[Alert], *, group_key: str, labels: dict[str, str], title: str, description: str = "",
             source_url: str = "", status: Status | None = None) -> AlertNotification:
    if not alerts:
        raise Malformed("The payload holds no alerts.")
    firing = any(a.status == "firing" for a in alerts)
    starts = [a.starts_at for a in alerts if a.starts_at]
    ends = [a.ends_at for a in alerts if a.ends_at]
    return AlertNotification(
        status=status or ("firing" if firing else "resolved"), labels=labels, group_key=group_key, title=title,
        description=description, starts=min(starts, default=None), ends=None if firing else max(ends, default=None),
        source_url=source_url or next((a.source_url for a in alerts if a.source_url), ""), alerts=tuple(alerts),
    )
