"""app.yaml `services.<name>.deploy:`: what /deploy may put on a service, and in which order.

The image repository (its registry is the host part), the version pattern a request must
match, a database backed up first, a migration job, and blue-green for containers. The
deploy and rollback actions' policies (roles, approvals, verification) are `actions:` like
any other (bot/config/action_models.py). Only containers and Kubernetes workloads deploy.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bot.config.target_models import K8sLabelName
from bot.config.types import At, Name, Strict

# A repository as `docker pull` takes it, without a tag or digest: [registry[:port]/]path.
ImageRepository = Annotated[str, Field(max_length=255, pattern=r"^[a-z0-9]([a-z0-9.:_-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
DEFAULT_VERSIONS = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # any Docker tag
SWITCH_KINDS = ("http", "docker_exec")


class BlueGreen(Strict):
    """Two colors side by side (runbook 000 section 2.2): the new one starts on the other color's port,
    is verified there, then the switch action moves traffic to it and the old one stops."""

    port_env: EnvName = Field("PORT", description="The environment variable that tells the container its port.")
    ports: dict[Literal["blue", "green"], Annotated[int, Field(ge=1, le=65535)]] = Field(
        description="The port of each color: blue and green; the running container's port_env says which color it is."
    )
    health_url: str = Field(
        max_length=500, pattern=r"^https?://[^\s]+$",
        description="Polled on the new color before the switch, {port} replaced by its port; it must answer 2xx.",
    )
    switch: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")] = Field(
        description="A declared http or docker_exec action that moves traffic; it gets parameters port and color when it declares them."
    )

    @model_validator(mode="after")
    def _two_ports(self) -> "BlueGreen":
        if set(self.ports) != {"blue", "green"} or self.ports["blue"] == self.ports["green"]:
            raise ValueError("ports needs blue and green, on two different ports")
        if "{port}" not in self.health_url:
            raise ValueError("health_url must contain {port}: it is polled on the new color's port")
        return self


class ServiceDeploy(Strict):
    image: ImageRepository = Field(description="The image repository, without a tag; its registry is where /deploy pulls from.")
    versions: str = Field(
        DEFAULT_VERSIONS, max_length=100, description="A regular expression the whole version must match (the image tag); default: any Docker tag."
    )
    backup_first: Name | None = Field(None, description="A database of databases: backed up (and verified) before anything changes.")
    migrate: Name | None = Field(None, description="A job of jobs, the service's own: run from the new image in a one-off container with the service container's environment, mounts and network, after the backup; its dry run (the image is pulled when planning) shows in the approval. Containers only.")
    blue_green: BlueGreen | None = Field(None, description="Containers only: start the new version next to the old one, verify, switch, stop the old.")
    container: K8sLabelName | None = Field(None, description="Kubernetes: the pod container whose image is set; default: the target's, or the only one.")
    keep_images: int = Field(
        5, ge=1, le=50,
        description="Containers: how many earlier versions' images opsbot keeps on the Docker Engine for /rollback; after each "
                    "successful deploy or rollback, older versions' images are untagged (their opsbot-kept and deploy repository "
                    "tags) so the Engine frees them.",
    )

    @field_validator("versions")
    @classmethod
    def _pattern(cls, value: str) -> str:
        import regex

        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"versions is not a valid regular expression ({exc})") from None
        return value


def deploy_references(config) -> list[At]:
    """What a service's deploy: names must exist: the database, the job, the switch action; and a target that deploys."""
    problems = []
    for name, service in config.services.items():
        deploy = service.deploy
        if deploy is None:
            continue
        at = ("services", name, "deploy")
        if service.container is None and service.kubernetes is None:
            problems.append(At(at, f"service '{name}' declares a deploy, but deploys run on a container or a Kubernetes workload and it has neither"))
        if deploy.backup_first and deploy.backup_first not in config.databases:
            problems.append(At(at + ("backup_first",), f"service '{name}' backs up unknown database '{deploy.backup_first}' first"))
        if deploy.migrate and deploy.migrate not in config.jobs:
            problems.append(At(at + ("migrate",), f"service '{name}' migrates with unknown job '{deploy.migrate}'"))
        elif deploy.migrate and service.container is None:
            problems.append(At(at + ("migrate",), f"service '{name}' declares migrate, which runs in a one-off container of the new image: containers only"))
        elif deploy.migrate and config.jobs[deploy.migrate].service != name:
            problems.append(At(at + ("migrate",), f"service '{name}' migrates with job '{deploy.migrate}' of service "
                                                  f"'{config.jobs[deploy.migrate].service}': a deploy's migration must be the service's own job (it runs from the new image)"))
        if deploy.blue_green is not None:
            if service.container is None:
                problems.append(At(at + ("blue_green",), f"service '{name}' declares blue_green, which is for containers only"))
            switch = config.actions.get(deploy.blue_green.switch)
            if switch is None or switch.kind not in SWITCH_KINDS:
                problems.append(At(at + ("blue_green", "switch"), f"service '{name}' switches with '{deploy.blue_green.switch}', which is not a declared http or docker_exec action"))
    return problems
