"""Prometheus metric thresholds (app.yaml metrics:, runbook 000 section 4.2 and runbook 001
"When to Alert") as /health rows: one CheckResult per metric, kind "metric", under the
metric's service or, without one, the group "metrics".

A metric that cannot be read (Prometheus down, a query the server refuses, a result that is
not one number) is one sentence graded UNREADABLE: the service may well be fine, but nobody
can tell from this reading.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from bot.check.result import CheckResult
from bot.config.schedule_models import Metric, PrometheusSettings
from bot.config.types import MissingEnvironment, expand_env
from bot.metrics_check.client import PrometheusClient, PrometheusError
from bot.metrics_check.grade import describe, for_note, held_for, instant_status, range_step, threshold

METRICS_GROUP = "metrics"  # where metrics without a service show in /health
UNREADABLE = "warning"
KIND = "metric"

log = logging.getLogger(__name__)


def unassigned(config) -> bool:
    """Some metric has no service, so /health of everything needs the "metrics" group."""
    return any(metric.service is None for metric in config.metrics.values())


def metrics_for(config, services: list[str]) -> list[tuple[str, Metric]]:
    """The metrics of the named services; all of them (also those without a service) when every service is named."""
    if not config.metrics or config.prometheus is None:
        return []
    named = set(services)
    every = set(config.services) <= named
    return [(name, metric) for name, metric in config.metrics.items() if (metric.service in named if metric.service else every)]


async def run_metric(session: aiohttp.ClientSession, prometheus: PrometheusSettings, name: str, metric: Metric, now: float | None = None) -> CheckResult:
    started = time.perf_counter()
    try:
        client = PrometheusClient(session, expand_env(prometheus.url), prometheus.timeout)
        # Each query has prometheus.timeout; a metric with `for` makes two, one after the other.
        status, detail = await asyncio.wait_for(grade_metric(client, name, metric, now), timeout=2 * prometheus.timeout + 1)
    except (TimeoutError, asyncio.TimeoutError):
        status, detail = UNREADABLE, f"Prometheus did not answer within {prometheus.timeout:g} s"
    except PrometheusError as exc:
        status, detail = UNREADABLE, str(exc)
    except MissingEnvironment as exc:
        status, detail = UNREADABLE, f"{exc}; set it in the bot's environment"
    except Exception as exc:  # an answer shaped unlike Prometheus's: this metric is unreadable, /health goes on
        log.exception("metric %s could not be graded", name)
        status, detail = UNREADABLE, f"the answer could not be read ({exc.__class__.__name__})"
    return CheckResult(
        service=metric.service or METRICS_GROUP,
        check=name,
        kind=KIND,
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        detail=detail,
    )


async def grade_metric(client: PrometheusClient, name: str, metric: Metric, now: float | None = None) -> tuple[str, str]:
    now = round(time.time() if now is None else now, 3)
    value = await client.instant(metric.query, now)
    status = instant_status(value, metric)
    detail = describe(name, value, metric)
    if status == "ok" or not metric.for_:
        return status, detail
    step = range_step(metric.for_)
    start = round(now - metric.for_, 3)
    points = await client.range(metric.query, start, now, step)
    # The most severe level met now that also held throughout; the level above it only briefly.
    levels = ["critical", "warning"] if status == "critical" else ["warning"]
    missed = None
    for level in levels:
        held = held_for(points, start, now, step, value, threshold(metric, level), metric.lower_is_worse)
        if held is None:
            return level, detail if missed is None else f"{detail}; {missed}"
        if missed is None:
            missed = for_note(level, metric, held, step)
    # Nothing held long enough: graded ok, saying how long the lowest level has held.
    held = held_for(points, start, now, step, value, threshold(metric, "warning"), metric.lower_is_worse) if metric.warn is not None else None
    note = for_note("warning", metric, held, step) if held is not None else missed
    return "ok", f"{detail}; {note}"
