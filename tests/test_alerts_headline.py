"""An alert incident's alert list on its headline and in /incident show, through all three transports.

The incident is opened by Alertmanager notifications (bot.alerts.intake, as POST /alerts/<name> does):
twelve alerts that differ by instance, repeated, then one resolved. The headline in the incidents
channel is redrawn by a scheduled job after the list changes (never while the sender waits), and
lists the first ten alerts (firing first) with the labels that tell them apart, how many notifications
said each fires and when it was last seen, then "and 2 more". Label values are the sender's: a
`<!channel>` in one arrives as text (the Slack double fails the test on live markup it did not expect).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from drivers import drive  # noqa: F401 (fixture)

from bot.alerts.formats import parse
from bot.alerts.intake import receive
from bot.alerts.redraw import REDRAW_EVERY
from bot.schedule import ManualClock

UTC = timezone.utc
START = datetime(2026, 12, 7, 10, 0, 3, tzinfo=UTC)

CONFIG = """
version: 1
services:
  api:
    owners: [ops]
    checks: [{kind: tcp, host: 127.0.0.1, port: 9}]
roles:
  ops: {users: [UOPS1]}
slack:
  ops_channel: C0OPS
  incidents_channel: C0INCIDENTS
alerts:
  integrations:
    prod:
      format: alertmanager
      token_env: TEST_HEADLINE_TOKEN
      routes:
        - {match: {service: api}, service: api}
        - {}
"""


def notification(resolved: int | None = None) -> dict:
    """Alertmanager's webhook payload (version 4): one group of twelve alerts that differ by instance;
    alert `resolved` (if given) has stopped."""
    alerts = [{"status": "resolved" if n == resolved else "firing",
               "labels": {"alertname": "ApiDown", "service": "api", "severity": "critical", "instance": f"api-{n}:80",
                          **({"zone": "eu <!channel>"} if n == 1 else {})},
               "annotations": {"summary": "api is down"}, "startsAt": "2026-12-07T09:58:00Z",
               "endsAt": "2026-12-07T10:00:30Z" if n == resolved else "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"a1b2c3d4e5f6{n:04d}"} for n in range(1, 13)]
    return {"version": "4", "groupKey": '{}:{alertname="ApiDown"}', "truncatedAlerts": 0, "status": "firing", "receiver": "opsbot",
            "groupLabels": {"alertname": "ApiDown"}, "commonLabels": {"alertname": "ApiDown", "service": "api", "severity": "critical"},
            "commonAnnotations": {"summary": "api is down"}, "externalURL": "http://alertmanager:9093", "alerts": alerts}


async def deliver(bot, payload: dict) -> list[str]:
    return await receive(bot, "prod", parse(bot.config.alerts.integrations["prod"], json.dumps(payload).encode()))


LISTED = [
    "Alerts (12, 11 firing)",
    "• firing · ApiDown · instance=api-1:80, zone=eu <!channel> · 2 notifications firing · last seen 10:00 UTC",
    "• firing · ApiDown · instance=api-2:80 · 2 notifications firing · last seen 10:00 UTC",
    "• firing · ApiDown · instance=api-4:80 · 2 notifications firing · last seen 10:00 UTC",
    "• firing · ApiDown · instance=api-11:80 · 2 notifications firing · last seen 10:00 UTC",
    "and 2 more",
]
NOT_LISTED = ["instance=api-12:80", "instance=api-3:80 "]  # the eleventh firing one, and the resolved one (last)


def lists_the_alerts(words: str) -> bool:
    return all(line in words for line in LISTED) and not any(line in words for line in NOT_LISTED)


async def test_the_headline_and_incident_show_list_the_alerts_bounded(drive, monkeypatch):
    monkeypatch.setenv("TEST_HEADLINE_TOKEN", "unused-here-5678")
    clock = ManualClock(START)
    d = await drive(CONFIG, clock=clock)
    bot = d.bot
    assert await deliver(bot, notification()) == ["INC-1"]
    await bot.scheduler.run_due()  # the incident's announcement (a job, not the sender's wait): the headline, its list
    [announced] = headline_versions(d)
    assert "Alerts (12, 12 firing)" in announced and "instance=api-3:80 · 1 notification firing" in announced, announced
    clock.advance(timedelta(seconds=20))
    assert await deliver(bot, notification(resolved=3)) == ["INC-1"]  # a repeat: every alert counted, one stopped
    await d.settle()

    seen = await d.command("UOPS1", "/incident", "show 1")
    assert lists_the_alerts(seen.words), seen.words

    # The headline is redrawn by the job the notifications booked, at the end of their slot, not before.
    assert not any(lists_the_alerts(version) for version in headline_versions(d))
    clock.advance(timedelta(seconds=REDRAW_EVERY))
    await bot.scheduler.run_due()
    *_, redrawn = headline_versions(d)
    assert lists_the_alerts(redrawn), redrawn
    assert "Acknowledge" in redrawn or "incident.ack" in redrawn  # redrawn whole: its buttons stay


def headline_versions(d) -> list[str]:
    """The headline as posted, then each redraw: from Slack's calls, or from what the console printed (a post
    made outside a typed line, as the alert's, is printed on its own)."""
    if d.name == "console":
        typed = {id(chunk) for line in d.lines for chunk in line}  # /incident show's answer is not the headline
        printed = [" ".join(chunk.split()) for chunk in d.out.chunks if id(chunk) not in typed]
        return [chunk for chunk in printed if "INC-1 · P1 (High) · api is down" in chunk and "Opened by" in chunk]
    [headline] = [m for m in d.messages() if m.versions[0].words.startswith("INC-1 · P1 (High) · api is down")]
    return [" ".join(version.words.split()) + " " + " ".join(action for action, _ in version.buttons) for version in headline.versions]
