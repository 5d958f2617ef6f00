"""Alertmanager silences for an incident's alerts (API v2: POST /api/v2/silences, DELETE /api/v2/silence/{id}).

What a silence matches is the labels every alert of the incident carries with the same value (the
group's labels), as amtool silences a group; exact matchers only, so nothing typed in chat becomes
a regular expression in Alertmanager. Made by the alertmanager_silence action kind (approved like
any action), kept in alert_silences, and expired when the incident resolves (expire_for, called by
the incident slice's resolution hook); one Alertmanager cannot answer, the silence still ends at its end.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from sqlalchemy import select, update

from bot.alerts import alert_list
from bot.alerts.models import AlertSilence
from bot.alerts.notification import common_labels
from bot.config.types import MissingEnvironment, expand_env, register_env_value
from bot.incident import service as incidents
from bot.storage import Database

log = logging.getLogger(__name__)
S = AlertSilence
MAX_ANSWER = 64 * 1024
EXPIRE_TIMEOUT = 10.0


class SilenceFailed(Exception):
    """Alertmanager refused or could not be reached: one sentence."""


@dataclass(frozen=True)
class Where:
    """One integration's Alertmanager."""

    integration: str
    url: str  # as app.yaml writes it; ${VAR} expanded at use
    token_env: str | None


def where_of(config, integration: str) -> Where | None:
    found = config.alerts.integrations.get(integration)
    if found is None or found.alertmanager_url is None:
        return None
    return Where(integration, found.alertmanager_url, found.alertmanager_token_env)


async def matchers_by_integration(db: Database, incident_id: int) -> dict[str, list[dict]]:
    """For each integration the incident's alerts came from: the exact matchers on the labels they share."""
    rows = await alert_list.of_incident(db, incident_id)
    by_integration: dict[str, list[dict]] = {}
    for row in rows:
        by_integration.setdefault(row.integration, []).append(row.labels or {})
    return {name: [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(common_labels(sets).items())]
            for name, sets in by_integration.items()}


def _endpoint(where: Where) -> tuple[str, dict[str, str]]:
    try:
        base = expand_env(where.url).rstrip("/")
    except MissingEnvironment as exc:
        raise SilenceFailed(f"{where.integration}'s alertmanager_url needs {', '.join(exc.names)} set in the environment") from None
    headers = {"Content-Type": "application/json"}
    if where.token_env:
        token = os.environ.get(where.token_env, "")
        if not token:
            raise SilenceFailed(f"environment variable {where.token_env} is not set, so opsbot cannot reach {where.integration}'s Alertmanager")
        register_env_value(token, credential=True)
        headers["Authorization"] = f"Bearer {token}"
    return base, headers


async def create(where: Where, matchers: list[dict], starts: datetime, ends: datetime, created_by: str, comment: str,
                 timeout: float) -> str:
    """The new silence's ID."""
    base, headers = _endpoint(where)
    body = {"matchers": matchers, "startsAt": starts.isoformat(), "endsAt": ends.isoformat(), "createdBy": created_by, "comment": comment}
    answer = await _call("POST", f"{base}/api/v2/silences", headers, body, timeout, where)
    silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
    if not isinstance(silence_id, str) or not silence_id or len(silence_id) > 64:
        raise SilenceFailed(f"{where.integration}'s Alertmanager answered without a silence ID")
    return silence_id


async def _call(method: str, url: str, headers: dict, body: dict | None, timeout: float, where: Where) -> object:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.request(method, url, json=body, headers=headers) as response:
                raw = await response.content.read(MAX_ANSWER)
                if response.status >= 300:
                    raise SilenceFailed(f"{where.integration}'s Alertmanager answered HTTP {response.status}")
                return _json(raw) if raw else None  # at most MAX_ANSWER bytes
    except (asyncio.TimeoutError, TimeoutError):
        raise SilenceFailed(f"{where.integration}'s Alertmanager did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise SilenceFailed(f"{where.integration}'s Alertmanager is not reachable ({exc.__class__.__name__})") from None


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def record(db: Database, *, incident_id: int, integration: str, silence_id: str, matchers: list[dict], created_by: str,
                 now: datetime, ends: datetime) -> None:
    async with db.sessions() as session, session.begin():
        session.add(S(incident_id=incident_id, integration=integration, silence_id=silence_id, matchers=matchers, created_by=created_by,
                      created_at=now, ends_at=ends))


def matchers_text(matchers: list[dict]) -> str:
    return ", ".join(f'{m["name"]}="{m["value"]}"' for m in matchers) or "every alert"


async def expire_for(bot, incident) -> None:
    """The incident resolved: its silences still running are expired in Alertmanager, each said on its timeline once."""
    now = bot.clock.now()
    async with bot.db.sessions() as session:
        rows = list(await session.scalars(select(S).where(S.incident_id == incident.id, S.expired_at.is_(None), S.ends_at > now)))
    for row in rows:
        async with bot.db.sessions() as session, session.begin():  # claimed once: of two replicas, one expires it
            claimed = await session.execute(update(S).where(S.id == row.id, S.expired_at.is_(None)).values(expired_at=now))
        if claimed.rowcount != 1:
            continue
        where = where_of(bot.config, row.integration)
        try:
            if where is None:
                raise SilenceFailed(f"integration {row.integration} no longer has an alertmanager_url")
            base, headers = _endpoint(where)
            await _call("DELETE", f"{base}/api/v2/silence/{row.silence_id}", headers, None, EXPIRE_TIMEOUT, where)
            text = f"Alertmanager silence {row.silence_id} expired: the incident is resolved."
        except SilenceFailed as exc:
            log.warning("%s: silence %s not expired (%s)", incident.ref, row.silence_id, exc)
            text = f"Alertmanager silence {row.silence_id} could not be expired ({exc}); it ends on its own at {row.ends_at:%Y-%m-%d %H:%M %Z}."
        await incidents.add_entry(bot.db, incident.id, incidents.Entry("silence_expired", "", text, {"silence": row.silence_id},
                                                                       key=f"silence.expired:{row.silence_id}"), now)
