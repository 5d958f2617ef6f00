"""Run checks concurrently, each under its own timeout, so a run lasts about as long as its slowest check."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace

import aiohttp

from bot.check.kinds import container, disk, exec as exec_kind, http, k8s_pods, k8s_workload, memory, postgres, redis, sql, supervisor_program, systemd_unit, tcp, tls
from bot.check.limits import HealthLimits
from bot.check.result import CheckResult, Finding
from bot.config.models import AppConfig, Service
from bot.config.types import MissingEnvironment
from bot.docker_engine import DockerGateway, DockerUnavailable
from bot.metrics import CHECK_LATENCY
from bot.metrics_check import metrics_for, run_metric
from bot.redaction import redact_cut
from bot.targets import Adapters, TargetError, target_of

log = logging.getLogger(__name__)

RUNNERS = {
    "http": http.run,
    "tcp": tcp.run,
    "postgres": postgres.run,
    "redis": redis.run,
    "container": container.run,
    "exec": exec_kind.run,
    "disk": disk.run,
    "memory": memory.run,
    "tls": tls.run,
    "sql": sql.run,
    "supervisor_program": supervisor_program.run,
    "systemd_unit": systemd_unit.run,
    "k8s_workload": k8s_workload.run,
    "k8s_pods": k8s_pods.run,
}


@dataclass(frozen=True)
class CheckContext:
    http: aiohttp.ClientSession
    docker: DockerGateway
    container: str | None  # the service's container, for container/exec checks that name none
    databases: dict = field(default_factory=dict)  # app.yaml databases:, for sql checks
    # The adapter and target of a service on another platform (bot/targets), for the container check.
    target_adapter: object | None = None
    target: object | None = None


class CheckEngine:
    """Owns the shared HTTP session and Docker gateway the check kinds use, and /health's limits
    (runs in progress shared, runs per user capped; see bot.check.limits)."""

    def __init__(self, docker: DockerGateway, health: HealthLimits | None = None):
        self.docker = docker
        self.targets = Adapters(docker)  # the platform adapters (bot/targets), sharing this Docker gateway
        self.health = health or HealthLimits()
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # Per-check timeouts come from asyncio.wait_for; no session-wide limit on connections.
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        return self._http

    async def run(self, config: AppConfig, services: list[str], *, metrics: bool = True) -> list[CheckResult]:
        """The checks of `services`, plus their metrics (bot.metrics_check); with every service
        named, also the metrics of no service (grouped as "metrics", which may be in `services`).

        `metrics=False` for verifying an action: a p95 latency over its window lags a restart that
        worked, and must not fail it."""
        jobs = []
        for name in services:
            service = config.services.get(name)
            if service is None:  # the "metrics" group /health lists (bot.check.service.resolve_services)
                continue
            for check in service.checks:
                jobs.append(self._run_one(name, service, check, config.databases, config))
        for name, metric in metrics_for(config, services) if metrics else []:
            jobs.append(self._run_metric(config, name, metric))
        batches = await asyncio.gather(*jobs)
        return [result for batch in batches for result in batch]

    async def _run_metric(self, config: AppConfig, name: str, metric) -> list[CheckResult]:
        # Under prometheus.timeout per query (bot.metrics_check), not a check's timeout.
        result = await run_metric(self._session(), config.prometheus, name, metric)
        CHECK_LATENCY.labels(result.kind, result.status).observe(result.latency_ms / 1000)
        return [replace(result, detail=_shorten(redact_cut(result.detail, MAX_DETAIL * 4, mark=False)))]

    async def _run_one(self, name: str, service: Service, check, databases: dict | None = None, config: AppConfig | None = None) -> list[CheckResult]:
        ctx = CheckContext(self._session(), self.docker, service.container, databases or {})
        started = time.perf_counter()
        try:
            found = target_of(service)
            if found and found[0] != "container" and config is not None:
                ctx = replace(ctx, target_adapter=self.targets.for_platform(config, found[0]), target=found[1])
            findings = await asyncio.wait_for(RUNNERS[check.kind](check, ctx), timeout=check.timeout)
        except (TimeoutError, asyncio.TimeoutError):
            findings = [Finding("critical", f"no answer within {check.timeout:g} s")]
        except MissingEnvironment as exc:
            findings = [Finding("critical", f"{exc}; set it in the bot's environment")]
        except (DockerUnavailable, TargetError) as exc:
            findings = [Finding("critical", str(exc))]
        except Exception as exc:  # a broken check must not take the others down
            log.exception("check %s/%s crashed", name, check.label)
            findings = [Finding("critical", f"check failed: {exc.__class__.__name__}: {exc}")]
        elapsed = time.perf_counter() - started
        CHECK_LATENCY.labels(check.kind, findings[0].status).observe(elapsed)
        return [
            CheckResult(
                service=name,
                check=check.label if f.sub_label is None else f"{check.label} {f.sub_label}",
                kind=check.kind,
                status=f.status,
                latency_ms=round(elapsed * 1000, 1),
                # Redact before shortening: a cut could split a secret from what marks it as one.
                detail=_shorten(redact_cut(f.detail, MAX_DETAIL * 4, mark=False)),
            )
            for f in findings
        ]

    async def close(self) -> None:
        self.health.close()
        await self.targets.close()
        if self._http is not None:
            await self._http.close()
        self.docker.close()


MAX_DETAIL = 500


def _shorten(text: str) -> str:
    text = text.splitlines()[0] if "\n" in text else text
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"
