"""app.yaml, as pydantic models: the single source of truth for configuration.

docs/config-reference.md is generated from these models (`opsbot config reference`)
and a test fails when the two drift apart.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from bot.config.incident_models import (
    DEFAULT_SEVERITIES,
    Calendar,
    IncidentSettings,
    Playbook,
    Rotation,
    Severity,
)
from bot.config.literal_secrets import no_literal_credential, no_literal_password
from bot.config.types import (
    Duration,
    FloorThresholds,
    LatencyThresholds,
    RoleName,
    ServiceName,
    SlackChannel,
    SlackUserGroupId,
    SlackUserId,
    Strict,
    Thresholds,
)

ContainerName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")]


class CheckBase(Strict):
    name: str | None = Field(None, description="Label in reports; defaults to the check kind.")
    timeout: Duration = Field(5.0, description="Each check runs under its own timeout.")

    @property
    def label(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class HttpCheck(CheckBase):
    kind: Literal["http"]
    url: str = Field(description="URL to request; ${VAR} allowed.")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[int] = Field([200], description="Acceptable HTTP status codes.")
    expect_json: dict[str, str | int | float | bool] = Field(
        {}, description="Dotted JSON field -> expected value, e.g. status: healthy."
    )
    nested_checks: str | None = Field(
        None, description="JSON field holding /ready-style nested checks (runbook 001), reported one by one."
    )
    headers: dict[str, str] = Field({}, description="Request headers; use ${VAR} for tokens.")
    latency: LatencyThresholds = LatencyThresholds(warn=1.0, critical=2.0)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not (value.startswith("http://") or value.startswith("https://") or value.startswith("${")):
            raise ValueError("must start with http:// or https://")
        return no_literal_password(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return no_literal_credential(value)


class TcpCheck(CheckBase):
    kind: Literal["tcp"]
    host: str
    port: int = Field(ge=1, le=65535)
    latency: LatencyThresholds = LatencyThresholds()


class PostgresCheck(CheckBase):
    kind: Literal["postgres"]
    dsn: str = Field(description="postgresql:// DSN, normally ${VAR}.")
    connections: Thresholds = Field(
        Thresholds(warn=80, critical=90), description="Connections in use, % of max_connections (runbook 000)."
    )
    latency: LatencyThresholds = LatencyThresholds(warn=0.5, critical=2.0)

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        return no_literal_password(value)


class RedisCheck(CheckBase):
    kind: Literal["redis"]
    url: str = Field(description="redis:// URL, normally ${VAR}.")
    memory: Thresholds = Field(
        Thresholds(warn=80, critical=90), description="used_memory, % of maxmemory (skipped when maxmemory is 0)."
    )
    hit_rate_warn_below: float | None = Field(
        None, ge=0, le=100, description="Warn when keyspace hit rate (%) falls below this."
    )
    latency: LatencyThresholds = LatencyThresholds(warn=0.5, critical=2.0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return no_literal_password(value)


class ContainerCheck(CheckBase):
    kind: Literal["container"]
    container: ContainerName | None = Field(None, description="Defaults to the service's container.")
    restart_count: Thresholds = Field(Thresholds(warn=1, critical=5), description="Docker's RestartCount.")
    min_uptime: Duration | None = Field(None, description="Warn when the container started less than this ago.")


class ExecCheck(CheckBase):
    kind: Literal["exec"]
    container: ContainerName | None = Field(None, description="Defaults to the service's container.")
    command: list[str] = Field(min_length=1, description="Argument list run via the Docker exec API, no shell.")


class DiskCheck(CheckBase):
    kind: Literal["disk"]
    path: str = "/"
    usage: Thresholds = Thresholds(warn=80, critical=90)


class MemoryCheck(CheckBase):
    kind: Literal["memory"]
    usage: Thresholds = Thresholds(warn=85, critical=95)


class TlsCheck(CheckBase):
    kind: Literal["tls"]
    host: str
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = Field(None, description="SNI and name to verify; defaults to host.")
    ca_file: str | None = Field(None, description="CA bundle for private certificates.")
    days: FloorThresholds = Field(FloorThresholds(warn=14, critical=3), description="Days to certificate expiry.")


Check = Annotated[
    Union[HttpCheck, TcpCheck, PostgresCheck, RedisCheck, ContainerCheck, ExecCheck, DiskCheck, MemoryCheck, TlsCheck],
    Field(discriminator="kind"),
]


class Service(Strict):
    description: str = ""
    container: ContainerName | None = Field(None, description="Docker container name, when the service is one.")
    depends_on: list[ServiceName] = Field([], description="Services this one needs; restarted first.")
    owners: list[RoleName] = Field([], description="Roles that own this service.")
    checks: list[Check] = []

    @model_validator(mode="after")
    def _container_for_checks(self) -> "Service":
        for index, check in enumerate(self.checks):
            if isinstance(check, (ContainerCheck, ExecCheck)) and not (check.container or self.container):
                raise ValueError(f"checks[{index}] ({check.kind}) needs a container: set it on the check or the service")
        return self


class ApprovalPolicy(Strict):
    """The two-person rule, per action."""

    approver_roles: list[RoleName] = Field([], description="Roles whose members may approve; empty: the service's owners.")
    approvals: int = Field(1, ge=0, le=2, description="Approvals needed before it runs (0, 1 or 2).")
    self_approval: bool = Field(False, description="Whether the requester may approve their own request.")
    expires: Duration = Field(900.0, description="A pending request expires after this.")


class VerifyPolicy(Strict):
    deadline: Duration = Field(60.0, description="How long the service's checks may take to pass afterwards.")
    interval: Duration = Field(2.0, description="Pause between verification rounds.")


class ActionSpec(Strict):
    """An action on one service of the inventory; chat only names the service and the declared flags."""

    kind: Literal["docker_restart", "docker_logs"]
    description: str = ""
    request_roles: list[RoleName] = Field([], description="Roles that may request it; empty: the service's owners.")
    approval: ApprovalPolicy = ApprovalPolicy()
    timeout: Duration = Field(30.0, description="Graceful stop timeout before Docker kills the process (runbook 001: restart -t 30).")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Run the service's checks afterwards; null to skip.")


# Shipped when app.yaml declares no action of that name (runbooks 000 and 001: restart, logs).
DEFAULT_ACTIONS = {
    "restart": ActionSpec(kind="docker_restart", description="Restart a service's container, then verify its checks pass."),
    "logs": ActionSpec(
        kind="docker_logs", description="Read a service's container logs (redacted).", approval=ApprovalPolicy(approvals=0), verify=None
    ),
}


class Role(Strict):
    users: list[SlackUserId] = []
    groups: list[SlackUserGroupId] = Field([], description="Slack user-group IDs, resolved via usergroups.users.list.")
    rotations: list[RoleName] = Field([], description="On-call rotations (oncall:) whose current on-call holds this role.")


class SlackSettings(Strict):
    # Declared now so app.yaml files stay valid as scheduled reports and incidents arrive (ROADMAP 4, 5).
    ops_channel: SlackChannel | None = Field(None, description="Where scheduled reports will go (not used by any command yet).")
    incidents_channel: SlackChannel | None = Field(None, description="Where incident headlines are posted (incidents.channel overrides it).")


class AppConfig(Strict):
    version: Literal[1] = 1
    services: dict[ServiceName, Service] = {}
    roles: dict[RoleName, Role] = {}
    slack: SlackSettings = SlackSettings()
    actions: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")], ActionSpec] = Field(
        {}, description="Declared actions; restart and logs have defaults when absent."
    )
    severities: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,19}$")], Severity] = Field(
        DEFAULT_SEVERITIES, description="The response-time matrix; P0-P3 from the runbooks when absent."
    )
    calendar: Calendar = Field(Calendar(), description="Working hours and holidays, for next_business_day.")
    oncall: dict[RoleName, Rotation] = Field({}, description="On-call rotations by name.")
    playbooks: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")], Playbook] = Field(
        {}, description="Runbook scenarios as checklists, attached to incidents."
    )
    incidents: IncidentSettings = IncidentSettings()

    def action(self, name: str) -> ActionSpec | None:
        return self.actions.get(name) or DEFAULT_ACTIONS.get(name)

    def severity(self, name: str) -> tuple[str, Severity] | None:
        """A severity by its name or an alias, case-insensitively: ("P0", ...) for "critical"."""
        wanted = name.strip().lower()
        for key, severity in self.severities.items():
            if key.lower() == wanted or wanted in (a.lower() for a in severity.aliases):
                return key, severity
        return None

    @property
    def incidents_channel(self) -> str | None:
        return self.incidents.channel or self.slack.incidents_channel

    def dependents_of(self, name: str) -> list[str]:
        """Services that depend on `name`, directly or not, in an order where each comes after what it needs."""
        found: list[str] = []
        frontier = [name]
        while frontier:
            current = frontier.pop(0)
            for other, service in self.services.items():
                if current in service.depends_on and other not in found and other != name:
                    found.append(other)
                    frontier.append(other)
        ordered: list[str] = []
        while len(ordered) < len(found):
            for other in found:
                needs = [d for d in self.services[other].depends_on if d in found and d not in ordered]
                if other not in ordered and not needs:
                    ordered.append(other)
        return ordered

    def _incident_references(self) -> list[str]:
        problems = []
        seen: dict[str, str] = {}
        for key, severity in self.severities.items():
            for name in [key, *severity.aliases]:
                if name.lower() in seen and seen[name.lower()] != key:
                    problems.append(f"severity name '{name}' is used by both {seen[name.lower()]} and {key}")
                seen[name.lower()] = key
            for index, level in enumerate(severity.escalation):
                where = f"severity '{key}' escalation[{index}]"
                if level.rotation and level.rotation not in self.oncall:
                    problems.append(f"{where} names unknown rotation '{level.rotation}'")
                if level.role and level.role not in self.roles:
                    problems.append(f"{where} names unknown role '{level.role}'")
            for index, notify in enumerate(severity.notify):
                if notify.role and notify.role not in self.roles:
                    problems.append(f"severity '{key}' notify[{index}] names unknown role '{notify.role}'")
        for name, role in self.roles.items():
            for rotation in role.rotations:
                if rotation not in self.oncall:
                    problems.append(f"role '{name}' names unknown rotation '{rotation}'")
        names = _names(self.severities)
        for name, playbook in self.playbooks.items():
            if playbook.severity and playbook.severity.lower() not in names:
                problems.append(f"playbook '{name}' suggests unknown severity '{playbook.severity}'")
            for service in playbook.services:
                if service not in self.services:
                    problems.append(f"playbook '{name}' names unknown service '{service}'")
        return problems

    @model_validator(mode="after")
    def _references(self) -> "AppConfig":
        problems = []
        for action_name, action in self.actions.items():
            if action_name not in DEFAULT_ACTIONS:
                problems.append(f"action '{action_name}' has no command; declare one of: {', '.join(DEFAULT_ACTIONS)}")
            elif action.kind != DEFAULT_ACTIONS[action_name].kind:
                problems.append(f"action '{action_name}' must have kind {DEFAULT_ACTIONS[action_name].kind}")
            for role in action.request_roles + action.approval.approver_roles:
                if role not in self.roles:
                    problems.append(f"action '{action_name}' names unknown role '{role}'")
        for name, service in self.services.items():
            for dep in service.depends_on:
                if dep not in self.services:
                    problems.append(f"service '{name}' depends on unknown service '{dep}'")
                elif dep == name:
                    problems.append(f"service '{name}' depends on itself")
            for owner in service.owners:
                if owner not in self.roles:
                    problems.append(f"service '{name}' is owned by unknown role '{owner}'")
        problems += self._incident_references()
        cycle = _find_cycle({n: s.depends_on for n, s in self.services.items()})
        if cycle:
            problems.append("depends_on has a cycle: " + " -> ".join(cycle))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _names(severities: dict[str, Severity]) -> dict[str, str]:
    names: dict[str, str] = {}
    for key, severity in severities.items():
        for name in [key, *severity.aliases]:
            names.setdefault(name.lower(), key)
    return names


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt in graph and not state.get(nxt):
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if not state.get(node):
            found = visit(node)
            if found:
                return found
    return None
