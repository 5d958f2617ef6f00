"""app.yaml `actions:`: one model per action kind, told apart by `kind` (like the check kinds).

The kinds' behaviour lives in bot/action/kinds/; these are only what app.yaml may say.
A policy nothing would enforce is an error with its line: a read-only kind never asks for
an approval, so `approvals: 2` on one is refused rather than silently ignored.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from bot.config.literal_secrets import CredentialHeaders, HttpUrl
from bot.config.types import Duration, RoleName, ServiceName, Strict

ParamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")]


class ApprovalPolicy(Strict):
    """The two-person rule, per action."""

    approver_roles: list[RoleName] = Field([], description="Roles whose members may approve; empty: the target's owners.")
    approvals: int = Field(1, ge=0, le=2, description="Approvals needed before it runs (0, 1 or 2).")
    self_approval: bool = Field(False, description="Whether the requester may approve their own request.")
    expires: Duration = Field(900.0, description="A pending request expires after this.")
    confirm: bool = Field(False, description="Each approver also types the target's name (a form in Slack, a prompt in the console).")

    @model_validator(mode="after")
    def _confirm_needs_approval(self) -> "ApprovalPolicy":
        if self.confirm and self.approvals == 0:
            raise ValueError("confirm: true needs approvals of 1 or 2: the confirmation is typed by an approver")
        return self


class VerifyPolicy(Strict):
    deadline: Duration = Field(60.0, description="How long the service's checks may take to pass afterwards.")
    interval: Duration = Field(2.0, description="Pause between verification rounds.")


class Param(Strict):
    """A typed parameter of a declared action: /run <action> name=value."""

    type: Literal["enum", "int", "duration", "pattern", "service", "database"]
    description: str = ""
    values: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field([], description="enum: the allowed values.")
    min: int | None = Field(None, description="int: smallest value.")
    max: int | None = Field(None, description="int: largest value.")
    max_duration: Duration | None = Field(None, description="duration: longest value.")
    pattern: str | None = Field(None, description="pattern: a regular expression the whole value must match (at most 100 characters).")
    default: str | None = Field(None, description="Used when the parameter is not given; without one it is required.")

    @model_validator(mode="after")
    def _consistent(self) -> "Param":
        if self.type == "enum" and not self.values:
            raise ValueError("an enum parameter needs values")
        if self.type != "enum" and self.values:
            raise ValueError("values are for enum parameters")
        if self.type == "pattern":
            if not self.pattern or len(self.pattern) > 100:
                raise ValueError("a pattern parameter needs a pattern of at most 100 characters")
            import regex

            try:
                regex.compile(self.pattern)
            except regex.error as exc:
                raise ValueError(f"pattern is not a valid regular expression ({exc})") from None
        elif self.pattern is not None:
            raise ValueError("pattern is for pattern parameters")
        if self.type != "int" and (self.min is not None or self.max is not None):
            raise ValueError("min and max are for int parameters")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be above max")
        return self


class ActionBase(Strict):
    description: str = ""
    request_roles: list[RoleName] = Field([], description="Roles that may request it; empty: the target's owners.")
    approval: ApprovalPolicy = ApprovalPolicy()


class ReadOnlyAction(ActionBase):
    """Kinds that change nothing: a role, never an approval."""

    approval: ApprovalPolicy = Field(ApprovalPolicy(approvals=0), description="Read-only: approvals must stay 0.")

    @field_validator("approval")
    @classmethod
    def _no_approval(cls, value: ApprovalPolicy) -> ApprovalPolicy:
        if value.approvals:
            raise ValueError("this kind is read-only and runs without approval, so approvals would never be asked for: set it to 0")
        return value


class DockerRestartAction(ActionBase):
    kind: Literal["docker_restart"]
    timeout: Duration = Field(30.0, description="Graceful stop timeout before Docker kills the process (runbook 001: restart -t 30).")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Run the service's checks afterwards; null to skip.")


class DockerStopAction(ActionBase):
    kind: Literal["docker_stop"]
    timeout: Duration = Field(30.0, description="Graceful stop timeout before Docker kills the process.")


class DockerStartAction(ActionBase):
    kind: Literal["docker_start"]
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Run the service's checks afterwards; null to skip.")


class DockerLogsAction(ReadOnlyAction):
    kind: Literal["docker_logs"]


class RestartAction(ActionBase):
    """/restart on any target: the service's platform (container, kubernetes, systemd, supervisor) restarts it."""

    kind: Literal["restart"]
    timeout: Duration = Field(
        30.0,
        description="A container's graceful stop before Docker kills it (runbook 001: restart -t 30); systemd, supervisord and Kubernetes "
        "use their own (TimeoutStopSec, stopwaitsecs, terminationGracePeriodSeconds), which the plan shows.",
    )
    verify: VerifyPolicy | None = Field(
        VerifyPolicy(),
        description="Wait until the platform says it is up, then run the service's checks; null: wait only for the platform, "
        "up to its own deadline (progressDeadlineSeconds, TimeoutStopSec + TimeoutStartSec, startsecs) plus 10 s.",
    )


class LogsAction(ReadOnlyAction):
    """/logs on any target: read from the service's platform, redacted."""

    kind: Literal["logs"]


class SupervisorRestartAction(RestartAction):
    """A supervisord program or group (`supervisorctl restart laravel-worker:*`); services on supervisor only."""

    kind: Literal["supervisor_restart"]  # type: ignore[assignment]


class SupervisorLogsAction(ReadOnlyAction):
    """A supervisord program's or group's stdout and stderr logs; services on supervisor only."""

    kind: Literal["supervisor_logs"]


class K8sRolloutRestartAction(RestartAction):
    """`kubectl rollout restart` of a Deployment or StatefulSet; services on Kubernetes only."""

    kind: Literal["k8s_rollout_restart"]  # type: ignore[assignment]


class K8sRolloutUndoAction(ActionBase):
    """`kubectl rollout undo [--to-revision N]` of a Deployment: back to its previous revision, or a given one."""

    kind: Literal["k8s_rollout_undo"]
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Wait for the rollout, then run the service's checks; null to skip.")


class K8sScaleAction(ActionBase):
    """Set a Deployment's or StatefulSet's replicas (the scale subresource), within declared bounds."""

    kind: Literal["k8s_scale"]
    min_replicas: int = Field(ge=0, le=1000, description="The fewest replicas a request may ask for.")
    max_replicas: int = Field(ge=1, le=1000, description="The most replicas a request may ask for.")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Wait until the replicas are ready, then run the service's checks; null to skip.")

    @model_validator(mode="after")
    def _bounds(self) -> "K8sScaleAction":
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not be above max_replicas")
        return self


class K8sLogsAction(ReadOnlyAction):
    """The logs of a Kubernetes service's pods, every container or one, merged by time; since, tail and grep."""

    kind: Literal["k8s_logs"]


class SystemdRestartAction(RestartAction):
    """`systemctl restart UNIT` over D-Bus, waiting for the job's result; services on systemd only."""

    kind: Literal["systemd_restart"]  # type: ignore[assignment]


class SystemdStartAction(ActionBase):
    """`systemctl start UNIT` over D-Bus: the job's result, then the service's checks; services on systemd only."""

    kind: Literal["systemd_start"]
    timeout: Duration = Field(90.0, description="How long systemd's job may take (the unit's own start timeout applies too).")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Run the service's checks afterwards; null to skip.")


class SystemdReloadAction(ActionBase):
    """`systemctl reload UNIT` (its ExecReload) over D-Bus: the job's result, then the service's checks."""

    kind: Literal["systemd_reload"]
    timeout: Duration = Field(90.0, description="How long systemd's job may take.")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="Run the service's checks afterwards; null to skip.")


class SystemdStopAction(ActionBase):
    """`systemctl stop UNIT` over D-Bus, waiting for the job's result; the unit stays stopped."""

    kind: Literal["systemd_stop"]
    timeout: Duration = Field(90.0, description="How long systemd's job may take (the unit's TimeoutStopSec decides when it is killed).")


class SystemdLogsAction(ReadOnlyAction):
    """A systemd service's unit journal (journalctl -u), with since, tail and grep; services on systemd only."""

    kind: Literal["systemd_logs"]


class DockerExecAction(ActionBase):
    """A fixed argument list in a service's container; parameters fill whole arguments, never a shell."""

    kind: Literal["docker_exec"]
    service: ServiceName = Field(description="Its container runs the command; its owners are the default roles.")
    command: list[Annotated[str, Field(max_length=1000)]] = Field(
        min_length=1, description="Argument list; an argument that is exactly {name} is replaced by that parameter."
    )
    params: dict[ParamName, Param] = {}
    timeout: Duration = Field(300.0, description="The command is reported as failed after this long.")

    @model_validator(mode="after")
    def _placeholders(self) -> "DockerExecAction":
        import re

        for argument in self.command:
            for name in re.findall(r"\{([a-z][a-z0-9_]{0,30})\}", argument):
                if argument != "{" + name + "}":
                    raise ValueError(f"argument '{argument}' must be exactly {{{name}}}: parameters fill whole arguments")
                if name not in self.params:
                    raise ValueError(f"argument {{{name}}} names no declared parameter")
        return self


class HttpAction(ActionBase):
    """A declared request, e.g. a deploy-rollback hook; nothing of it comes from chat but typed parameters in the body."""

    kind: Literal["http"]
    service: ServiceName = Field(description="The service it acts on: its owners are the default roles, and it is locked.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: HttpUrl = Field(description="URL; ${VAR} allowed.")
    headers: CredentialHeaders = Field({}, description="Request headers; use ${VAR} for tokens.")
    params: dict[ParamName, Param] = Field({}, description="Sent as a JSON object body.")
    expect_status: list[int] = Field([200, 201, 202, 204], description="Statuses that count as success.")
    timeout: Duration = 30.0
    verify: VerifyPolicy | None = Field(None, description="Run the service's checks afterwards (the service needs a container).")


class PgBackupAction(ActionBase):
    kind: Literal["pg_backup"]
    approval: ApprovalPolicy = Field(ApprovalPolicy(approvals=0), description="A backup changes nothing; by default it needs no approval.")
    timeout: Duration = Field(6 * 3600.0, description="A dump still running after this is stopped and reported.")


class PgRestoreAction(ActionBase):
    kind: Literal["pg_restore"]
    approval: ApprovalPolicy = Field(
        ApprovalPolicy(approvals=2, confirm=True), description="Two approvers, neither the requester, each typing the database name."
    )
    timeout: Duration = Field(6 * 3600.0, description="A restore still running after this is stopped and reported.")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="The dependents' checks afterwards.")


class PgTerminateAction(ActionBase):
    kind: Literal["pg_terminate"]


class PgVacuumAction(ActionBase):
    kind: Literal["pg_vacuum"]
    timeout: Duration = Field(3600.0, description="VACUUM ANALYZE runs under this statement timeout.")


class RedisDeletePatternAction(ActionBase):
    kind: Literal["redis_delete_pattern"]


class RedisFlushAction(ActionBase):
    kind: Literal["redis_flush"]
    approval: ApprovalPolicy = Field(ApprovalPolicy(confirm=True), description="The approver types the cache's name.")


class JobAction(ActionBase):
    """jobs.<name>: a runbook job in a service's container that must be run dry first (runbook 000:
    enforce_data_retention --dry-run). The real run needs the same user's dry run, recent enough,
    and its output is shown in the approval plan."""

    kind: Literal["job"] = "job"
    service: ServiceName = Field(description="Its container runs the job; its owners are the default roles.")
    command: list[Annotated[str, Field(max_length=1000)]] = Field(min_length=1, description="Argument list run through the Docker exec API, never a shell.")
    dry_run: list[Annotated[str, Field(max_length=1000)]] = Field(min_length=1, description="The same job's dry-run form, also an argument list.")
    dry_run_valid_for: Duration = Field(900.0, description="The real run needs a dry run by the same user at most this long before the request.")
    timeout: Duration = Field(600.0, description="The run is reported as failed after this long.")


class DeployAction(ActionBase):
    """/deploy <service> <version>: the service's deploy: steps (backup, migrate, start, switch, verify), rolled back when verification fails."""

    kind: Literal["deploy"]
    timeout: Duration = Field(300.0, description="How long pulling the image may take.")
    stop_grace: Duration = Field(30.0, description="Graceful stop timeout of the old container before Docker kills it.")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="The service's checks must pass within the deadline, else it is rolled back; null: only that it runs.")


class RollbackAction(ActionBase):
    """/rollback <service> [version]: the previous version (or a named earlier one), from the kept image or a rollout undo."""

    kind: Literal["rollback"]
    stop_grace: Duration = Field(30.0, description="Graceful stop timeout of the old container before Docker kills it.")
    verify: VerifyPolicy | None = Field(VerifyPolicy(), description="The service's checks afterwards; null: only that it runs.")


class AlertmanagerSilenceAction(ActionBase):
    """/incident silence <N> <duration>: an Alertmanager silence (API v2) on the labels the incident's alerts share, expired when it resolves."""

    kind: Literal["alertmanager_silence"]
    max_duration: Duration = Field(86400.0, description="The longest silence that may be asked for.")
    timeout: Duration = Field(10.0, description="How long Alertmanager may take to answer.")


ActionSpec = Annotated[
    Union[
        DockerRestartAction,
        DockerStopAction,
        DockerStartAction,
        DockerLogsAction,
        RestartAction,
        LogsAction,
        SupervisorRestartAction,
        SupervisorLogsAction,
        K8sRolloutRestartAction,
        K8sRolloutUndoAction,
        K8sScaleAction,
        K8sLogsAction,
        SystemdRestartAction,
        SystemdStartAction,
        SystemdReloadAction,
        SystemdStopAction,
        SystemdLogsAction,
        DockerExecAction,
        HttpAction,
        PgBackupAction,
        PgRestoreAction,
        PgTerminateAction,
        PgVacuumAction,
        RedisDeletePatternAction,
        RedisFlushAction,
        DeployAction,
        RollbackAction,
        AlertmanagerSilenceAction,
    ],
    Field(discriminator="kind"),
]

# Kinds a command's action may also have, besides its default's: the platform-specific forms.
COMMAND_KINDS = {
    "restart": ("restart", "docker_restart", "supervisor_restart", "k8s_rollout_restart", "systemd_restart"),
    "logs": ("logs", "docker_logs", "supervisor_logs", "systemd_logs"),
    "deploy": ("deploy",),
    "rollback": ("rollback",),
    "silence": ("alertmanager_silence",),
}

# The actions commands are bound to, shipped when app.yaml declares none of that name.
DEFAULT_ACTIONS = {
    "restart": RestartAction(kind="restart", description="Restart a service on its platform, then verify its checks pass."),
    "logs": LogsAction(kind="logs", description="Read a service's logs from its platform (redacted)."),
    "backup": PgBackupAction(kind="pg_backup", description="Dump a database (custom format), verify it, apply retention."),
    "restore": PgRestoreAction(kind="pg_restore", description="Restore a verified backup, after a safety backup, with dependents stopped."),
    "kill_idle": PgTerminateAction(kind="pg_terminate", description="Terminate the idle connections the plan lists."),
    "vacuum": PgVacuumAction(kind="pg_vacuum", description="VACUUM ANALYZE a database or one table."),
    "clear_ratelimit": RedisDeletePatternAction(kind="redis_delete_pattern", description="Delete one user's rate-limit keys."),
    "flush_cache": RedisFlushAction(kind="redis_flush", description="FLUSHDB the cache database."),
    "deploy": DeployAction(kind="deploy", description="Deploy a version of a service (backup, migrate, start, switch, verify; rolled back on failure)."),
    "rollback": RollbackAction(kind="rollback", description="Put a service's previous (or a named earlier) version back, then verify."),
    "silence": AlertmanagerSilenceAction(kind="alertmanager_silence", description="Silence an incident's alerts in Alertmanager until it resolves or the time is up."),
}
