"""Targets: one adapter per platform (bot/targets/base.py has the protocol).

`Adapters` is built once per process in the composition root (it lives on the CheckEngine,
next to the Docker gateway) and hands out the adapter for a service's target:

    adapter = bot.checks.targets.adapter_for(config, "queue")   # TargetAdapter, or TargetError
    workload = await adapter.describe("queue", target)

Each platform module exposes `build(connection, adapters) -> TargetAdapter`, where `connection`
is that platform's `targets.<platform>` model (None for Docker) and `adapters.docker` is the
shared DockerGateway. Built adapters are kept per (platform, connection), so a reloaded config
with the same connection reuses the client; `close()` closes those that have a close().
"""
from __future__ import annotations

import importlib

from bot.config.target_models import target_of
from bot.targets.base import LogLines, LogQuery, Reading, Settled, TargetAdapter, TargetError, Workload

__all__ = ["Adapters", "LogLines", "LogQuery", "Reading", "Settled", "TargetAdapter", "TargetError", "Workload", "target_of"]

# platform -> module with build(connection, adapters); imported when first used.
PLATFORM_MODULES = {
    "container": "bot.targets.docker",
    "supervisor": "bot.targets.supervisor",
    "kubernetes": "bot.targets.kubernetes",
    "systemd": "bot.targets.systemd",
}


class Adapters:
    def __init__(self, docker):
        self.docker = docker  # bot.docker_engine.DockerGateway
        self._built: dict[tuple, TargetAdapter] = {}

    def adapter_for(self, config, service_name: str) -> TargetAdapter:
        """The adapter for the service's target; TargetError when it has none."""
        found = target_of(config.services[service_name])
        if found is None:
            raise TargetError(f"{service_name} names no target (container, kubernetes, systemd or supervisor) in app.yaml")
        return self.for_platform(config, found[0])

    def for_platform(self, config, platform: str) -> TargetAdapter:
        connection = None if platform == "container" else getattr(config.targets, platform)
        if platform != "container" and connection is None:
            raise TargetError(f"app.yaml has no targets.{platform} connection")
        key = (platform, connection)
        if key not in self._built:
            module = importlib.import_module(PLATFORM_MODULES[platform])
            self._built[key] = module.build(connection, self)
        return self._built[key]

    async def close(self) -> None:
        for adapter in self._built.values():
            close = getattr(adapter, "close", None)
            if close is not None:
                await close()
        self._built.clear()
