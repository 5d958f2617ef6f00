"""k8s_rollout_restart: the restart kind, for services on Kubernetes only (`kubectl rollout restart`).

The pod template gets the kubectl.kubernetes.io/restartedAt annotation, so the controller replaces
every pod; verification waits for the rollout (bot/targets/kubernetes), then runs the checks.
"""
from __future__ import annotations

from bot.action.kinds.restart import Restart


class K8sRolloutRestart(Restart):
    name = "k8s_rollout_restart"
    platforms = ("kubernetes",)


KIND = K8sRolloutRestart()
