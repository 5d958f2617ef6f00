"""The outcome of one check, and how outcomes combine."""
from __future__ import annotations

from dataclasses import asdict, dataclass

SEVERITY = {"ok": 0, "warning": 1, "critical": 2}


def worst(statuses) -> str:
    return max(statuses, key=SEVERITY.__getitem__, default="ok")


@dataclass(frozen=True)
class CheckResult:
    service: str
    check: str  # label, e.g. "http" or "http ready/database"
    kind: str
    status: str  # ok | warning | critical
    latency_ms: float
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """What a check kind reports; the engine adds service, label and timing."""

    status: str
    detail: str
    sub_label: str | None = None  # set for nested checks reported one by one
