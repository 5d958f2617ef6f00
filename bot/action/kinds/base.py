"""What every action kind declares, and the typed plan the flow stores and approvers approve.

A kind is a small module exposing KIND, an ActionKind: its parameters, plan(), describe(),
execute() with verification, and whether it is read-only. The flow (bot/action/flow.py)
knows nothing else about it.

A Plan is data: the exact steps (kind-specific dicts) and the targets they lock. Its hash
covers everything but `facts`, which describe the targets as seen when planning (an OOM
flag, an age) and may change without changing what would run.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal

from bot.action.params import ParamType

TargetKind = Literal["service", "database", "cache"]


class PlanError(Exception):
    """The plan cannot be made (unknown table, container gone): one sentence for the user; nothing is requested."""


@dataclass(frozen=True)
class Target:
    """Something an action touches: it is locked while the request is open, and its owners decide who may act."""

    kind: TargetKind
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass
class Plan:
    action: str  # the action's name in app.yaml ("restart", "kill_idle")
    kind: str  # its kind ("docker_restart")
    subject: str  # what it acts on, as titles show it: a service, database or cache name
    params: dict  # the typed parameters, as JSON values
    steps: list[dict]  # exactly what will run, kind-specific
    targets: list[Target]
    verify: dict | None = None
    confirm: str | None = None  # the text an approver must type, when the action asks for it
    facts: dict = field(default_factory=dict)  # observed when planning; shown, not hashed

    def to_json(self) -> dict:
        return {
            "action": self.action,
            "kind": self.kind,
            "subject": self.subject,
            "params": self.params,
            "steps": self.steps,
            "targets": [[t.kind, t.name] for t in self.targets],
            "verify": self.verify,
            "confirm": self.confirm,
            "facts": self.facts,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        steps = data.get("steps", [])
        if "targets" in data:
            targets = [Target(kind, name) for kind, name in data["targets"]]
        else:  # a restart plan stored before action kinds existed: its steps name the services
            targets = [Target("service", step["service"]) for step in steps if step.get("service")]
        return cls(
            action=data["action"],
            kind=data["kind"],
            subject=data.get("subject") or data.get("service", ""),
            params=data.get("params") or data.get("options") or {},
            steps=steps,
            targets=targets,
            verify=data.get("verify"),
            confirm=data.get("confirm"),
            facts=data.get("facts", {}),
        )

    @property
    def hash(self) -> str:
        stable = {k: v for k, v in self.to_json().items() if k != "facts"}
        return hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()

    def services(self) -> list[str]:
        return [t.name for t in self.targets if t.kind == "service"]


@dataclass
class StepResult:
    name: str  # what the step acted on, e.g. a service
    ok: bool
    summary: str  # one line
    logs: str = ""  # redacted lines shown under a failure


@dataclass
class ExecutionReport:
    steps: list[StepResult] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def summary(self) -> str:
        return "\n".join(step.summary for step in self.steps)

    @property
    def logs(self) -> str:
        """A failed step's log lines; when all succeeded, what the steps printed (an exec's output)."""
        failed = next((step for step in self.steps if not step.ok), None)
        if failed is not None:
            return failed.logs
        return "\n".join(step.logs for step in self.steps if step.logs)


@dataclass
class PlanContext:
    """What plan() may use: the bot's configuration and gateways. Reads only."""

    bot: object  # the BotContext (bot/context.py)
    user: str  # the requester

    @property
    def config(self):
        return self.bot.config


@dataclass
class RunContext:
    """What execute() may use, besides the bot: who asked, where, and ways to report while running."""

    bot: object
    request_id: int | None
    requested_by: str
    channel: str
    # Shows a line on the request's message while it runs (bytes so far, elapsed); throttled by the flow.
    progress: Callable[[str], Awaitable[None]]
    # Writes a row on the audit trail for one step of a long action (restore: "safety backup done").
    audit_step: Callable[[str, str], Awaitable[None]]

    @property
    def config(self):
        return self.bot.config


class ActionKind(ABC):
    """Base of every kind: plan, describe and execute are each kind's own; the rest has defaults."""

    name: str = ""
    read_only: bool = False
    verb: str = "run"  # "You cannot <verb> <target>": restart, back up, ...
    thing: str = "target"  # "check the <thing> by hand" after a crash: container, database, cache

    def params(self, spec) -> dict[str, ParamType]:
        """The parameters /run accepts for an action of this kind, by name."""
        return {}

    @abstractmethod
    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        """Exactly what would run now, or PlanError with the sentence saying why nothing can."""

    @abstractmethod
    def describe(self, plan: Plan) -> list[str]:
        """One line per step, numbered by the caller: what approvers read."""

    def notes(self, plan: Plan) -> list[str]:
        """Extra sentences under the plan (an OOM hint, a dry run's output)."""
        return []

    async def recheck(self, ctx: PlanContext, spec, plan: Plan) -> str | None:
        """Just before running: None when the approved plan is still what would run, else why not.

        By default the plan is made again and must hash the same: config or containers that
        changed since the approval stop it. Kinds whose plan names things that legitimately
        come and go (backends to kill) check each one when executing instead.
        """
        try:
            current = await self.plan(ctx, plan.action, spec, plan.params)
        except PlanError as exc:
            return str(exc)
        if current.hash != plan.hash:
            return "the plan changed since it was approved (config or targets); request it again."
        return None

    @abstractmethod
    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        """Run `plan` and prove it worked; each step's result, the first failure last."""

    def max_runtime(self, spec, plan: Plan) -> float:
        """The longest a run of `plan` may legitimately take; past it (plus a grace) a 'running'
        request is taken for one a stopped process left. Each step may use the action's timeout
        and, when it verifies, the verification deadline."""
        per_step = float(getattr(spec, "timeout", 0) or 0) + (float(plan.verify["deadline"]) if plan.verify else 0.0)
        return per_step * max(1, len(plan.steps))
