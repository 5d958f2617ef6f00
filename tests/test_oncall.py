"""On-call: rotations (bot/oncall/rotation.py), overrides and who is on call (bot/oncall/service.py),
roles granted to the current on-call (bot/pipeline/roles.py), and /oncall through all three transports.

Time is a ManualClock everywhere; overrides are rows on real PostgreSQL and SQLite. The
session's PostgreSQL database is shared, so every test names its rotations with a tag of its own.

2026's daylight-saving changes: Europe/Berlin on 29 March and 25 October, America/New_York on
8 March and 1 November.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from drivers import drive  # noqa: F401 (fixture)

from bot.audit import service as audit
from bot.config.incident_models import Rotation
from bot.config.loader import ConfigError, parse_config
from bot.migrate import upgrade
from bot.oncall.models import OncallOverride
from bot.oncall.rotation import Shift, shift_at, shifts
from bot.pipeline.messenger import ChatUser
from bot.oncall.service import OnCall, OncallDirectory, UnknownRotation, add_override, next_on_call, on_call, overrides
from bot.pipeline.roles import RoleDirectory
from bot.schedule import ManualClock

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zone)


def tagged(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- rotations


def test_a_weekly_rotation_hands_off_on_its_day_and_time():
    rotation = Rotation(members=["UANA", "UBEN", "UCAL"])  # Mondays 09:00 UTC from 2026-01-05
    first = shift_at(rotation, utc(2026, 1, 7, 12, 0))
    assert first == Shift("UANA", utc(2026, 1, 5, 9, 0), utc(2026, 1, 12, 9, 0))
    assert [s.user for s in shifts(rotation, utc(2026, 1, 5, 9, 0), 5)] == ["UANA", "UBEN", "UCAL", "UANA", "UBEN"]
    following = shifts(rotation, utc(2026, 3, 4, 12, 0), 3)
    assert [s.starts for s in following] == [utc(2026, 3, 2, 9, 0), utc(2026, 3, 9, 9, 0), utc(2026, 3, 16, 9, 0)]
    assert all(a.ends == b.starts for a, b in zip(following, following[1:]))
    assert following[0].user == "UCAL"  # week 8 since the anchor: 8 mod 3
    assert shifts(rotation, utc(2026, 3, 4, 12, 0), 0) == []


def test_the_anchor_is_the_first_handoff_day_on_or_after_starts_and_earlier_times_work_too():
    rotation = Rotation(members=["UANA", "UBEN"], handoff_day="mon", starts=dt.date(2026, 1, 7))  # a Wednesday
    assert shift_at(rotation, utc(2026, 1, 12, 9, 0)) == Shift("UANA", utc(2026, 1, 12, 9, 0), utc(2026, 1, 19, 9, 0))
    # Before the anchor: negative shift numbers, members counted backwards.
    assert shift_at(rotation, utc(2026, 1, 12, 8, 59, 59)) == Shift("UBEN", utc(2026, 1, 5, 9, 0), utc(2026, 1, 12, 9, 0))
    assert shift_at(rotation, utc(2025, 12, 30, 0, 0)) == Shift("UANA", utc(2025, 12, 29, 9, 0), utc(2026, 1, 5, 9, 0))
    assert shift_at(rotation, utc(1990, 6, 1)).starts <= utc(1990, 6, 1) < shift_at(rotation, utc(1990, 6, 1)).ends
    with pytest.raises(ValueError):
        shift_at(rotation, dt.datetime(2026, 1, 12, 9, 0))


@pytest.mark.parametrize("shift", ["7d", "1d", "12h"])
def test_at_the_handoff_instant_the_new_member_is_on_call(shift):
    rotation = Rotation(members=["UANA", "UBEN"], shift=shift, timezone="Europe/Berlin", handoff_time="09:00")
    handoff = shifts(rotation, utc(2026, 2, 10, 12, 0), 2)[1].starts
    before, at, after = (shift_at(rotation, handoff + d) for d in (-SECOND, dt.timedelta(0), SECOND))
    assert before.user != at.user and at.user == after.user
    assert before.ends == at.starts == after.starts == handoff


def test_a_daily_rotation_keeps_its_local_handoff_across_daylight_saving():
    rotation = Rotation(members=["UANA", "UBEN"], shift="1d", timezone="Europe/Berlin", handoff_time="09:00")
    spring = shifts(rotation, local(BERLIN, 2026, 3, 28, 12, 0), 3)
    assert [s.starts for s in spring] == [utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 7, 0), utc(2026, 3, 30, 7, 0)]
    assert spring[0].ends - spring[0].starts == 23 * HOUR  # the shift over the change is an hour short
    autumn = shifts(rotation, local(BERLIN, 2026, 10, 24, 12, 0), 3)
    assert [s.starts for s in autumn] == [utc(2026, 10, 24, 7, 0), utc(2026, 10, 25, 8, 0), utc(2026, 10, 26, 8, 0)]
    assert autumn[0].ends - autumn[0].starts == 25 * HOUR
    assert spring[0].user != spring[1].user != spring[2].user
    # Every hand-off of a whole year is 09:00 in Berlin, and every hour of it has exactly one shift.
    at = utc(2026, 1, 1)
    while at < utc(2027, 1, 1):
        current = shift_at(rotation, at)
        assert current.starts <= at < current.ends
        assert current.starts.astimezone(BERLIN).time() == dt.time(9, 0)
        at += HOUR


def test_a_weekly_new_york_rotation_keeps_its_local_handoff_across_daylight_saving():
    rotation = Rotation(members=["UANA", "UBEN", "UCAL"], timezone="America/New_York", handoff_time="09:00")
    spring = shifts(rotation, local(NEW_YORK, 2026, 3, 3, 12, 0), 2)
    assert [s.starts for s in spring] == [utc(2026, 3, 2, 14, 0), utc(2026, 3, 9, 13, 0)]
    assert spring[0].ends - spring[0].starts == 167 * HOUR
    autumn = shifts(rotation, local(NEW_YORK, 2026, 10, 27, 12, 0), 2)
    assert [s.starts for s in autumn] == [utc(2026, 10, 26, 13, 0), utc(2026, 11, 2, 14, 0)]
    assert autumn[0].ends - autumn[0].starts == 169 * HOUR
    # The boundary minute on the Monday after the spring change.
    assert shift_at(rotation, utc(2026, 3, 9, 12, 59, 59)).user == spring[0].user
    assert shift_at(rotation, utc(2026, 3, 9, 13, 0)).user == spring[1].user


def test_a_handoff_in_the_skipped_or_repeated_hour_resolves_with_fold_0():
    skipped = Rotation(members=["UANA", "UBEN"], shift="1d", timezone="Europe/Berlin", handoff_time="02:30")
    starts = [s.starts for s in shifts(skipped, local(BERLIN, 2026, 3, 28, 12, 0), 3)]
    # 29 March 02:30 does not exist: read on the old offset (+01:00), i.e. 03:30 CEST.
    assert starts == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    assert shift_at(skipped, utc(2026, 3, 29, 1, 29, 59)).starts == utc(2026, 3, 28, 1, 30)
    # 25 October 02:30 happens twice: the first (CEST), every time.
    starts = [s.starts for s in shifts(skipped, local(BERLIN, 2026, 10, 24, 12, 0), 3)]
    assert starts == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    new_york = Rotation(members=["UANA", "UBEN"], shift="1d", timezone="America/New_York", handoff_time="01:30")
    assert shift_at(new_york, utc(2026, 11, 1, 5, 30)).starts == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first one
    assert shift_at(new_york, utc(2026, 11, 1, 5, 30)).ends == utc(2026, 11, 2, 6, 30)  # 01:30 EST next day


def test_twelve_hour_shifts_step_in_absolute_time():
    rotation = Rotation(members=["UDAY", "UNIGHT"], shift="12h", timezone="Europe/Berlin", handoff_time="09:00")
    winter = shifts(rotation, local(BERLIN, 2026, 3, 27, 10, 0), 2)
    assert winter == [Shift("UDAY", utc(2026, 3, 27, 8, 0), utc(2026, 3, 27, 20, 0)), Shift("UNIGHT", utc(2026, 3, 27, 20, 0), utc(2026, 3, 28, 8, 0))]
    # After the spring change the hand-offs are still 08:00 and 20:00 UTC: 10:00 and 22:00 in Berlin.
    summer = shifts(rotation, local(BERLIN, 2026, 3, 30, 11, 0), 2)
    assert [s.starts for s in summer] == [utc(2026, 3, 30, 8, 0), utc(2026, 3, 30, 20, 0)]
    assert summer[0].starts.astimezone(BERLIN).hour == 10 and summer[0].user == "UDAY"
    assert shift_at(rotation, utc(2026, 3, 30, 19, 59, 59)).user == "UDAY"
    assert shift_at(rotation, utc(2026, 3, 30, 20, 0)).user == "UNIGHT"
    odd = Rotation(members=["UANA", "UBEN", "UCAL"], shift="5h", handoff_time="00:00")
    assert [s.starts for s in shifts(odd, utc(2026, 1, 5, 0, 0), 6)][-1] == utc(2026, 1, 6, 1, 0)


# --------------------------------------------------------------------------- overrides (PostgreSQL and SQLite)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    """The session's PostgreSQL database, or a migrated SQLite file of this test's own."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database_url")
    url = f"sqlite+aiosqlite:///{tmp_path / 'oncall.db'}"
    upgrade(url)  # a plain fixture: no event loop runs here, so Alembic may start its own
    return url


@pytest.fixture
def db(url, open_db):
    return open_db(url)


def rotation_config(name: str, **fields) -> object:
    spec = {"members": "[UANA, UBEN]", "shift": "7d", "timezone": "UTC", **fields}
    body = "\n".join(f"    {key}: {value}" for key, value in spec.items())
    return parse_config(f"version: 1\noncall:\n  {name}:\n{body}\n")


async def count_rows(db, rotation: str) -> int:
    async with db.sessions() as session:
        return (await session.execute(select(func.count()).select_from(OncallOverride).where(OncallOverride.rotation == rotation))).scalar_one()


async def test_an_active_override_wins_over_the_rotation_until_it_ends(db):
    name = tagged("primary")
    config = rotation_config(name)
    now = utc(2026, 3, 4, 12, 0)  # UANA's week (week 8 since the anchor)
    assert await on_call(db, config, name, now) == OnCall("UANA", utc(2026, 3, 9, 9, 0), "rotation")
    row = await add_override(db, name, "UZED", now, now + 8 * HOUR, "UOPS1", now)
    assert (row.user_id, row.starts_at, row.ends_at, row.created_by, row.created_at) == ("UZED", now, now + 8 * HOUR, "UOPS1", now)
    assert await on_call(db, config, name, now) == OnCall("UZED", now + 8 * HOUR, "override")
    assert await on_call(db, config, name, now + 8 * HOUR - SECOND) == OnCall("UZED", now + 8 * HOUR, "override")
    assert await on_call(db, config, name, now + 8 * HOUR) == OnCall("UANA", utc(2026, 3, 9, 9, 0), "rotation")
    assert await next_on_call(db, config, name, now) == OnCall("UANA", utc(2026, 3, 9, 9, 0), "rotation")
    assert await next_on_call(db, config, name, now + 8 * HOUR) == OnCall("UBEN", utc(2026, 3, 16, 9, 0), "rotation")


async def test_future_and_expired_overrides(db):
    name = tagged("primary")
    config = rotation_config(name)
    now = utc(2026, 3, 4, 12, 0)
    expired = await add_override(db, name, "UOLD", now - 10 * HOUR, now - HOUR, "UOPS1", now - 10 * HOUR)
    future = await add_override(db, name, "UFUT", now + 24 * HOUR, now + 30 * HOUR, "UOPS1", now)
    await add_override(db, tagged("other"), "UELSE", now - HOUR, now + HOUR, "UOPS1", now)  # another rotation's
    assert [o.id for o in await overrides(db, name, now)] == [future.id]
    assert [o.id for o in await overrides(db, name, now - 2 * HOUR)] == [expired.id, future.id]
    # The rotation holds until the future override begins, which then holds until it ends.
    assert await on_call(db, config, name, now) == OnCall("UANA", now + 24 * HOUR, "rotation")
    assert await next_on_call(db, config, name, now) == OnCall("UFUT", now + 30 * HOUR, "override")
    assert await on_call(db, config, name, now + 24 * HOUR) == OnCall("UFUT", now + 30 * HOUR, "override")
    assert await on_call(db, config, name, now - 5 * HOUR) == OnCall("UOLD", now - HOUR, "override")


async def test_of_two_overlapping_overrides_the_newest_wins(db):
    name = tagged("primary")
    config = rotation_config(name)
    now = utc(2026, 3, 4, 12, 0)
    await add_override(db, name, "UOLDER", now, now + 10 * HOUR, "UOPS1", now)
    await add_override(db, name, "UNEWER", now + 2 * HOUR, now + 4 * HOUR, "UOPS2", now + HOUR)
    assert await on_call(db, config, name, now) == OnCall("UOLDER", now + 2 * HOUR, "override")
    assert await next_on_call(db, config, name, now) == OnCall("UNEWER", now + 4 * HOUR, "override")
    assert await on_call(db, config, name, now + 3 * HOUR) == OnCall("UNEWER", now + 4 * HOUR, "override")
    assert await on_call(db, config, name, now + 5 * HOUR) == OnCall("UOLDER", now + 10 * HOUR, "override")
    # Created later but covering less does not matter: both cover, the newest wins; same instant: the later row.
    await add_override(db, name, "UTIE1", now + 6 * HOUR, now + 7 * HOUR, "UOPS1", now + 2 * HOUR)
    await add_override(db, name, "UTIE2", now + 6 * HOUR, now + 7 * HOUR, "UOPS1", now + 2 * HOUR)
    assert (await on_call(db, config, name, now + 6 * HOUR)).user == "UTIE2"
    # An older override that started earlier does not displace a newer one covering the time.
    await add_override(db, name, "UNEWEST", now - HOUR, now + 11 * HOUR, "UOPS1", now + 3 * HOUR)
    assert await on_call(db, config, name, now + 6 * HOUR) == OnCall("UNEWEST", now + 11 * HOUR, "override")


async def test_bad_overrides_are_refused_and_nothing_is_written(db):
    name = tagged("primary")
    now = utc(2026, 3, 4, 12, 0)
    with pytest.raises(ValueError, match="in the past"):
        await add_override(db, name, "UZED", now - 2 * HOUR, now - HOUR, "UOPS1", now)
    with pytest.raises(ValueError, match="in the past"):
        await add_override(db, name, "UZED", now - HOUR, now, "UOPS1", now)
    with pytest.raises(ValueError, match="before it starts"):
        await add_override(db, name, "UZED", now + 2 * HOUR, now + HOUR, "UOPS1", now)
    with pytest.raises(ValueError, match="not a Slack user id"):
        await add_override(db, name, "bob", now, now + HOUR, "UOPS1", now)
    with pytest.raises(ValueError):
        await add_override(db, name, "UZED", now, dt.datetime(2026, 3, 5), "UOPS1", now)
    assert await count_rows(db, name) == 0
    with pytest.raises(UnknownRotation):
        await on_call(db, rotation_config(name), "nosuch", now)


async def test_the_directory_follows_the_clock_and_overrides(db):
    name = tagged("daily")
    config = rotation_config(name, shift="1d", handoff_time='"09:00"')
    clock = ManualClock(utc(2026, 3, 4, 8, 59, 59))
    directory = OncallDirectory(db, config, clock)
    assert await directory.on_call_users(name) == {"UBEN"}
    clock.advance(SECOND)
    assert await directory.on_call_users(name) == {"UANA"}
    await add_override(db, name, "UZED", clock.now(), clock.now() + HOUR, "UOPS1", clock.now())
    assert await directory.on_call_users(name) == {"UZED"}
    clock.advance(HOUR)
    assert await directory.on_call_users(name) == {"UANA"}
    with pytest.raises(UnknownRotation):
        await directory.on_call_users("nosuch")


# --------------------------------------------------------------------------- roles from rotations


ROLE_CONFIG = """
version: 1
roles:
  ops:
    users: [UOPS1]
  oncallers:
    rotations: [primary, secondary]
oncall:
  primary:
    members: [UANA, UBEN]
  secondary:
    members: [UCAL]
"""


def test_override_roles_must_be_declared_roles():
    with pytest.raises(ConfigError, match="rotation 'primary' lets unknown role 'leads' override it"):
        parse_config(ROLE_CONFIG.replace("    members: [UANA, UBEN]\n", "    members: [UANA, UBEN]\n    override_roles: [leads]\n"))
    config = parse_config(ROLE_CONFIG.replace("    members: [UANA, UBEN]\n", "    members: [UANA, UBEN]\n    override_roles: [ops]\n"))
    assert (config.oncall["primary"].override_roles, config.oncall["secondary"].override_roles) == (["ops"], [])


async def test_roles_ask_the_on_call_lookup_fresh_every_time_and_fail_closed(caplog):
    config = parse_config(ROLE_CONFIG)
    current = {"primary": {"UANA"}, "secondary": {"UCAL"}}
    asked: list[str] = []

    async def lookup(rotation: str) -> set[str]:
        asked.append(rotation)
        if rotation in current:
            return current[rotation]
        raise RuntimeError("database is down")

    roles = RoleDirectory(config, oncall=lookup)
    assert await roles.roles_of("UANA") == {"oncallers"}
    assert await roles.roles_of("UCAL") == {"oncallers"}
    assert await roles.roles_of("UOPS1") == {"ops"}
    assert await roles.roles_of("UBEN") == set()
    current["primary"] = {"UBEN"}  # the hand-off: no cache stands in the way
    assert await roles.roles_of("UBEN") == {"oncallers"}
    assert await roles.roles_of("UANA") == set()

    current.clear()
    caplog.set_level(logging.WARNING, "bot.pipeline.roles")
    assert await roles.roles_of("UBEN") == set()
    assert "cannot tell who is on call for rotation primary: database is down" in caplog.text
    assert await RoleDirectory(config).roles_of("UANA") == set()  # no lookup wired: rotations grant nothing


# --------------------------------------------------------------------------- /oncall through the three transports


@pytest.fixture(params=["sqlite", "postgres"])
def database(request):
    """None: the bot's own migrated SQLite file; else the session's PostgreSQL database."""
    return request.getfixturevalue("pg_database_url") if request.param == "postgres" else None


def oncall_config(tag: str) -> str:
    return f"""
version: 1
services:
  svc:
    description: a service without a container
roles:
  ops:
    users: [UOPS1]
  oncallers:
    rotations: [primary-{tag}]
actions:
  logs:
    kind: docker_logs
    request_roles: [oncallers]
    approval: {{approvals: 0}}
oncall:
  primary-{tag}:
    members: [UANA, UBEN, UCAL]
    handoff_day: mon
    handoff_time: "09:00"
    timezone: Europe/Berlin
    shift: 7d
    starts: 2026-01-05
    override_roles: [ops]
  secondary-{tag}:
    members: [UDAN, UEVE]
    handoff_time: "08:00"
    timezone: America/New_York
    shift: 1d
"""


def shown_to_caller(d, seen) -> None:
    assert seen.ephemeral is (None if d.name == "console" else True), seen


def shown_in_channel(d, seen) -> None:
    assert seen.ephemeral is (None if d.name == "console" else False), seen


def one_sentence(d, seen, expected: str) -> None:
    shown_to_caller(d, seen)
    line = seen.one_line
    assert line == expected, line


def answer(d, seen) -> str:
    """The answer to the command alone: on the console a direct message it sent is printed before it."""
    if d.name == "console":
        line = d.lines[-1][-1].strip()
        assert "\n" not in line, line
        return line
    return seen.one_line


async def audit_mark(bot) -> int:
    """The newest audit row's id: rows after it are this test's (the PostgreSQL database is shared)."""
    newest = await audit.entries(bot.db, 1)
    return newest[0].id if newest else 0


async def oncall_audit(bot, mark: int) -> list[tuple[str, str]]:
    """(user, outcome) of /oncall's audit rows after `mark`, oldest first."""
    return [(r.user_id, r.outcome) for r in reversed(await audit.entries(bot.db, 1000)) if r.id > mark and r.command == "oncall"]


async def all_overrides(bot, tag: str) -> list[OncallOverride]:
    async with bot.db.sessions() as session:
        query = select(OncallOverride).where(OncallOverride.rotation.like(f"%-{tag}")).order_by(OncallOverride.id)
        return list((await session.execute(query)).scalars())


async def test_oncall_shows_who_is_on_call_and_next_and_an_override_takes_over(drive, database):
    tag = uuid.uuid4().hex[:6]
    primary, secondary = f"primary-{tag}", f"secondary-{tag}"
    clock = ManualClock(utc(2026, 3, 4, 12, 0))  # Wednesday: 13:00 in Berlin, 07:00 in New York
    d = await drive(oncall_config(tag), database, clock=clock)
    mark = await audit_mark(d.bot)

    seen = await d.command("UNOBODY", "/oncall")  # public
    shown_to_caller(d, seen)
    words = seen.words
    assert f"{primary} (times in Europe/Berlin)" in words
    assert "On call: @UCAL until Mon 2026-03-09 09:00 CET" in words
    assert "Next: @UANA from Mon 2026-03-09 09:00 CET until Mon 2026-03-16 09:00 CET" in words
    assert f"{secondary} (times in America/New_York)" in words
    assert "On call: @UEVE until Wed 2026-03-04 08:00 EST" in words
    assert "Next: @UDAN from Wed 2026-03-04 08:00 EST until Thu 2026-03-05 08:00 EST" in words
    if d.name != "console":
        assert "<@UCAL>" in seen.screen  # live mentions, placed by the bot

    seen = await d.command("UOPS1", "/oncall", f"override {primary} <@UBEN|ben> until 8h")
    shown_in_channel(d, seen)
    assert answer(d, seen) == f"@UBEN is on call for {primary} until Wed 2026-03-04 21:00 CET (Europe/Berlin), instead of @UCAL; set by @UOPS1."
    [row] = await all_overrides(d.bot, tag)
    assert (row.rotation, row.user_id, row.starts_at, row.ends_at, row.created_by) == (primary, "UBEN", clock.now(), utc(2026, 3, 4, 20, 0), "UOPS1")

    seen = await d.command("UNOBODY", "/oncall", primary)
    assert "On call: @UBEN (override) until Wed 2026-03-04 21:00 CET" in seen.words
    assert "Next: @UCAL from Wed 2026-03-04 21:00 CET until Mon 2026-03-09 09:00 CET" in seen.words
    assert secondary not in seen.words

    # The other ways to say until when: local date and time quoted or as two words, ISO 8601 with an offset, days.
    for until, ends in [
        ('"2026-03-05 18:00"', utc(2026, 3, 5, 17, 0)),
        ("2026-03-05 18:30", utc(2026, 3, 5, 17, 30)),
        ("2026-03-05T19:00+01:00", utc(2026, 3, 5, 18, 0)),
        ("2026-03-05T20:00Z", utc(2026, 3, 5, 20, 0)),
        ("2d", utc(2026, 3, 6, 12, 0)),
    ]:
        seen = await d.command("UOPS1", "/oncall", f"override {primary} <@UANA> until {until}")
        assert "@UANA is on call for" in answer(d, seen), until
        assert (await all_overrides(d.bot, tag))[-1].ends_at == ends, until
    seen = await d.command("UNOBODY", "/oncall", primary)
    assert "On call: @UANA (override) until Fri 2026-03-06 13:00 CET" in seen.words  # the newest wins

    clock.advance(dt.timedelta(days=2))
    seen = await d.command("UNOBODY", "/oncall", primary)
    assert "On call: @UCAL until Mon 2026-03-09 09:00 CET" in seen.words

    rows = [row for row in await oncall_audit(d.bot, mark) if row[0] == "UOPS1"]
    # On record before it ran, as every guarded command, then what it did.
    assert rows == [("UOPS1", "requested"), ("UOPS1", "overridden")] * 6


async def test_every_bad_oncall_input_is_one_sentence_and_writes_nothing(drive, database):
    tag = uuid.uuid4().hex[:6]
    primary, secondary = f"primary-{tag}", f"secondary-{tag}"
    d = await drive(oncall_config(tag), database, clock=ManualClock(utc(2026, 3, 4, 12, 0)))
    unknown = f"There is no rotation 'nosuch'; the rotations are: {primary}, {secondary}."
    not_a_mention = "is not a Slack user mention; mention them with @ and pick them from the list, so Slack fills in their user id."
    unreadable = (
        "is not a time opsbot can read; give YYYY-MM-DD HH:MM (Europe/Berlin time), "
        "an ISO 8601 time with an offset such as 2026-03-02T17:00+01:00, or a duration such as 8h or 2d."
    )
    cases = [
        ("UOPS1", "override nosuch <@UZED> until 8h", unknown),
        ("UOPS1", "nosuch", unknown),
        ("UOPS1", f"{primary} extra", f"Unexpected 'extra'. Usage: /oncall [rotation] | /oncall override <rotation> <@user> until <time>"),
        ("UOPS1", f"override {primary} @bob until 8h", f"'@bob' {not_a_mention}"),
        ("UOPS1", f"override {primary} bob until 8h", f"'bob' {not_a_mention}"),
        ("UOPS1", f"override {primary} <@UZED> until 2026-03-01 10:00", "Sun 2026-03-01 10:00 CET (Europe/Berlin) is already past; give a later time, or a duration such as 8h."),
        ("UOPS1", f"override {primary} <@UZED> until 2026-03-04T12:00Z", "Wed 2026-03-04 13:00 CET (Europe/Berlin) is already past; give a later time, or a duration such as 8h."),
        ("UOPS1", f"override {primary} <@UZED> until tomorrow", f"'tomorrow' {unreadable}"),
        ("UOPS1", f"override {primary} <@UZED> until 2026-13-01 10:00", f"'2026-13-01 10:00' {unreadable}"),
        ("UOPS1", f"override {primary} <@UZED> until 8", f"'8' {unreadable}"),
        ("UOPS1", f"override {primary} <@UZED> until 8h and more", f"'8h and more' {unreadable}"),
        ("UOPS1", f"override {primary} <@UZED> until 400d", "An override can last at most 366 days; give an earlier end, such as 7d."),
        ("UOPS1", f"override {primary} <@UZED> 8h", "An override names a rotation, a user and an end time. Usage: /oncall override <rotation> <@user> until <time>"),
        ("UNOBODY", f"override {primary} <@UANA> until 8h", "You are not allowed to run /oncall override: it needs the ops role in app.yaml."),
    ]
    mark = await audit_mark(d.bot)
    for user, text, expected in cases:
        one_sentence(d, await d.command(user, "/oncall", text), expected)
    assert await all_overrides(d.bot, tag) == []
    # An override asked by someone with a role is on record as requested before it is read, as every
    # role-gated command; its refusal gets a row of its own. Viewing is public: only its refusal.
    expected_rows = []
    for user, text, _ in cases[:-1]:
        expected_rows += [("UOPS1", "requested")] if text.startswith("override") else []
        expected_rows.append(("UOPS1", "usage_error"))
    assert await oncall_audit(d.bot, mark) == expected_rows + [("UNOBODY", "denied")]


async def test_oncall_without_rotations_says_so(drive, database):
    d = await drive("version: 1\nroles:\n  ops:\n    users: [UOPS1]\n", database, clock=ManualClock(utc(2026, 3, 4, 12, 0)))
    for text in ("", "primary", "override primary <@UZED> until 8h"):
        one_sentence(d, await d.command("UOPS1", "/oncall", text), "No on-call rotations are configured; add them under oncall: in app.yaml.")


async def test_a_role_naming_a_rotation_follows_the_handoff(drive, database):
    tag = uuid.uuid4().hex[:6]
    primary = f"primary-{tag}"
    # UCAL's week ends on Monday 9 March at 09:00 in Berlin (08:00 UTC); UANA's begins.
    clock = ManualClock(utc(2026, 3, 9, 7, 59, 59))
    d = await drive(oncall_config(tag), database, clock=clock)
    no_role = "You are not allowed to run /audit: it needs a role in app.yaml."
    no_container = "svc has no container in app.yaml, so opsbot has no logs for it."

    assert "Your roles: oncallers" in (await d.command("UCAL", "/help")).words
    assert "Audit:" in (await d.command("UCAL", "/audit")).words
    # The logs action names the role itself: the policy passes, then svc has no container to read.
    one_sentence(d, await d.command("UCAL", "/logs", "svc"), no_container)
    one_sentence(d, await d.command("UANA", "/audit"), no_role)
    one_sentence(d, await d.command("UOPS1", "/logs", "svc"), "You cannot read the logs of svc: it needs the oncallers role in app.yaml.")

    clock.advance(SECOND)  # the hand-off
    one_sentence(d, await d.command("UCAL", "/audit"), no_role)
    one_sentence(d, await d.command("UCAL", "/logs", "svc"), no_role.replace("/audit", "/logs"))
    assert "Your roles: none" in (await d.command("UCAL", "/help")).words
    assert "Your roles: oncallers" in (await d.command("UANA", "/help")).words
    one_sentence(d, await d.command("UANA", "/logs", "svc"), no_container)

    # An override makes its user the on-call, and so the role's holder, for as long as it lasts.
    assert "@UCAL is on call for" in answer(d, await d.command("UOPS1", "/oncall", f"override {primary} <@UCAL> until 1h"))
    assert "Your roles: oncallers" in (await d.command("UCAL", "/help")).words
    one_sentence(d, await d.command("UANA", "/audit"), no_role)
    clock.advance(HOUR)
    assert "Your roles: none" in (await d.command("UCAL", "/help")).words
    assert "Your roles: oncallers" in (await d.command("UANA", "/help")).words


# --------------------------------------------------------------------------- who may override, and whom


async def overridden_rows(bot, mark: int) -> list:
    return [r for r in reversed(await audit.entries(bot.db, 1000)) if r.id > mark and r.outcome == "overridden"]


async def test_a_rotation_says_who_may_override_it_and_only_members_cover(drive, database):
    tag = uuid.uuid4().hex[:6]
    primary, secondary = f"primary-{tag}", f"secondary-{tag}"
    d = await drive(oncall_config(tag), database, clock=ManualClock(utc(2026, 3, 4, 12, 0)))
    mark = await audit_mark(d.bot)
    # primary declares override_roles: [ops]. Being one of its members is not enough, nor is being on call
    # (UCAL holds oncallers through it right now): either would let anyone hand the role on.
    cases = [
        ("UANA", f"override {primary} <@UANA> until 8h", "You are not allowed to run /oncall override: it needs the ops role in app.yaml."),
        ("UCAL", f"override {primary} <@UANA> until 8h", "You are not allowed to run /oncall override: it needs the ops role in app.yaml."),
        # secondary declares none: only its members, and only to one another.
        ("UOPS1", f"override {secondary} <@UDAN> until 8h",
         f"You are not allowed to run /oncall override: it needs membership of the {secondary} rotation in app.yaml."),
        ("UANA", f"override {secondary} <@UDAN> until 8h",
         f"You are not allowed to run /oncall override: it needs membership of the {secondary} rotation in app.yaml."),
        # Whoever may override can only hand the rotation to one of its members.
        ("UOPS1", f"override {primary} <@UZED> until 8h", f"@UZED is not a member of the {primary} rotation; an override hands it to one of its members."),
        ("UOPS1", f"override {primary} <@UOPS1> until 8h", f"@UOPS1 is not a member of the {primary} rotation; an override hands it to one of its members."),
        ("UEVE", f"override {secondary} <@UANA> until 8h", f"@UANA is not a member of the {secondary} rotation; an override hands it to one of its members."),
    ]
    for user, text, expected in cases:
        one_sentence(d, await d.command(user, "/oncall", text), expected)
    assert await all_overrides(d.bot, tag) == []
    assert await overridden_rows(d.bot, mark) == []
    assert [outcome for _, outcome in await oncall_audit(d.bot, mark)] == ["denied"] * 4 + ["requested", "usage_error"] * 3

    # UDAN (no role at all) swaps with UEVE, who is on call now: members swap among themselves.
    assert "Your roles: none" in (await d.command("UDAN", "/help")).words
    seen = await d.command("UDAN", "/oncall", f"override {secondary} <@UDAN> until 8h")
    assert answer(d, seen) == f"@UDAN is on call for {secondary} until Wed 2026-03-04 15:00 EST (America/New_York), instead of @UEVE; set by @UDAN."
    [row] = await all_overrides(d.bot, tag)
    assert (row.rotation, row.user_id, row.created_by) == (secondary, "UDAN", "UDAN")


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_slack_must_know_the_covering_user_as_a_person(drive, slack):
    tag = uuid.uuid4().hex[:6]
    name, deleted, gone = f"primary-{tag}", f"UDEL{tag.upper()}", f"UGONE{tag.upper()}"
    slack.set_user(deleted, deleted=True)
    slack.unknown_user(gone)
    config = f"""
version: 1
roles:
  ops:
    users: [UOPS1]
oncall:
  {name}:
    members: [UANA, UBEN, UBOT, {deleted}, {gone}]
    override_roles: [ops]
"""
    d = await drive(config, clock=ManualClock(utc(2026, 3, 4, 12, 0)))
    for who, expected in [
        ("UBOT", "@UBOT is a bot; an override needs a person who can answer pages."),
        (deleted, f"@{deleted}'s account is deactivated; an override needs someone who can answer pages."),
        (gone, f"{gone} is not a user in this workspace; nothing was changed."),
    ]:
        one_sentence(d, await d.command("UOPS1", "/oncall", f"override {name} <@{who}> until 8h"), expected)
    slack.fail_next("users.info", "fatal_error")  # Slack cannot tell: nobody is put on call unchecked
    one_sentence(d, await d.command("UOPS1", "/oncall", f"override {name} <@UBEN> until 8h"),
                 "Slack could not say who @UBEN is (fatal_error); nothing was changed. Try again shortly.")
    assert await all_overrides(d.bot, tag) == []
    assert [c.args["user"] for c in slack.calls_to("users.info")] == ["UBOT", deleted, gone, "UBEN"]

    seen = await d.command("UOPS1", "/oncall", f"override {name} <@UBEN> until 8h")
    assert answer(d, seen).startswith(f"@UBEN is on call for {name} until")
    assert [c.args["user"] for c in slack.calls_to("users.info")][-1] == "UBEN"
    assert [row.user_id for row in await all_overrides(d.bot, tag)] == ["UBEN"]


@pytest.mark.parametrize("drive", ["console"], indirect=True)
async def test_the_console_knows_the_users_app_yaml_names(drive):
    tag = uuid.uuid4().hex[:6]
    d = await drive(oncall_config(tag), clock=ManualClock(utc(2026, 3, 4, 12, 0)))
    directory = d.bot.messengers["console"]
    for user in ("UOPS1", "UANA", "UEVE", "UCONSOLE"):  # a role's user, rotation members, the one at the terminal
        assert await directory.user(user) == ChatUser(user), user
    assert await directory.user("UZED") is None


def sent(d, slack) -> list[tuple[str, str]]:
    """What the bot posted besides its answers: ("ops", words) in the ops channel, ("dm:U…", words) to a person."""
    if d.name == "console":
        out = []
        for message in d.messages():
            head, _, rest = message.now.plain.partition("\n")
            direct = re.fullmatch(r"\(direct message to @(\w+)\)", head)
            out.append((f"dm:{direct.group(1)}", rest.strip()) if direct else ("ops", message.now.plain.strip()))
        return out
    dms = {c.response["channel"]["id"]: c.args["users"] for c in slack.calls_to("conversations.open") if c.ok}
    out = []
    for message in d.messages():
        channel = message.ref.split(":", 1)[0]
        where = "ops" if channel == "C0OPS" else f"dm:{dms[channel]}" if channel in dms else channel
        out.append((where, message.now.words.strip().splitlines()[0]))
    return out


async def test_an_override_is_audited_announced_and_told_to_everyone_it_displaces(drive, slack, database):
    tag = uuid.uuid4().hex[:6]
    primary = f"primary-{tag}"
    clock = ManualClock(utc(2026, 3, 4, 12, 0))  # UCAL's week until Monday 9 March 09:00 CET, then UANA's
    d = await drive(oncall_config(tag) + "slack:\n  ops_channel: C0OPS\n", database, clock=clock)
    mark = await audit_mark(d.bot)

    seen = await d.command("UOPS1", "/oncall", f"override {primary} <@UBEN> until 2026-03-09 13:00")
    expected = (f"@UBEN is on call for {primary} until Mon 2026-03-09 13:00 CET (Europe/Berlin), "
                "instead of @UCAL and @UANA; set by @UOPS1.")
    assert answer(d, seen) == expected
    await d.settle()
    assert sent(d, slack) == [
        ("ops", expected),
        ("dm:UCAL", f"You are off call for {primary}: @UBEN covers it instead of you "
                    "from Wed 2026-03-04 13:00 CET until Mon 2026-03-09 09:00 CET (Europe/Berlin); set by @UOPS1."),
        ("dm:UANA", f"You are off call for {primary}: @UBEN covers it instead of you "
                    "from Mon 2026-03-09 09:00 CET until Mon 2026-03-09 13:00 CET (Europe/Berlin); set by @UOPS1."),
    ]
    [row] = await overridden_rows(d.bot, mark)
    [override] = await all_overrides(d.bot, tag)
    assert (row.user_id, row.command, row.target, row.transport) == ("UOPS1", "oncall", primary, "console" if d.name == "console" else "slack")
    assert row.detail == (f"override #{override.id}: UBEN on call for {primary} until 2026-03-09T12:00:00+00:00, instead of UCAL, UANA")

    # Covering for oneself displaces nobody else; typed in the ops channel itself, the answer is the announcement.
    before = len(sent(d, slack))
    d.channel = "C0OPS"
    seen = await d.command("UOPS1", "/oncall", f"override {primary} <@UBEN> until 1h")
    assert answer(d, seen) == f"@UBEN is on call for {primary} until Wed 2026-03-04 14:00 CET (Europe/Berlin), instead of the rotation; set by @UOPS1."
    await d.settle()
    assert len(sent(d, slack)) == before + (1 if d.name == "console" else 0)  # the console prints the answer as a line of its own


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_an_override_says_what_could_not_be_told(drive, slack):
    tag = uuid.uuid4().hex[:6]
    primary = f"primary-{tag}"
    d = await drive(oncall_config(tag) + "slack:\n  ops_channel: C0OPS\n", clock=ManualClock(utc(2026, 3, 4, 12, 0)))
    slack.fail_next("chat.postMessage", "not_in_channel")
    slack.fail_next("conversations.open", "fatal_error")
    seen = await d.command("UOPS1", "/oncall", f"override {primary} <@UBEN> until 8h")
    assert seen.words.splitlines() == [
        f"@UBEN is on call for {primary} until Wed 2026-03-04 21:00 CET (Europe/Berlin), instead of @UCAL; set by @UOPS1.",
        "Not announced in the ops channel: Slack answered not_in_channel.",
        "@UCAL was not told directly: Slack answered fatal_error.",
    ]
    assert [row.user_id for row in await all_overrides(d.bot, tag)] == ["UBEN"]  # the override itself holds
