"""app.yaml, as pydantic models: the single source of truth for configuration.

docs/config-reference.md is generated from these models (`opsbot config reference`)
and a test fails when the two drift apart.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from bot.config.check_base import CheckBase
from bot.config.target_check_models import K8sPodsCheck, K8sWorkloadCheck, SupervisorProgramCheck, SystemdUnitCheck
from bot.config.action_models import COMMAND_KINDS, DEFAULT_ACTIONS, ActionSpec, JobAction
from bot.config.alert_models import AlertSettings, alert_references
from bot.config.data_models import BackupSettings, Cache, Database, check_database_references
from bot.config.deploy_models import ServiceDeploy, deploy_references
from bot.config.graph import find_cycle
from bot.config.schedule_models import MaintenanceSettings, Metric, MetricName, PrometheusSettings, Schedule
from bot.config.incident_models import (
    DEFAULT_SEVERITIES,
    Calendar,
    IncidentSettings,
    Playbook,
    Rotation,
    Severity,
)
from bot.config.literal_secrets import CredentialHeaders, HttpUrl, no_literal_password
from bot.config.target_models import KubernetesTarget, SupervisorTarget, SystemdTarget, TargetConnections, one_target, target_of, target_references
from bot.config.types import (
    At,
    ContainerName,
    Duration,
    FloorThresholds,
    Name,
    LatencyThresholds,
    RoleName,
    ServiceName,
    SlackChannel,
    SlackUserGroupId,
    SlackUserId,
    Strict,
    Thresholds,
)



class HttpCheck(CheckBase):
    kind: Literal["http"]
    url: HttpUrl = Field(description="URL to request; ${VAR} allowed.")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[int] = Field([200], description="Acceptable HTTP status codes.")
    expect_json: dict[str, str | int | float | bool] = Field(
        {}, description="Dotted JSON field -> expected value, e.g. status: healthy."
    )
    nested_checks: str | None = Field(
        None, description="JSON field holding /ready-style nested checks (runbook 001), reported one by one."
    )
    headers: CredentialHeaders = Field({}, description="Request headers; use ${VAR} for tokens.")
    latency: LatencyThresholds = LatencyThresholds(warn=1.0, critical=2.0)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


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


class SqlCheck(CheckBase):
    """A read-only, parameterised query whose first column of its first row is graded (runbooks 000, 003, 004)."""

    kind: Literal["sql"]
    database: Name = Field(description="A database of databases:.")
    query: str = Field(min_length=1, max_length=4000, description="One SELECT (or WITH) statement; $1, $2 take params.")
    params: list[str | int | float | bool] = Field([], description="Values bound to $1, $2, ...: never pasted into the text.")
    value: Thresholds = Field(description="Limits on the number the query returns (a count, an age in seconds).")
    unit: str = Field("", max_length=20, description="Shown after the number, e.g. 'stuck payments'.")

    @field_validator("query")
    @classmethod
    def _select(cls, value: str) -> str:
        first = value.lstrip().split(None, 1)[0].upper() if value.strip() else ""
        if first not in ("SELECT", "WITH"):
            raise ValueError("must be a SELECT or WITH query: sql checks only read")
        if ";" in value.strip().rstrip(";"):
            raise ValueError("must be one statement (no ';' inside)")
        return value


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
    Union[HttpCheck, TcpCheck, PostgresCheck, RedisCheck, ContainerCheck, ExecCheck, SqlCheck, DiskCheck, MemoryCheck, TlsCheck, SupervisorProgramCheck,
          K8sWorkloadCheck, K8sPodsCheck, SystemdUnitCheck],
    Field(discriminator="kind"),
]


class Service(Strict):
    description: str = ""
    container: ContainerName | None = Field(None, description="Docker container name, when the service is one.")
    kubernetes: KubernetesTarget | None = Field(None, description="Or: a Deployment or StatefulSet (needs targets.kubernetes).")
    systemd: SystemdTarget | None = Field(None, description="Or: a systemd service unit (needs targets.systemd).")
    supervisor: SupervisorTarget | None = Field(None, description="Or: a supervisord program or group (needs targets.supervisor).")
    deploy: ServiceDeploy | None = Field(None, description="What /deploy and /rollback may put on it (containers and Kubernetes).")
    depends_on: list[ServiceName] = Field([], description="Services this one needs; restarted first.")
    owners: list[RoleName] = Field([], description="Roles that own this service.")
    checks: list[Check] = []

    @model_validator(mode="after")
    def _container_for_checks(self) -> "Service":
        one_target(self)
        for index, check in enumerate(self.checks):
            # A container check on another target reads that platform's state (bot/check/kinds/container.py).
            has_target = self.container or (isinstance(check, ContainerCheck) and target_of(self))
            if isinstance(check, (ContainerCheck, ExecCheck)) and not (check.container or has_target):
                raise ValueError(f"checks[{index}] ({check.kind}) needs a container: set it on the check or the service")
        return self


class Role(Strict):
    users: list[SlackUserId] = []
    groups: list[SlackUserGroupId] = Field([], description="Slack user-group IDs, resolved via usergroups.users.list.")
    rotations: list[RoleName] = Field([], description="On-call rotations (oncall:) whose current on-call holds this role.")


class SlackSettings(Strict):
    ops_channel: SlackChannel | None = Field(None, description=(
        "The ops channel: the default for scheduled posts, maintenance announcements, the alert heartbeat, "
        "and where on-call overrides are announced."))
    incidents_channel: SlackChannel | None = Field(None, description="Where incident headlines are posted (incidents.channel overrides it).")


class AppConfig(Strict):
    version: Literal[1] = 1
    services: dict[ServiceName, Service] = {}
    roles: dict[RoleName, Role] = {}
    slack: SlackSettings = SlackSettings()
    actions: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")], ActionSpec] = Field(
        {}, description="Declared actions, reached with /run <action>; the commands' own actions (restart, logs, backup, ...) have defaults when absent."
    )
    databases: dict[Name, Database] = Field({}, description="PostgreSQL databases for /db, /backup and /restore.")
    caches: dict[Name, Cache] = Field({}, description="Redis servers for /cache.")
    backups: BackupSettings = BackupSettings()
    jobs: dict[Name, JobAction] = Field({}, description="Runbook jobs with an enforced dry run (/job NAME --dry-run, then /job NAME).")
    schedules: dict[Name, Schedule] = Field({}, description="Posts that arrive on their own (cron), exactly once per slot.")
    prometheus: PrometheusSettings | None = Field(None, description="The Prometheus server metrics: queries.")
    metrics: dict[MetricName, Metric] = Field({}, description="PromQL thresholds shown in /health and the daily post.")
    maintenance: MaintenanceSettings = MaintenanceSettings()
    severities: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,19}$")], Severity] = Field(
        DEFAULT_SEVERITIES, description="The response-time matrix; P0-P3 from the runbooks when absent."
    )
    calendar: Calendar = Field(Calendar(), description="Working hours and holidays, for next_business_day.")
    oncall: dict[RoleName, Rotation] = Field({}, description="On-call rotations by name.")
    playbooks: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")], Playbook] = Field(
        {}, description="Runbook scenarios as checklists, attached to incidents."
    )
    incidents: IncidentSettings = IncidentSettings()
    targets: TargetConnections = Field(TargetConnections(), description="How opsbot reaches Kubernetes, systemd and supervisord.")
    alerts: AlertSettings = Field(AlertSettings(), description="Alert webhooks in (Alertmanager, Grafana, generic JSON) and their routes to incidents.")

    def action(self, name: str):
        """The ActionSpec declared (or shipped) under `name`, a job's, or None."""
        return self.actions.get(name) or self.jobs.get(name) or DEFAULT_ACTIONS.get(name)

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

    def _schedule_references(self) -> list[At]:
        problems = []
        for name, schedule in self.schedules.items():
            at = ("schedules", name)
            if not (schedule.channel or self.slack.ops_channel):
                problems.append(At(at, f"schedule '{name}' has no channel, and slack.ops_channel is not set"))
            for i, service in enumerate(schedule.services):
                if service not in self.services:
                    problems.append(At(at + ("services", i), f"schedule '{name}' names unknown service '{service}'"))
            if schedule.database and schedule.database not in self.databases:
                problems.append(At(at + ("database",), f"schedule '{name}' names unknown database '{schedule.database}'"))
            if schedule.run in ("backup", "weekly_check") and not self.databases:
                problems.append(At(at + ("run",), f"schedule '{name}' runs {schedule.run}, but app.yaml declares no databases"))
            if schedule.open_incident and self.severity(schedule.open_incident) is None:
                problems.append(At(at + ("open_incident",), f"schedule '{name}' opens incidents at unknown severity '{schedule.open_incident}'"))
        for i, role in enumerate(self.maintenance.all_services_roles):
            if role not in self.roles:
                problems.append(At(("maintenance", "all_services_roles", i), f"maintenance.all_services_roles names unknown role '{role}'"))
        if self.metrics and self.prometheus is None:
            problems.append(At(("metrics",), "metrics need prometheus.url"))
        for name, metric in self.metrics.items():
            if metric.service and metric.service not in self.services:
                problems.append(At(("metrics", name, "service"), f"metric '{name}' names unknown service '{metric.service}'"))
        return problems

    def _incident_references(self) -> list[At]:
        problems = []
        seen: dict[str, str] = {}
        for key, severity in self.severities.items():
            for i, name in enumerate([key, *severity.aliases]):
                if name.lower() in seen and seen[name.lower()] != key:
                    at = ("severities", key) if i == 0 else ("severities", key, "aliases", i - 1)
                    problems.append(At(at, f"severity name '{name}' is used by both {seen[name.lower()]} and {key}"))
                seen[name.lower()] = key
            for index, level in enumerate(severity.escalation):
                where = f"severity '{key}' escalation[{index}]"
                at = ("severities", key, "escalation", index)
                if level.rotation and level.rotation not in self.oncall:
                    problems.append(At(at + ("rotation",), f"{where} names unknown rotation '{level.rotation}'"))
                if level.role and level.role not in self.roles:
                    problems.append(At(at + ("role",), f"{where} names unknown role '{level.role}'"))
            for index, notify in enumerate(severity.notify):
                if notify.role and notify.role not in self.roles:
                    problems.append(At(("severities", key, "notify", index, "role"), f"severity '{key}' notify[{index}] names unknown role '{notify.role}'"))
        for name, role in self.roles.items():
            for i, rotation in enumerate(role.rotations):
                if rotation not in self.oncall:
                    problems.append(At(("roles", name, "rotations", i), f"role '{name}' names unknown rotation '{rotation}'"))
        for name, rotation in self.oncall.items():
            for i, role in enumerate(rotation.override_roles):
                if role not in self.roles:
                    problems.append(At(("oncall", name, "override_roles", i), f"rotation '{name}' lets unknown role '{role}' override it"))
        names = _names(self.severities)
        for name, playbook in self.playbooks.items():
            if playbook.severity and playbook.severity.lower() not in names:
                problems.append(At(("playbooks", name, "severity"), f"playbook '{name}' suggests unknown severity '{playbook.severity}'"))
            for i, service in enumerate(playbook.services):
                if service not in self.services:
                    problems.append(At(("playbooks", name, "services", i), f"playbook '{name}' names unknown service '{service}'"))
        return problems

    def _action_references(self) -> list[At]:
        problems = []
        for action_name, action in self.actions.items():
            at = ("actions", action_name)
            allowed = COMMAND_KINDS.get(action_name) or (DEFAULT_ACTIONS[action_name].kind,) if action_name in DEFAULT_ACTIONS else ()
            if allowed and action.kind not in allowed:
                problems.append(At(at + ("kind",), f"action '{action_name}' is used by its command, so it must have kind {' or '.join(allowed)}"))
            service = getattr(action, "service", None)
            if service and service not in self.services:
                problems.append(At(at + ("service",), f"action '{action_name}' names unknown service '{service}'"))
            elif service and getattr(action, "verify", None) and self.services[service].container is None:
                problems.append(At(at + ("verify",), f"action '{action_name}' verifies service '{service}', which has no container to wait for"))
            problems += _role_references(self.roles, at, f"action '{action_name}'", action)
        for name, job in self.jobs.items():
            at = ("jobs", name)
            if name in self.actions or name in DEFAULT_ACTIONS:
                problems.append(At(at, f"job '{name}' has the name of an action; jobs and actions share one namespace (/run)"))
            if job.service not in self.services:
                problems.append(At(at + ("service",), f"job '{name}' names unknown service '{job.service}'"))
            elif self.services[job.service].container is None:
                problems.append(At(at + ("service",), f"job '{name}' runs in service '{job.service}', which has no container"))
            problems += _role_references(self.roles, at, f"job '{name}'", job)
        return problems

    def _service_references(self) -> list[At]:
        problems = []
        for name, service in self.services.items():
            at = ("services", name)
            for i, dep in enumerate(service.depends_on):
                if dep not in self.services:
                    problems.append(At(at + ("depends_on", i), f"service '{name}' depends on unknown service '{dep}'"))
                elif dep == name:
                    problems.append(At(at + ("depends_on", i), f"service '{name}' depends on itself"))
            for i, owner in enumerate(service.owners):
                if owner not in self.roles:
                    problems.append(At(at + ("owners", i), f"service '{name}' is owned by unknown role '{owner}'"))
            for i, check in enumerate(service.checks):
                if isinstance(check, SqlCheck) and check.database not in self.databases:
                    problems.append(At(at + ("checks", i, "database"), f"service '{name}' sql check '{check.label}' names unknown database '{check.database}'"))
        cycle = find_cycle({n: s.depends_on for n, s in self.services.items()})
        if cycle:
            problems.append(At(("services", cycle[0], "depends_on"), "depends_on has a cycle: " + " -> ".join(cycle)))
        return problems

    def reference_problems(self) -> list[At]:
        """Names that point nowhere (a service, role, rotation, severity, database), each with the
        key path of the reference. Not a validator: the loader reports them together with the
        problems that need more than the models know, each at its own line."""
        return (
            self._action_references()
            + self._service_references()
            + self._incident_references()
            + check_database_references(self.databases, self.caches, self.services, self.roles)
            + self._schedule_references()
            + target_references(self)
            + alert_references(self)
            + deploy_references(self)
        )


def _role_references(roles: dict, at: tuple, what: str, spec) -> list[At]:
    problems = []
    for key, named in (("request_roles", spec.request_roles), ("approver_roles", spec.approval.approver_roles)):
        for i, role in enumerate(named):
            if role not in roles:
                path = at + (key, i) if key == "request_roles" else at + ("approval", key, i)
                problems.append(At(path, f"{what} names unknown role '{role}'"))
    return problems


def _names(severities: dict[str, Severity]) -> dict[str, str]:
    names: dict[str, str] = {}
    for key, severity in severities.items():
        for name in [key, *severity.aliases]:
            names.setdefault(name.lower(), key)
    return names
