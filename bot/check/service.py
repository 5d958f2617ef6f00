"""Check domain services: run the checks of some services and record the run."""
from __future__ import annotations

import difflib
import time
from dataclasses import dataclass

from sqlalchemy import select

from bot.check.engine import CheckEngine
from bot.check.models import CheckRun
from bot.check.result import CheckResult, worst
from bot.config.models import AppConfig
from bot.metrics_check import METRICS_GROUP, unassigned
from bot.storage import Database


class UnknownService(LookupError):
    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        shown = name if len(name) <= 40 else name[:39] + "…"
        super().__init__(f"Unknown service '{shown}'.{hint} Known: {', '.join(known) or 'none configured'}.")


def resolve_services(config: AppConfig, names: list[str]) -> list[str]:
    """Names as typed -> configured service names (all when none given), in config order, no repeats.

    With every service, also the "metrics" group when a metric has no service: /health lists it like
    a service (CheckEngine.run runs those metrics then, and skips the group name itself)."""
    known = list(config.services)
    if not names:
        return known + _metrics_group(config)
    for name in names:
        if name not in config.services:
            raise UnknownService(name, known)
    resolved = [n for n in known if n in set(names)]
    return resolved + _metrics_group(config) if len(resolved) == len(known) else resolved


def _metrics_group(config: AppConfig) -> list[str]:
    if config.prometheus is None or METRICS_GROUP in config.services or not unassigned(config):
        return []
    return [METRICS_GROUP]


@dataclass(frozen=True)
class HealthReport:
    results: list[CheckResult]
    duration_ms: float
    run_id: int | None  # None when the database could not record it
    shared: bool = False  # this caller joined a run already in progress (bot.check.limits)

    @property
    def status(self) -> str:
        return worst(r.status for r in self.results)


async def run_health(
    engine: CheckEngine, db: Database, config: AppConfig, services: list[str], *, trigger: str, user: str, channel: str
) -> HealthReport:
    started = time.perf_counter()
    results = await engine.run(config, services)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    run_id = await record_run(db, results, duration_ms, trigger=trigger, user=user, channel=channel)
    return HealthReport(results, duration_ms, run_id)


async def record_run(db: Database, results: list[CheckResult], duration_ms: float, *, trigger: str, user: str, channel: str) -> int | None:
    """Save a run to check_runs; None when the bot's database is down (the report still matters)."""
    run = CheckRun(
        trigger=trigger,
        requested_by=user,
        channel=channel,
        status=worst(r.status for r in results),
        duration_ms=round(duration_ms, 1),
        results=[r.as_dict() for r in results],
    )
    try:
        async with db.sessions() as session, session.begin():
            session.add(run)
    except Exception:
        return None
    return run.id


async def recent_runs(db: Database, limit: int = 10) -> list[CheckRun]:
    async with db.sessions() as session:
        rows = await session.execute(select(CheckRun).order_by(CheckRun.id.desc()).limit(limit))
        return list(rows.scalars())
