"""On-call overrides in the database, and who is on call: an override covering the time, else the rotation.

Times come from the caller (a Clock), never from the database. Among overrides covering a
time the one created last wins (ties by id), and any override wins over the rotation.
`until` is when that answer stops holding: the end of the shift or override, or the start of
an override that takes precedence, whichever comes first.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from bot.config.incident_models import Rotation
from bot.config.models import AppConfig
from bot.oncall.models import OncallOverride
from bot.oncall.rotation import Shift, shift_at
from bot.schedule.business_hours import as_utc
from bot.schedule.clock import Clock
from bot.storage import Database

MAX_PIECES = 10_000
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")  # as Slack writes a user id (bot/pipeline/markup.py)


@dataclass(frozen=True)
class OnCall:
    user: str
    until: dt.datetime  # UTC: when this answer stops holding
    source: Literal["rotation", "override"]


class UnknownRotation(ValueError):
    pass


async def add_override(
    db: Database, rotation: str, user_id: str, starts_at: dt.datetime, ends_at: dt.datetime, created_by: str, now: dt.datetime
) -> OncallOverride:
    """`user_id` covers `rotation` from `starts_at` until `ends_at`; ValueError (a sentence) when that makes no sense."""
    starts_at, ends_at, now = as_utc(starts_at), as_utc(ends_at), as_utc(now)
    if not _USER_ID.match(user_id):
        raise ValueError(f"'{user_id[:40]}' is not a Slack user id (U… or W…).")
    if ends_at <= now:
        raise ValueError("The override would end in the past; give a time after now.")
    if ends_at <= starts_at:
        raise ValueError("The override would end before it starts; give an end after its start.")
    row = OncallOverride(rotation=rotation, user_id=user_id, starts_at=starts_at, ends_at=ends_at, created_by=created_by, created_at=now)
    async with db.sessions() as session, session.begin():
        session.add(row)
    return row


async def overrides(db: Database, rotation: str, now: dt.datetime) -> list[OncallOverride]:
    """Overrides of `rotation` that have not ended by `now` (active and future), by start."""
    query = (
        select(OncallOverride)
        .where(OncallOverride.rotation == rotation, OncallOverride.ends_at > as_utc(now))
        .order_by(OncallOverride.starts_at, OncallOverride.id)
    )
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def on_call(db: Database, config: AppConfig, rotation: str, at: dt.datetime) -> OnCall:
    """Who is on call for `rotation` at `at`; UnknownRotation when app.yaml has no such rotation."""
    return _resolve(_rotation(config, rotation), await overrides(db, rotation, at), as_utc(at))


async def next_on_call(db: Database, config: AppConfig, rotation: str, at: dt.datetime) -> OnCall:
    """Who takes over when the answer at `at` stops holding (at its `until`); may be the same person."""
    at = as_utc(at)
    spec = _rotation(config, rotation)
    pending = await overrides(db, rotation, at)
    current = _resolve(spec, pending, at)
    return _resolve(spec, [o for o in pending if o.ends_at > current.until], current.until)


async def on_call_between(db: Database, config: AppConfig, rotation: str, starts: dt.datetime, ends: dt.datetime) -> list[Shift]:
    """Who is on call from `starts` until `ends`, in order, one piece per answer (overrides included);
    at most MAX_PIECES pieces (a year of hourly shifts)."""
    at, ends = as_utc(starts), as_utc(ends)
    spec = _rotation(config, rotation)
    pending = await overrides(db, rotation, at)
    pieces: list[Shift] = []
    while at < ends and len(pieces) < MAX_PIECES:
        answer = _resolve(spec, pending, at)
        pieces.append(Shift(answer.user, at, min(answer.until, ends)))
        at = answer.until
    return pieces


def _rotation(config: AppConfig, name: str) -> Rotation:
    spec = config.oncall.get(name)
    if spec is None:
        raise UnknownRotation(f"unknown rotation '{name[:64]}'")
    return spec


def _resolve(spec: Rotation, pending: list[OncallOverride], at: dt.datetime) -> OnCall:
    """The answer at `at` from the rotation and the overrides that have not ended by `at`."""
    newest = lambda o: (o.created_at, o.id)  # noqa: E731
    covering = [o for o in pending if o.starts_at <= at < o.ends_at]
    if covering:
        winner = max(covering, key=newest)
        # A newer override starting before this one ends takes over then.
        takeovers = [o.starts_at for o in pending if at < o.starts_at < winner.ends_at and newest(o) > newest(winner)]
        return OnCall(winner.user_id, min([winner.ends_at, *takeovers]), "override")
    shift = shift_at(spec, at)
    takeovers = [o.starts_at for o in pending if at < o.starts_at < shift.ends]
    return OnCall(shift.user, min([shift.ends, *takeovers]), "rotation")


class OncallDirectory:
    """Who is on call now, for roles (role.rotations) and incident escalation (escalation level rotation:)."""

    def __init__(self, db: Database, config: AppConfig, clock: Clock):
        self._db, self._config, self._clock = db, config, clock

    async def on_call_users(self, rotation: str) -> set[str]:
        """The users on call for `rotation` now (one today). UnknownRotation for a name app.yaml lacks;
        a database error propagates (RoleDirectory fails closed on it)."""
        return {(await on_call(self._db, self._config, rotation, self._clock.now())).user}
