"""The protocol every platform adapter implements, and the small values it trades in.

A service in app.yaml names at most one target: `container:`, `kubernetes:`, `systemd:` or
`supervisor:` (bot/config/target_models.py). The generic kinds (`restart`, `logs`, the
`container` check) ask `Adapters.adapter_for(config, service)` (bot/targets/__init__.py) for the
adapter of that target's platform and use only what is declared here, so adding a platform
never touches them (StackStorm's runners, Botkube's executors).

The values:
- `Workload`: what `describe()` resolved *now*, pinned in the plan approvers read. `ident` is
  the platform's own stable id (a container id, a Deployment's uid, a supervisor group) so the
  plan hash changes when the thing behind the name is replaced; `members` lists what a restart
  touches (a group's processes, a workload's pods' owner); `detail` is a small JSON-able dict of
  platform facts that are part of what runs (a namespace, a revision). All three are hashed:
  put nothing there that changes by itself between approval and execution (a pid, an uptime).
  `stop_grace` and `settle_within` are the platform's own clocks, read from its configuration
  (also hashed): how long an old process gets to stop before it is killed (systemd's
  TimeoutStopSec, supervisor's stopwaitsecs, a pod template's terminationGracePeriodSeconds), and
  how long the platform itself allows the change to finish (a Deployment's
  progressDeadlineSeconds, TimeoutStopSec + TimeoutStartSec, startsecs); None where it has none.
  The plan shows them, and a restart without verification waits `settle_within` for it.
- `LogQuery`: tail (last N lines, always bounded) and since (seconds back, or None). Filtering
  (--grep) and redaction are the caller's, after the read: a pattern must never confirm a secret
  the reply hides.
- `LogLines`: the raw, unredacted lines read, and `source`, one phrase naming where they came
  from ("container web-1", "laravel-worker:laravel-worker_00 stdout").
- `Reading`: one graded state reading ("ok" | "warning" | "critical", a sentence, an optional
  `part` naming a member), which the check kinds turn into findings.
- `Settled`: whether the platform says the restart finished (rollout complete, job removed,
  RUNNING again), with one sentence either way.
- `TargetError`: one plain sentence for the user; nothing was done. Adapters raise it for an
  absent workload, an unreachable daemon, a refused call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

Platform = Literal["container", "kubernetes", "systemd", "supervisor"]
Grade = Literal["ok", "warning", "critical"]

MAX_LOG_TAIL = 5000  # /logs' own ceiling; adapters never read more lines than this


class TargetError(RuntimeError):
    """What went wrong, as one sentence without a trailing period (callers add context)."""


@dataclass(frozen=True)
class Workload:
    platform: str
    service: str  # the service's name in app.yaml
    name: str  # how the platform names it, as approvers read it: "web-1", "deployment shop/web", "laravel-worker:*"
    ident: str  # the platform's stable id for it, pinned by the plan
    members: tuple[str, ...] = ()  # what a restart touches, when more than one thing (a group's processes)
    detail: dict = field(default_factory=dict)  # JSON-able facts that are part of what runs; hashed
    stop_grace: float | None = None  # seconds the platform gives an old process to stop before killing it
    settle_within: float | None = None  # seconds the platform itself allows the change to finish

    def to_json(self) -> dict:
        return {
            "platform": self.platform,
            "service": self.service,
            "name": self.name,
            "ident": self.ident,
            "members": list(self.members),
            "detail": self.detail,
            "stop_grace": self.stop_grace,
            "settle_within": self.settle_within,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Workload":
        return cls(
            platform=data["platform"],
            service=data["service"],
            name=data["name"],
            ident=data["ident"],
            members=tuple(data.get("members", ())),
            detail=dict(data.get("detail") or {}),
            stop_grace=data.get("stop_grace"),
            settle_within=data.get("settle_within"),
        )


@dataclass(frozen=True)
class LogQuery:
    tail: int = 100  # 1..MAX_LOG_TAIL
    since: float | None = None  # seconds back from now; None: no time bound (tail still applies)

    def __post_init__(self) -> None:
        if not 1 <= self.tail <= MAX_LOG_TAIL:
            raise ValueError(f"tail must be between 1 and {MAX_LOG_TAIL}")
        if self.since is not None and self.since <= 0:
            raise ValueError("since must be greater than zero")


@dataclass(frozen=True)
class LogLines:
    lines: list[str]  # raw and unredacted: the caller redacts before showing or matching
    source: str  # where they came from, one phrase


@dataclass(frozen=True)
class Reading:
    status: Grade
    detail: str  # one sentence, e.g. "RUNNING, up 3h"
    part: str | None = None  # a member it is about (a process of a group), shown after the check's label


@dataclass(frozen=True)
class Settled:
    ok: bool
    detail: str  # one sentence: "rollout finished", "laravel-worker_01 is FATAL (exited too quickly)"


def human_age(seconds: float) -> str:
    """A duration as readings show it: 45s, 12m, 3h, 2d (the largest whole unit)."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@runtime_checkable
class TargetAdapter(Protocol):
    """One per platform. `target` is the service's target model (a container name for Docker,
    KubernetesTarget, SystemdTarget, SupervisorTarget); every call is bounded in time and raises
    TargetError, never a platform library's exception. Nothing here may block the event loop."""

    platform: str
    # Whether logs() honours query.since. supervisord's logs carry no timestamps, so its
    # adapter says False and refuses a since.
    log_times: bool

    async def describe(self, service: str, target) -> Workload:
        """Resolve the target now; TargetError when it does not exist."""

    async def restart(self, workload: Workload, timeout: float) -> str:
        """Restart exactly the resolved workload (`timeout`: graceful stop); one line saying what was done."""

    async def logs(self, target, query: LogQuery) -> LogLines:
        """The last query.tail lines (within query.since), raw."""

    async def state(self, target) -> list[Reading]:
        """How the workload is doing now, graded by the platform's own meaning of up."""

    async def settled(self, workload: Workload, deadline: datetime, clock) -> Settled:
        """Wait until the platform says the restart finished, or until `deadline` (tz-aware);
        `clock` is the injected bot.schedule.clock.Clock: poll with clock.now() and clock.sleep()."""
