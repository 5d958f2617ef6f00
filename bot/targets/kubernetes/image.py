"""`kubectl set image`: a workload's container image, read and set through the adapter.

The patch is a strategic merge on the pod template that names the container, so the other
containers and every other field stay as they are; the controller then rolls it out (a new
ReplicaSet, the next revision), and `/rollback` is a rollout undo of that revision.
"""
from __future__ import annotations

from bot.targets.base import TargetError


def container_image(workload, wanted: str | None) -> tuple[str, str]:
    """(container name, its image) in the workload's pod template: `wanted`, or the only container."""
    containers = workload.spec.template.spec.containers or []
    if wanted is not None:
        found = next((c for c in containers if c.name == wanted), None)
        if found is None:
            names = ", ".join(c.name for c in containers) or "none"
            raise TargetError(f"its pod template has no container {wanted} (containers: {names})")
        return found.name, found.image
    if len(containers) != 1:
        names = ", ".join(c.name for c in containers)
        raise TargetError(f"its pod template has {len(containers)} containers ({names}); name the one to deploy with deploy.container")
    return containers[0].name, containers[0].image


def set_image_patch(container: str, image: str) -> dict:
    """What `kubectl set image <workload> <container>=<image>` sends."""
    return {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}


async def set_image(adapter, detail: dict, container: str, image: str) -> None:
    """Set `container`'s image on the workload `detail` names (kind, namespace, name)."""
    await adapter.patch(detail, set_image_patch(container, image), "set the image of")
