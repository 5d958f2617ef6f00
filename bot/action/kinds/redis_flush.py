"""redis_flush: FLUSHDB of one cache's database (runbook 000 1.3: "flush cache, safe: only cached data").

Only the database the cache's URL names is emptied, never FLUSHALL. The approver types the
cache's name (the action's approval.confirm, on by default). The key count is a fact: it changes
all the time without changing what would run; the server and db number are the plan.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.kinds.redis_delete_pattern import planned_cache
from bot.action.params import ParamType
from bot.cache.client import CacheUnavailable, connect
from bot.cache.keys import flush


class RedisFlush(ActionKind):
    name = "redis_flush"
    verb = "flush"

    def params(self, spec) -> dict[str, ParamType]:
        return {"cache": ParamType("cache", "The cache whose database is emptied.")}

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        name = params["cache"]
        cache = planned_cache(ctx.config, name)
        try:
            async with connect(name, cache) as (client, at):
                keys = int(await client.dbsize())
        except CacheUnavailable as exc:
            raise PlanError(str(exc)) from None
        confirm = name if getattr(getattr(spec, "approval", None), "confirm", True) else None
        step = {"cache": name, "server": at.server, "db": at.db}
        return Plan(action, self.name, name, {"cache": name}, [step], [Target("cache", name)], confirm=confirm, facts={"keys": keys})

    def describe(self, plan: Plan) -> list[str]:
        return [f"{s['cache']}: FLUSHDB database {s['db']} on {s['server']}: every key in it goes" for s in plan.steps]

    def notes(self, plan: Plan) -> list[str]:
        keys = plan.facts.get("keys")
        return [f"It held {keys:,} keys when this was planned."] if keys is not None else []

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        for step in plan.steps:
            name = step["cache"]
            cache = ctx.config.caches.get(name)
            if cache is None:
                report.steps.append(StepResult(name, False, f"{name}: cache {name} is no longer in app.yaml; nothing was flushed."))
                break
            try:
                async with connect(name, cache) as (client, at):
                    if (at.server, at.db) != (step["server"], step["db"]):
                        report.steps.append(StepResult(name, False, f"{name}: now points at {at}, not the database approved; nothing was flushed."))
                        break
                    before, after = await flush(client)
            except CacheUnavailable as exc:
                report.steps.append(StepResult(name, False, f"{name}: {exc}"))
                break
            report.steps.append(StepResult(name, True, f"{name}: flushed db {step['db']}: {before:,} keys before, {after:,} after."))
        return report


KIND = RedisFlush()
