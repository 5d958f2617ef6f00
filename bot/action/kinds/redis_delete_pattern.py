"""redis_delete_pattern: delete one user's rate-limit keys (runbook 004: rate:user:{id}:*).

The plan is the list of keys SCAN found when it was made (up to MAX_PLANNED); executing deletes
exactly those that still exist, so a key created after the approval is never touched, and keys
that expired meanwhile are counted as gone. The rate-limit patterns come from app.yaml; chat only
supplies the user id, which may not hold glob characters.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.cache.client import CacheUnavailable, UnknownCache, cache_named, connect, where
from bot.cache.keys import BadUser, delete_keys, keys_from_json, keys_to_json, scan_keys, shown_key, user_patterns

MAX_PLANNED = 10_000  # keys one request may delete
SHOWN = 50  # keys listed under the plan


def planned_cache(config, name: str):
    """The cache's config, or PlanError when app.yaml no longer declares it."""
    try:
        return cache_named(config, name)
    except UnknownCache as exc:
        raise PlanError(str(exc)) from None


def _keys(step: dict) -> list[bytes]:
    return keys_from_json(step.get("keys", []), step.get("raw_keys", []))


class RedisDeletePattern(ActionKind):
    name = "redis_delete_pattern"
    verb = "clear rate limits in"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "cache": ParamType("cache", "The cache holding the rate-limit keys."),
            "user": ParamType("text", "The user id whose rate-limit keys are deleted (no glob characters)."),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        name, user = params["cache"], params["user"]
        cache = planned_cache(ctx.config, name)
        try:
            patterns = user_patterns(cache.rate_limit_patterns, user)
        except BadUser as exc:
            raise PlanError(str(exc)) from None
        try:
            async with connect(name, cache) as (client, at):
                found = await scan_keys(client, patterns)
        except CacheUnavailable as exc:
            raise PlanError(str(exc)) from None
        capped = f" (the scan stopped after examining about {found.examined:,} keys)" if found.capped else ""
        if not found.keys:
            raise PlanError(f"No rate-limit keys for user {user} in cache {name}{capped}; nothing was requested.")
        if len(found.keys) > MAX_PLANNED:
            raise PlanError(
                f"{len(found.keys):,} keys match {', '.join(patterns)} in cache {name}, more than the {MAX_PLANNED:,} one request "
                f"may delete; narrow rate_limit_patterns for {name} in app.yaml."
            )
        texts, raw = keys_to_json(found.keys)
        step = {"cache": name, "server": at.server, "db": at.db, "user": user, "patterns": patterns, "keys": texts}
        if raw:
            step["raw_keys"] = raw
        facts = {"capped": found.capped, "examined": found.examined}
        return Plan(action, self.name, name, {"cache": name, "user": user}, [step], [Target("cache", name)], facts=facts)

    def describe(self, plan: Plan) -> list[str]:
        return [
            f"{s['cache']}: delete the {len(_keys(s)):,} keys of user {s['user']} matching {', '.join(s['patterns'])} "
            f"(db {s['db']} on {s['server']}), each only if it still exists"
            for s in plan.steps
        ]

    def notes(self, plan: Plan) -> list[str]:
        notes = []
        for step in plan.steps:
            keys = _keys(step)
            listed = ", ".join(shown_key(k) for k in keys[:SHOWN])
            more = f" and {len(keys) - SHOWN:,} more" if len(keys) > SHOWN else ""
            notes.append(f"Keys: {listed}{more}.")
        if plan.facts.get("capped"):
            notes.append(
                f"The scan stopped after examining about {plan.facts.get('examined', 0):,} keys, so more may match; "
                "request it again afterwards."
            )
        return notes

    async def recheck(self, ctx: PlanContext, spec, plan: Plan) -> str | None:
        """The keys come and go by design: only the cache itself must still be the one planned."""
        for step in plan.steps:
            cache = ctx.config.caches.get(step["cache"])
            if cache is None:
                return f"cache {step['cache']} is no longer in app.yaml."
            try:
                now = where(step["cache"], cache)
            except CacheUnavailable as exc:
                return str(exc)
            if (now.server, now.db) != (step["server"], step["db"]):
                return f"cache {step['cache']} now points at db {now.db} on {now.server}, not the database planned; request it again."
        return None

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        for step in plan.steps:
            name, keys = step["cache"], _keys(step)
            cache = ctx.config.caches.get(name)
            if cache is None:
                report.steps.append(StepResult(name, False, f"{name}: cache {name} is no longer in app.yaml; nothing was deleted."))
                break
            try:
                async with connect(name, cache) as (client, _):
                    deleted = await delete_keys(client, keys)
            except CacheUnavailable as exc:
                report.steps.append(StepResult(name, False, f"{name}: {exc}"))
                break
            gone = len(keys) - deleted
            already = f"; {gone:,} had already expired or been deleted" if gone else ""
            report.steps.append(StepResult(
                name, True, f"{name}: deleted {deleted:,} of the {len(keys):,} rate-limit keys of user {step['user']}{already}."
            ))
        return report


KIND = RedisDeletePattern()
