"""What a service runs on (its target), and how opsbot reaches each platform (top-level `targets:`).

A service names at most one target: `container:` (a Docker container), `kubernetes:`,
`systemd:` or `supervisor:`. None is fine: a service with only checks. The platform's
connection is declared once under `targets:`; a service whose target has no connection is
an error with its line (`target_references`). The adapters live in bot/targets/.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from bot.config.types import At, Duration, Strict

# Kubernetes object names (DNS-1123): a namespace or container is a label, a workload a subdomain.
K8sLabelName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
K8sObjectName = Annotated[str, Field(max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
# A label selector's key ([prefix/]name) and value, as the API validates them.
_LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
_LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
LabelKey = Annotated[str, Field(max_length=317, pattern=_LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=63, pattern=_LABEL_VALUE)]
# supervisord's [program:x] and [group:x] names: no ':' (it separates group and process), no spaces.
SupervisorName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]

PLATFORMS = ("container", "kubernetes", "systemd", "supervisor")


class KubernetesTarget(Strict):
    """A Deployment or StatefulSet; /restart is a rollout restart, /logs reads its pods."""

    namespace: K8sLabelName
    deployment: K8sObjectName | None = None
    statefulset: K8sObjectName | None = None
    selector: dict[LabelKey, LabelValue] | None = Field(
        None, description="Pods of the workload; defaults to its own spec.selector.matchLabels."
    )
    container: K8sLabelName | None = Field(None, description="The pod container logs are read from; unset: every container, merged by time.")

    @model_validator(mode="after")
    def _one_workload(self) -> "KubernetesTarget":
        if (self.deployment is None) == (self.statefulset is None):
            raise ValueError("name exactly one of deployment or statefulset")
        return self

    @property
    def workload_kind(self) -> str:
        return "Deployment" if self.deployment else "StatefulSet"

    @property
    def workload_name(self) -> str:
        return self.deployment or self.statefulset or ""


class SystemdTarget(Strict):
    """A systemd service unit, reached over D-Bus (targets.systemd)."""

    unit: Annotated[str, Field(max_length=256, pattern=r"^[A-Za-z0-9:_.@-]+\.service$")] = Field(
        description="A unit name ending .service, e.g. nginx.service."
    )


class SupervisorTarget(Strict):
    """A supervisord program, or a group (`supervisorctl restart laravel-worker:*`)."""

    program: SupervisorName | None = None
    group: SupervisorName | None = Field(None, description="All the group's processes (group:*).")

    @model_validator(mode="after")
    def _one_name(self) -> "SupervisorTarget":
        if (self.program is None) == (self.group is None):
            raise ValueError("name exactly one of program or group")
        return self

    @property
    def label(self) -> str:
        """As supervisorctl would name it."""
        return f"{self.group}:*" if self.group else str(self.program)


class KubernetesConnection(Strict):
    kubeconfig: str | None = Field(None, description="Path to a kubeconfig; unset: the in-cluster service account.")
    context: str | None = Field(None, description="The kubeconfig context; unset: its current context.")


class SystemdConnection(Strict):
    bus: str = Field("unix:path=/run/dbus/system_bus_socket", description="The D-Bus system bus address.")

    journal_directory: str | None = Field(
        None, description="Read units' journals from the files in this directory (journalctl --directory); unset: the host's own journal."
    )

    @field_validator("bus")
    @classmethod
    def _unix(cls, value: str) -> str:
        if not value.startswith("unix:path="):
            raise ValueError("must be a unix:path= D-Bus address")
        return value


class SupervisorConnection(Strict):
    url: str = Field(description="supervisord's XML-RPC endpoint: http://host:port/RPC2 or unix:///path/to/supervisor.sock.")
    username_env: EnvName | None = Field(None, description="Environment variable holding the HTTP basic-auth user.")
    password_env: EnvName | None = Field(None, description="Environment variable holding the HTTP basic-auth password.")
    timeout: Duration = Field(10.0, description="Each XML-RPC call is abandoned after this.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith("unix:///"):
            return value
        if not (value.startswith("http://") or value.startswith("https://")) or "@" in value:
            raise ValueError("must be http(s)://host:port/RPC2 or unix:///path, with credentials in username_env/password_env")
        return value

    @model_validator(mode="after")
    def _both(self) -> "SupervisorConnection":
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("set both username_env and password_env, or neither")
        return self


class TargetConnections(Strict):
    """How opsbot reaches each platform; declare only those the services use."""

    kubernetes: KubernetesConnection | None = None
    systemd: SystemdConnection | None = None
    supervisor: SupervisorConnection | None = None


def target_of(service) -> tuple[str, object] | None:
    """(platform, target) of a Service: ("container", "web-1"), ("supervisor", SupervisorTarget), or None."""
    for platform in PLATFORMS:
        target = getattr(service, platform, None)
        if target is not None:
            return platform, target
    return None


def one_target(service) -> None:
    """The Service validator's rule: at most one target (ValueError naming them otherwise)."""
    named = [platform for platform in PLATFORMS if getattr(service, platform, None) is not None]
    if len(named) > 1:
        raise ValueError(f"a service names at most one target, and this one names {' and '.join(named)}")


# Kinds that act on one platform only, by the platform they need.
PLATFORM_KINDS = {"docker_restart": "container", "docker_logs": "container", "supervisor_restart": "supervisor", "supervisor_logs": "supervisor",
                  "k8s_rollout_restart": "kubernetes", "systemd_restart": "systemd", "systemd_logs": "systemd"}
# Check kinds that read one platform only.
PLATFORM_CHECKS = {"supervisor_program": "supervisor", "k8s_workload": "kubernetes", "k8s_pods": "kubernetes", "systemd_unit": "systemd"}


def target_references(config) -> list[At]:
    """A service whose target's platform has no connection under `targets:`; a command's action
    (restart, logs) whose kind works on one platform while some service runs on another."""
    problems = []
    for name, service in config.services.items():
        found = target_of(service)
        if found and found[0] != "container" and getattr(config.targets, found[0]) is None:
            platform = found[0]
            problems.append(At(("services", name, platform), f"service '{name}' runs on {platform}, but app.yaml has no targets.{platform} connection"))
        for i, check in enumerate(service.checks):
            needs = PLATFORM_CHECKS.get(check.kind)
            if needs and (found or ("",))[0] != needs:
                problems.append(At(("services", name, "checks", i, "kind"), f"service '{name}' has a {check.kind} check, but it does not run on {needs}"))
    for command in ("restart", "logs"):
        action = config.actions.get(command)
        needs = PLATFORM_KINDS.get(getattr(action, "kind", ""))
        if needs is None:
            continue
        elsewhere = [name for name, service in config.services.items() if (target_of(service) or (needs,))[0] != needs]
        if elsewhere:
            problems.append(At(("actions", command, "kind"), f"action '{command}' has kind {action.kind}, which works on {needs} only, but service '{elsewhere[0]}' runs elsewhere: use kind {command}"))
    return problems
