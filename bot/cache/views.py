"""The replies /cache shows: status, queues and one user's rate-limit keys."""
from __future__ import annotations

from bot.cache.client import Where
from bot.cache.keys import Found, shown_key
from bot.cache.readings import QueueReading, Status, worst
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply

LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}
OUTCOME = {"ok": Outcome.ok, "warning": Outcome.warning, "critical": Outcome.critical}
SHOWN_KEYS = 50


def status_reply(name: str, status: Status) -> Reply:
    title = f"Cache {name} ({status.where}): {LABEL[status.grade]}"
    body = "\n".join(status.lines)
    return Reply(
        text=f"{title}\n{body}",
        blocks=[Header(f"/cache {name} status"), Context(title), Preformatted(body)],
        outcome=OUTCOME[status.grade],
    )


def _queue_line(reading: QueueReading, limits) -> str:
    if reading.length is None:
        return f"{reading.key}: holds a {reading.type}, not a list, so it has no length (WRONGTYPE)"
    bound = ""
    if reading.grade == "critical":
        bound = f" (critical at {limits.critical:,.0f})"
    elif reading.grade == "warning":
        bound = f" (warning at {limits.warn:,.0f})"
    return f"{reading.key}: {reading.length:,} {LABEL[reading.grade]}{bound}"


def queues_reply(name: str, where: Where, readings: list[QueueReading], limits) -> Reply:
    if not readings:
        sentence = f"Cache {name} has no queues in app.yaml: list its list keys under caches: {name}: queues: (e.g. queues:default)."
        return Reply(text=sentence, blocks=[Header(f"/cache {name} queues"), Context(sentence)])
    grade = worst(r.grade for r in readings)
    title = f"Cache {name} queues ({where}): {LABEL[grade]}"
    body = "\n".join(_queue_line(r, limits) for r in readings)
    return Reply(
        text=f"{title}\n{body}",
        blocks=[Header(f"/cache {name} queues"), Context(title), Preformatted(body)],
        outcome=OUTCOME[grade],
    )


def ratelimit_reply(name: str, user: str, found: Found, where: Where) -> Reply:
    capped = f" The scan stopped after examining about {found.examined:,} keys, so there may be more." if found.capped else ""
    patterns = ", ".join(found.patterns)
    if not found.keys:
        sentence = f"No rate-limit keys for user {user} in cache {name} ({patterns}, {where}).{capped}"
        return Reply(text=sentence, blocks=[Header(f"/cache {name} ratelimit {user}"), Context(sentence)])
    count = len(found.keys)
    title = f"{count:,} rate-limit key{'s' if count != 1 else ''} for user {user} in cache {name} ({patterns}, {where})."
    listed = "\n".join(shown_key(k) for k in found.keys[:SHOWN_KEYS])
    if count > SHOWN_KEYS:
        listed += f"\n... and {count - SHOWN_KEYS:,} more"
    hint = f"To delete them (approval needed): /cache {name} ratelimit {user} --clear.{capped}"
    return Reply(
        text=f"{title}\n{listed}\n{hint}",
        blocks=[Header(f"/cache {name} ratelimit {user}"), Context(title), Preformatted(listed), Context(hint)],
    )
