"""/cache [cache] status|queues|ratelimit <user> [--clear]|flush: a Redis cache, read or guardedly cleared.

status, queues and `ratelimit <user>` only read (the cache's owners may); `ratelimit <user> --clear`
and `flush` are requests of the clear_ratelimit and flush_cache actions, planned, approved and
audited by the action flow. The cache name may be left out when app.yaml declares exactly one.
"""
from __future__ import annotations

from bot.action import policy
from bot.action.kinds.base import Target
from bot.cache import readings, views
from bot.cache.client import CacheUnavailable, UnknownCache, cache_named, connect
from bot.cache.keys import BadUser, check_user, scan_keys, user_patterns
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar
from bot.pipeline.reply import Outcome, Reply

USAGE = "/cache [cache] status | queues | ratelimit <user> [--clear] | flush"
GRAMMAR = Grammar(usage=USAGE, free_text=True)
SUBCOMMANDS = ("status", "queues", "ratelimit", "flush")


def _words(config, text: str) -> tuple[str, str, list[str]] | str:
    """(cache, subcommand, remaining words), or the sentence saying what was wrong."""
    words = text.split()
    caches = config.caches
    if not caches:
        return "app.yaml declares no caches: add one under caches: (with a redis:// url) to use /cache."
    if words and words[0] in caches:
        name, words = words[0], words[1:]
    elif words and words[0].lower() not in SUBCOMMANDS:
        if len(words) > 1 and words[1].lower() in SUBCOMMANDS:
            try:
                cache_named(config, words[0])
            except UnknownCache as exc:
                return str(exc)
        return f"Unknown subcommand or cache '{words[0][:40]}'. Usage: {USAGE}"
    elif len(caches) == 1:
        name = next(iter(caches))
    else:
        listed = ", ".join(sorted(caches)[:20])
        return f"Which cache? app.yaml declares several ({listed}): e.g. /cache {sorted(caches)[0]} {words[0].lower() if words else 'status'}."
    sub = words[0].lower() if words else "status"
    if sub not in SUBCOMMANDS:
        return f"Unknown subcommand '{words[0][:40]}'. Usage: {USAGE}"
    return name, sub, words[1:]


def _ratelimit_args(rest: list[str]) -> tuple[str, bool] | str:
    clear = "--clear" in rest
    others = [w for w in rest if w != "--clear"]
    if len(others) != 1 or rest.count("--clear") > 1:
        return "Usage: /cache [cache] ratelimit <user> [--clear]"
    if others[0].startswith("--"):
        return f"Unknown option '{others[0][:30]}'. Usage: /cache [cache] ratelimit <user> [--clear]"
    return others[0], clear


async def _read_refusal(inv: Invocation, name: str) -> Reply | None:
    sentence = await policy.read_refusal(inv.ctx.roles, inv.ctx.config, Target("cache", name), inv.request.user_id, "read")
    return Reply.refusal(sentence, Outcome.denied) if sentence else None


async def handle(inv: Invocation) -> Reply:
    config = inv.ctx.config
    parsed = _words(config, inv.args.positionals["text"])
    if isinstance(parsed, str):
        return Reply.refusal(parsed)
    name, sub, rest = parsed
    cache = config.caches[name]
    if sub in ("status", "queues", "flush") and rest:
        return Reply.refusal(f"/cache {sub} takes nothing after it ('{rest[0][:30]}'). Usage: {USAGE}")
    if sub == "flush":
        from bot.action.flow import request_action

        return await request_action(inv.ctx, inv.request, "flush_cache", {"cache": name})
    if sub == "ratelimit":
        args = _ratelimit_args(rest)
        if isinstance(args, str):
            return Reply.refusal(args)
        user, clear = args
        try:
            patterns = user_patterns(cache.rate_limit_patterns, check_user(user))
        except BadUser as exc:
            return Reply.refusal(str(exc))
        if clear:
            from bot.action.flow import request_action

            return await request_action(inv.ctx, inv.request, "clear_ratelimit", {"cache": name, "user": user})
    refused = await _read_refusal(inv, name)
    if refused:
        return refused
    try:
        if sub == "status":
            return views.status_reply(name, await readings.status(name, cache))
        if sub == "queues":
            where, found = await readings.queues(name, cache)
            return views.queues_reply(name, where, found, cache.queue_length)
        async with connect(name, cache) as (client, where):
            found = await scan_keys(client, patterns)
        return views.ratelimit_reply(name, user, found, where)
    except CacheUnavailable as exc:
        return Reply.refusal(str(exc), Outcome.error)


COMMAND = CommandSpec(
    name="cache",
    summary="A Redis cache: status, queue lengths, one user's rate-limit keys; clearing them or FLUSHDB needs approval.",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # reads: the cache's owners; clear and flush: the actions' own policies
)
