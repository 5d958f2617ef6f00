"""/cache and the redis_delete_pattern / redis_flush action kinds against the real Redis.

The module claims one Redis database of 9..14 that is empty (a claim key in db 0, so parallel
runs of this module never share one), works only there and flushes only it. Kinds are driven
directly with a PlanContext/RunContext; the read-only command paths go through bot.handle on
the console transport, as a person would type them.
"""
from __future__ import annotations


import uuid

import pytest
import redis.asyncio as aioredis
from conftest import free_port, redis_db_url, real_bot

from bot.action.kinds.base import Plan, PlanContext, PlanError, RunContext, Target
from bot.action.kinds.redis_delete_pattern import KIND as DELETE, MAX_PLANNED
from bot.action.kinds.redis_flush import KIND as FLUSH
from bot.cache import keys as cache_keys
from bot.cache.client import Where
from bot.cache.keys import BadUser, check_user, escape_glob, scan_keys, unsafe_pattern, user_patterns
from bot.cache.readings import status_of
from bot.config.loader import ConfigError, parse_config
from bot.pipeline.reply import Outcome, Preformatted, Section
from bot.pipeline.request import Request



url = redis_db_url


@pytest.fixture
def test_db(claimed_redis_db):
    """(db number, client on it): a Redis database of 9..14 this test owns (conftest.claimed_redis_db)."""
    return claimed_redis_db


def config_text(db: int, *, extra_caches: str = "", patterns: str = "") -> str:
    return f"""
version: 1
services:
  app:
    owners: [ops]
caches:
  main:
    url: {url(db)}
    service: app
    queues: [queues:default, queues:mail, queues:empty, notalist]
{patterns}{extra_caches}
roles:
  ops:
    users: [UOPS1, UOPS2]
  dev:
    users: [UDEV1]
"""


def plan_ctx(config, user: str = "UOPS1") -> PlanContext:
    return PlanContext(real_bot(config), user)


def run_ctx(config) -> RunContext:
    async def progress(line: str) -> None:
        pass

    async def audit_step(step: str, outcome: str) -> None:
        pass

    return RunContext(real_bot(config), 1, "UOPS1", "C1", progress, audit_step)


async def cache_bot(make_bot, text: str):
    return await make_bot(text)


def ask(text: str, user: str = "UOPS1") -> Request:
    return Request(user, "C1", "cache", text, "console")


def shown(reply) -> str:
    return "\n".join([reply.text] + [b.text for b in reply.blocks if isinstance(b, (Section, Preformatted)) or hasattr(b, "text")])


def assert_one_sentence(reply) -> None:
    assert reply.ephemeral, reply.text
    assert "\n" not in reply.text and len(reply.text) < 600, reply.text
    assert "Traceback" not in reply.text


async def seed_users(client, tag: str) -> dict[str, list[bytes]]:
    """Rate-limit keys of users 12, 123 and 1 (and one look-alike of another family) in the test database."""
    made = {
        "12": [f"rate:user:12:{tag}:{i}".encode() for i in range(30)] + [b"rate:user:12:minute"],
        "123": [f"rate:user:123:{tag}:{i}".encode() for i in range(5)],
        "1": [b"rate:user:1:minute"],
        "other": [b"rate:users:12:x", b"ratex:user:12:y"],
    }
    await client.mset({key: b"1" for group in made.values() for key in group})
    return made


# --------------------------------------------------------------------------- pure parts


def test_user_ids_with_glob_characters_are_refused():
    for bad in ("*", "?", "12*", "1?", "a[b]", "[0-9]*", "x\\*", ""):
        with pytest.raises(BadUser):
            check_user(bad)
    for bad in ("12 3", "a/b", "é", "x" * 65, "a\nb"):
        with pytest.raises(BadUser):
            check_user(bad)
    assert check_user("U123.abc@d-e_f") == "U123.abc@d-e_f"
    with pytest.raises(BadUser):
        check_user("12:x")  # ":" separates key parts: user 12:x would share user 12's keys
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert user_patterns(["rate:user:{user}:*", "limit:{user}"], "12") == ["rate:user:12:*", "limit:12"]


def test_patterns_with_a_wildcard_next_to_the_user_are_refused():
    assert unsafe_pattern("rate:user:{user}:*") is None
    assert unsafe_pattern("{user}") is None
    for pattern in ("rate:{user}*", "rate:*{user}:x", "rate:{user}?", "rate:[ab]{user}:x", "rate:{user}[0-9]"):
        assert unsafe_pattern(pattern), pattern
    with pytest.raises(BadUser, match="user 12's pattern would also match user 123's keys"):
        user_patterns(["rate:{user}*"], "12")


def test_patterns_with_a_user_id_character_after_the_user_are_refused():
    # '-' and '.' may be part of a user id: rate:{user}-* of user 12 would also match user 12-3's keys.
    for pattern in ("rate:{user}-*", "rate:{user}.*", "rate:{user}_x", "rate:{user}@*", "rate:{user}a*"):
        assert unsafe_pattern(pattern), pattern
    assert "user 12-3's keys" in unsafe_pattern("rate:{user}-*")
    with pytest.raises(BadUser, match=r"user 12\.3's keys"):
        user_patterns(["rate:{user}.*"], "12")
    for pattern in ("rate:{user}:*", "rate:{user}", "x:{user}:y:*"):
        assert unsafe_pattern(pattern) is None, pattern


def test_memory_is_graded_against_maxmemory_and_skipped_without_one():
    cache = parse_config(config_text(9)).caches["main"]
    where = Where("127.0.0.1:6379", 9)
    base = {"keyspace_hits": 90, "keyspace_misses": 10, "connected_clients": 3, "db9": {"keys": 7}, "db0": {"keys": 2}}
    warn = status_of(cache, where, {**base, "used_memory": 850, "maxmemory": 1000})
    assert warn.grade == "warning" and "(85%)" in warn.lines[0]
    assert status_of(cache, where, {**base, "used_memory": 950, "maxmemory": 1000}).grade == "critical"
    fine = status_of(cache, where, {**base, "used_memory": 100, "maxmemory": 1000})
    assert fine.grade == "ok"
    none = status_of(cache, where, {**base, "used_memory": 100, "maxmemory": 0})
    assert none.grade == "ok" and "maxmemory is 0 (no limit), so memory is not graded" in none.lines[0]
    assert "hit rate: 90.0%" in none.lines[1]
    assert "connected clients: 3" in none.lines[2]
    assert "db0 2, db9 7 (this cache)" in none.lines[3]


# --------------------------------------------------------------------------- reading through /cache


@pytest.mark.asyncio
async def test_status_reads_the_real_server(make_bot, test_db):
    db, client = test_db
    await client.set(b"somekey", b"1")
    bot = await cache_bot(make_bot, config_text(db))
    reply = await bot.handle(ask("status"))
    text = shown(reply)
    assert reply.outcome in (Outcome.ok, Outcome.warning, Outcome.critical), text
    assert f"db {db} on " in text
    assert "hit rate" in text and "connected clients" in text
    assert f"db{db} 1 (this cache)" in text
    # The cache named explicitly, and the bare /cache, say the same.
    assert f"db{db} 1 (this cache)" in shown(await bot.handle(ask("main status")))
    assert f"db{db} 1 (this cache)" in shown(await bot.handle(ask("")))


@pytest.mark.asyncio
async def test_queues_are_graded_with_the_runbook_thresholds(make_bot, test_db):
    db, client = test_db
    await client.rpush(b"queues:default", *[b"job"] * 600)
    await client.rpush(b"queues:mail", *[b"job"] * 1200)
    await client.set(b"notalist", b"a string")
    bot = await cache_bot(make_bot, config_text(db))
    reply = await bot.handle(ask("queues"))
    text = shown(reply)
    assert reply.outcome is Outcome.critical, text
    assert "queues:default: 600 WARNING (warning at 500)" in text
    assert "queues:mail: 1,200 CRITICAL (critical at 1,000)" in text
    assert "queues:empty: 0 OK" in text
    assert "notalist: holds a string, not a list" in text and "WRONGTYPE" in text

    await client.ltrim(b"queues:mail", 0, 9)
    await client.ltrim(b"queues:default", 0, 9)
    await client.delete(b"notalist")
    assert (await bot.handle(ask("queues"))).outcome is Outcome.ok


@pytest.mark.asyncio
async def test_ratelimit_counts_one_users_keys_with_scan(make_bot, test_db):
    db, client = test_db
    tag = uuid.uuid4().hex[:6]
    made = await seed_users(client, tag)
    bot = await cache_bot(make_bot, config_text(db))
    reply = await bot.handle(ask("ratelimit 12"))
    text = shown(reply)
    assert reply.outcome is Outcome.ok, text
    assert "31 rate-limit keys for user 12 in cache main (rate:user:12:*" in text
    assert "rate:user:12:minute" in text and "rate:user:123" not in text and "rate:users:12" not in text
    assert "--clear" in text
    reply = await bot.handle(ask("main ratelimit 123"))
    assert "5 rate-limit keys for user 123" in shown(reply)
    reply = await bot.handle(ask("ratelimit nobody"))
    assert "No rate-limit keys for user nobody in cache main" in reply.text
    # Nothing was deleted by reading.
    assert await client.exists(*[k for group in made.values() for k in group]) == sum(len(g) for g in made.values())


@pytest.mark.asyncio
async def test_scan_stops_at_its_cap_and_says_so(test_db):
    db, client = test_db
    await client.mset({f"rate:user:7:{i}".encode(): b"1" for i in range(3000)})
    await client.mset({f"noise:{i}".encode(): b"1" for i in range(3000)})
    whole = await scan_keys(client, ["rate:user:7:*"], count=500)
    assert len(whole.keys) == 3000 and not whole.capped
    capped = await scan_keys(client, ["rate:user:7:*"], max_scanned=1000, count=500)
    assert capped.capped and capped.examined == 1000 and len(capped.keys) < 3000


# --------------------------------------------------------------------------- redis_delete_pattern


@pytest.mark.asyncio
async def test_clear_deletes_exactly_the_planned_keys_of_one_user(test_db):
    db, client = test_db
    tag = uuid.uuid4().hex[:6]
    made = await seed_users(client, tag)
    config = parse_config(config_text(db))
    spec = config.action("clear_ratelimit")
    assert set(DELETE.params(spec)) == {"cache", "user"}

    plan = await DELETE.plan(plan_ctx(config), "clear_ratelimit", spec, {"cache": "main", "user": "12"})
    assert plan.targets == [Target("cache", "main")]
    assert plan.subject == "main" and plan.params == {"cache": "main", "user": "12"}
    (step,) = plan.steps
    assert step["db"] == db and step["patterns"] == ["rate:user:12:*"]
    assert sorted(k.encode() for k in step["keys"]) == sorted(made["12"])
    assert "delete the 31 keys of user 12 matching rate:user:12:*" in DELETE.describe(plan)[0]
    assert DELETE.notes(plan)[0].startswith("Keys: rate:user:12:")

    # Between approval and execution: one planned key expires, and user 12 makes a new one.
    await client.delete(b"rate:user:12:minute")
    await client.set(b"rate:user:12:new", b"1")
    restored = type(plan).from_json(plan.to_json())
    assert restored.hash == plan.hash
    assert await DELETE.recheck(plan_ctx(config), spec, restored) is None
    report = await DELETE.execute(run_ctx(config), spec, restored)
    assert report.succeeded, report.summary()
    assert report.summary() == "main: deleted 30 of the 31 rate-limit keys of user 12; 1 had already expired or been deleted."

    assert await client.exists(*made["12"]) == 0
    assert await client.exists(b"rate:user:12:new") == 1  # not in the plan, so not deleted
    for other in ("123", "1", "other"):
        assert await client.exists(*made[other]) == len(made[other]), other


@pytest.mark.asyncio
async def test_clear_refuses_what_it_cannot_plan(test_db):
    db, client = test_db
    await seed_users(client, "x")
    config = parse_config(config_text(db))
    spec = config.action("clear_ratelimit")
    ctx = plan_ctx(config)
    for user in ("*", "?", "12*", "1?", "[1]*"):
        with pytest.raises(PlanError, match="glob character"):
            await DELETE.plan(ctx, "clear_ratelimit", spec, {"cache": "main", "user": user})
    with pytest.raises(PlanError, match=r"^No rate-limit keys for user 99 in cache main; nothing was requested\.$"):
        await DELETE.plan(ctx, "clear_ratelimit", spec, {"cache": "main", "user": "99"})
    with pytest.raises(PlanError, match="Unknown cache 'nosuch'"):
        await DELETE.plan(ctx, "clear_ratelimit", spec, {"cache": "nosuch", "user": "12"})
    # app.yaml refuses a pattern that could reach other users' keys, with its line.
    with pytest.raises(ConfigError, match="user 12's pattern would also match user 123's keys"):
        parse_config(config_text(db, patterns='    rate_limit_patterns: ["rate:user:{user}*"]\n'))


@pytest.mark.asyncio
async def test_clear_refuses_more_than_it_may_delete_at_once(test_db):
    db, client = test_db
    await client.mset({f"rate:user:5:{i}".encode(): b"1" for i in range(MAX_PLANNED + 1)})
    config = parse_config(config_text(db))
    spec = config.action("clear_ratelimit")
    with pytest.raises(PlanError, match="more than the 10,000 one request may delete; narrow rate_limit_patterns"):
        await DELETE.plan(plan_ctx(config), "clear_ratelimit", spec, {"cache": "main", "user": "5"})
    assert await client.dbsize() == MAX_PLANNED + 1


@pytest.mark.asyncio
async def test_recheck_stops_a_plan_whose_cache_moved(test_db):
    db, client = test_db
    await seed_users(client, "r")
    config = parse_config(config_text(db))
    spec = config.action("clear_ratelimit")
    plan = await DELETE.plan(plan_ctx(config), "clear_ratelimit", spec, {"cache": "main", "user": "1"})
    moved = parse_config(config_text(db + 1 if db < 15 else db - 1))
    assert "not the database planned" in await DELETE.recheck(plan_ctx(moved), spec, plan)
    gone = parse_config(config_text(db).replace("  main:", "  other:"))
    assert await DELETE.recheck(plan_ctx(gone), spec, plan) == "cache main is no longer in app.yaml."


# --------------------------------------------------------------------------- redis_flush


@pytest.mark.asyncio
async def test_flush_empties_only_the_caches_database(test_db):
    db, client = test_db
    await client.mset({f"k:{i}".encode(): b"1" for i in range(25)})
    marker = f"opsbot:test:cache-marker:{uuid.uuid4().hex}"
    other = aioredis.from_url(url(0), socket_timeout=5)
    await other.set(marker, b"1", ex=600)
    try:
        config = parse_config(config_text(db))
        spec = config.action("flush_cache")
        plan = await FLUSH.plan(plan_ctx(config), "flush_cache", spec, {"cache": "main"})
        assert plan.confirm == "main" and plan.targets == [Target("cache", "main")]
        assert plan.facts == {"keys": 25}
        assert plan.steps == [{"cache": "main", "server": plan.steps[0]["server"], "db": db}]
        assert FLUSH.describe(plan) == [f"main: FLUSHDB database {db} on {plan.steps[0]['server']}: every key in it goes"]
        assert FLUSH.notes(plan) == ["It held 25 keys when this was planned."]
        await client.set(b"k:late", b"1")  # the key count is a fact: the plan stays the same
        assert await FLUSH.recheck(plan_ctx(config), spec, plan) is None

        report = await FLUSH.execute(run_ctx(config), spec, plan)
        assert report.succeeded, report.summary()
        assert report.summary() == f"main: flushed db {db}: 26 keys before, 0 after."
        assert await client.dbsize() == 0
        assert await other.exists(marker) == 1
    finally:
        await other.delete(marker)
        await other.aclose()


# --------------------------------------------------------------------------- bad input and a dead Redis


@pytest.mark.asyncio
async def test_bad_input_gets_one_sentence(make_bot, test_db):
    db, _ = test_db
    bot = await cache_bot(make_bot, config_text(db, extra_caches=f"  spare:\n    url: {url(db)}\n    owners: [ops]\n"))
    cases = {
        "nosuch status": "Unknown cache 'nosuch'. Known: main, spare.",
        "status": "Which cache?",
        "main bogus": "Unknown subcommand 'bogus'.",
        "nosuch": "Unknown subcommand or cache 'nosuch'.",
        "main ratelimit *": "holds a glob character",
        "main ratelimit 12? --clear": "holds a glob character",
        "main ratelimit": "Usage: /cache [cache] ratelimit <user> [--clear]",
        "main ratelimit 1 2": "Usage: /cache [cache] ratelimit <user> [--clear]",
        "main ratelimit 1 --force": "Usage:",
        "main status now": "takes nothing after it",
    }
    for text, expected in cases.items():
        reply = await bot.handle(ask(text))
        assert_one_sentence(reply)
        assert expected in reply.text, (text, reply.text)
        assert reply.outcome is Outcome.usage_error, (text, reply.outcome)


@pytest.mark.asyncio
async def test_reading_needs_the_caches_owners(make_bot, test_db):
    db, _ = test_db
    bot = await cache_bot(make_bot, config_text(db))
    for text in ("status", "queues", "ratelimit 12"):
        reply = await bot.handle(ask(text, user="UDEV1"))
        assert_one_sentence(reply)
        assert reply.outcome is Outcome.denied, reply.text
        assert "You cannot read main: it needs the ops role" in reply.text


@pytest.mark.asyncio
async def test_a_dead_redis_is_one_sentence(make_bot):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    text = f"""
version: 1
caches:
  dead:
    url: {dead}
    owners: [ops]
    queues: [queues:default]
roles:
  ops:
    users: [UOPS1]
"""
    bot = await cache_bot(make_bot, text)
    for words in ("status", "queues", "ratelimit 12"):
        reply = await bot.handle(ask(words))
        assert_one_sentence(reply)
        assert reply.outcome is Outcome.error
        assert reply.text.startswith("Cannot reach cache dead:"), reply.text
    config = parse_config(text)
    with pytest.raises(PlanError, match="^Cannot reach cache dead:"):
        await DELETE.plan(plan_ctx(config), "clear_ratelimit", config.action("clear_ratelimit"), {"cache": "dead", "user": "12"})
    with pytest.raises(PlanError, match="^Cannot reach cache dead:"):
        await FLUSH.plan(plan_ctx(config), "flush_cache", config.action("flush_cache"), {"cache": "dead"})
    step = {"cache": "dead", "server": f"127.0.0.1:{dead.rsplit(':', 1)[1].split('/')[0]}", "db": 0}
    plan = Plan("flush_cache", "redis_flush", "dead", {"cache": "dead"}, [step], [Target("cache", "dead")])
    report = await FLUSH.execute(run_ctx(config), config.action("flush_cache"), plan)
    assert not report.succeeded and report.summary().startswith("dead: Cannot reach cache dead:")


def test_keys_that_are_not_utf8_survive_the_plan():
    keys = [b"rate:user:1:a", b"rate:user:1:\xff\xfe"]
    texts, raw = cache_keys.keys_to_json(keys)
    assert texts == ["rate:user:1:a"] and raw == ["726174653a757365723a313afffe"]
    assert sorted(cache_keys.keys_from_json(texts, raw)) == sorted(keys)
