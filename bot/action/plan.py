"""Exactly what an action will do, as data; its hash is what approvers approve."""
from __future__ import annotations

import hashlib
import json

from bot.config.models import ActionSpec, AppConfig
from bot.docker_engine import DockerGateway


class PlanError(Exception):
    """The plan cannot be made (no container, container missing): one sentence for the user."""


async def restart_plan(
    config: AppConfig, docker: DockerGateway, action: str, spec: ActionSpec, service: str, *, with_dependents: bool, force_recreate: bool
) -> dict:
    targets = [service] + (config.dependents_of(service) if with_dependents else [])
    steps, skipped = [], []
    for name in targets:
        container = config.services[name].container
        if container is None:
            if name == service:
                raise PlanError(f"{service} has no container in app.yaml, so there is nothing to restart.")
            skipped.append(name)
            continue
        info = await docker.inspect(container)
        if info is None:
            raise PlanError(f"Container {container} of {name} does not exist on the Docker Engine; nothing was requested.")
        state = info.get("State", {})
        steps.append(
            {
                "service": name,
                "container": container,
                "container_id": info["Id"],
                "operation": "recreate" if force_recreate and name == service else "restart",
                "graceful_timeout": spec.timeout,
                "oom_killed": bool(state.get("OOMKilled")),
            }
        )
    return {
        "action": action,
        "kind": spec.kind,
        "service": service,
        "options": {"with_dependents": with_dependents, "force_recreate": force_recreate},
        "steps": steps,
        "skipped": skipped,
        "verify": spec.verify.model_dump() if spec.verify else None,
    }


def plan_hash(plan: dict) -> str:
    # oom_killed describes the target, it is not part of what runs: a restart clears it.
    stable = {**plan, "steps": [{k: v for k, v in step.items() if k != "oom_killed"} for step in plan["steps"]]}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def describe_step(number: int, step: dict, verify: dict | None) -> str:
    short = step["container_id"][:12]
    if step["operation"] == "recreate":
        what = f"stop {step['container']} ({short}) with {step['graceful_timeout']:g} s grace, then create and start a new container from the same image and settings"
    else:
        what = f"docker restart {step['container']} ({short}) with {step['graceful_timeout']:g} s grace"
    if verify:
        what += f", then run {step['service']}'s checks until they pass (up to {verify['deadline']:g} s)"
    return f"{number}. {step['service']}: {what}"
