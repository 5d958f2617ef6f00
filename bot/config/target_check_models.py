"""Check models for services on other platforms than Docker (bot/targets): kept here so models.py stays small.

Each is a member of the Check union in models.py, told apart by `kind`; its runner is a module in bot/check/kinds/.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.config.check_base import CheckBase
from bot.config.types import Duration, Thresholds


class SupervisorProgramCheck(CheckBase):
    """The service's supervisor program or group: RUNNING is ok, BACKOFF a warning, FATAL or EXITED critical."""

    kind: Literal["supervisor_program"]
    min_uptime: Duration | None = Field(
        None, description="Warn when a process started less than this ago (restarted by autorestart); BACKOFF always warns."
    )


class K8sWorkloadCheck(CheckBase):
    """The service's Deployment or StatefulSet: ready and available replicas against desired, and a rollout stuck past its deadline."""

    kind: Literal["k8s_workload"]


class K8sPodsCheck(CheckBase):
    """The service's pods: CrashLoopBackOff, OOMKilled, Pending too long, and containers restarted in the last hour."""

    kind: Literal["k8s_pods"]
    pending_limit: Duration = Field(300.0, description="A pod Pending longer than this is critical.")
    restarts: Thresholds = Field(
        Thresholds(warn=1, critical=5),
        description="Containers whose last termination (lastState.terminated.finishedAt) was within the hour.",
    )


class SystemdUnitCheck(CheckBase):
    """The service's systemd unit: active is ok, activating (auto-restart) a warning, failed or inactive critical,
    with the last run's result (exit-code, the OOM kill), NRestarts and the time since the last state change."""

    kind: Literal["systemd_unit"]
    min_uptime: Duration | None = Field(None, description="Warn when the unit became active less than this ago.")
    restarts: Thresholds = Field(
        Thresholds(warn=1, critical=5), description="systemd's automatic restarts (NRestarts) since the unit was last started by hand."
    )
