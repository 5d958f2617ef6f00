"""Alerts in (bot/alerts, POST /alerts/<name>): payloads posted with aiohttp to the bot's real HTTP server.

Grafana's unified alerting webhook and generic JSON as their senders write them, the routes that
turn them into incidents (first match wins, severity from a label), repeats and resolutions, the
reopen window, maintenance windows holding alerts back, and the edge: a wrong token is a 401 with
nothing opened, a 1 MB body a 413, a malformed one a 400 with one sentence. Alertmanager itself,
for real, is tests/test_alerts_alertmanager.py.
"""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from conftest import free_port
from test_schedules import Channel
from sqlalchemy import text

from bot.alerts import alert_list
from bot.config.loader import ConfigError, parse_config
from bot.incident import service as incidents
from bot.incident.models import Incident, IncidentState
from bot.pipeline.reply import Actions
from bot.pipeline.request import Request
from bot.schedule import ManualClock
from bot.transport.server import build_web_app

UTC = timezone.utc
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TOKEN = "grafana-token-7f3a"

CONFIG = """
version: 1
services:
  api:
    checks: [{kind: tcp, host: 127.0.0.1, port: 9}]
  billing:
    owners: [ops]
    checks: [{kind: tcp, host: 127.0.0.1, port: 9}]
roles:
  ops: {users: [UOPS1]}
slack:
  ops_channel: "#ops"
  incidents_channel: C0INCIDENTS
maintenance:
  all_services_roles: [ops]
severities:
  P1:
    respond_within: 15m
    escalation: [{users: [UONC1], repeat_every: 5m, max_repeats: 1}]
  P2:
    respond_within: 1h
    escalation: [{users: [UONC1]}]
  P3:
    respond_within: 4h
    escalation: [{users: [UONC1]}]
alerts:
  integrations:
    grafana:
      format: grafana
      token_env: TEST_GRAFANA_TOKEN
      routes:
        - match: {team: billing}
          service: billing
          severities: {critical: P1, warning: P3}
        - match: {team: blue}
          service: api
          dedup: alert
        - severity: P2
    hooks:
      format: generic
      token_env: TEST_GRAFANA_TOKEN
      fields: {title: check.name, status: check.state, dedup_key: check.id, severity: level, service: svc, source_url: link}
      routes:
        - match: {service: api}
          service: api
          severities: {high: P1}
          auto_resolve: true
        - {}
"""


def grafana_payload(status: str = "firing", *, team: str = "billing", severity: str = "critical", alerts: int = 1) -> dict:
    """Grafana's documented unified alerting webhook payload (webhook-notifier, "Body"), version 1."""
    items = []
    for index in range(alerts):
        items.append({
            "status": status,
            "labels": {"alertname": "High memory usage", "team": team, "zone": f"eu-{index + 1}", "severity": severity},
            "annotations": {"description": "The system has high memory usage", "runbook_url": "https://myrunbook.com/runbook/1234",
                            "summary": "High memory usage on billing <!channel>"},
            "startsAt": "2026-11-24T09:51:03.157076+01:00",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-24T10:21:03.157076+01:00",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": f"c6eadffa33fcdf3{index}",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue",
            "dashboardURL": "", "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
            "valueString": "[ var='B' labels={__name__=go_memstats_alloc_bytes} value=44.23943737541908 ]",
        })
    return {
        "receiver": "opsbot", "status": status, "orgId": 1, "alerts": items,
        "groupLabels": {"alertname": "High memory usage"}, "commonLabels": {"team": team, "alertname": "High memory usage", "severity": severity},
        "commonAnnotations": {"summary": "High memory usage on billing <!channel>"}, "externalURL": "https://play.grafana.org/",
        "version": "1", "groupKey": '{}/{team="' + team + '"}:{alertname="High memory usage"}', "truncatedAlerts": 0,
        "title": f"[{status.upper()}:{alerts}] High memory usage ({team})", "state": "alerting" if status == "firing" else "ok",
        "message": "**Firing**\n\nValue: B=44.2\nLabels:\n - alertname = High memory usage",
    }


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv("TEST_GRAFANA_TOKEN", TOKEN)


class Intake:
    def __init__(self, bot, url: str, http: aiohttp.ClientSession, channel: Channel):
        self.bot, self.url, self.http, self.channel = bot, url, http, channel

    async def post(self, name: str, payload, *, token: str = TOKEN, raw: bytes | None = None, expect100: bool = False) -> tuple[int, dict]:
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        async with self.http.post(f"{self.url}/alerts/{name}", data=body, headers=headers, expect100=expect100) as response:
            return response.status, await response.json()

    async def incidents(self) -> list[Incident]:
        return await incidents.listing(self.bot.db, include_resolved=True, limit=100)


@pytest_asyncio.fixture
async def intake(make_bot):
    clock = ManualClock(START)
    bot = await make_bot(CONFIG, clock=clock)
    channel = bot.messengers["slack"] = Channel()
    runner = web.AppRunner(build_web_app(bot), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    try:
        yield Intake(bot, f"http://127.0.0.1:{port}", http, channel)
    finally:
        await http.close()
        await runner.cleanup()


async def kinds(bot, incident_id: int) -> list[str]:
    return [e.kind for e in await incidents.timeline(bot.db, incident_id)]


# --------------------------------------------------------------------------- Grafana


async def test_a_grafana_group_opens_one_incident_repeats_count_and_resolution_offers_the_button(intake):
    status, answer = await intake.post("grafana", grafana_payload(alerts=2))
    assert status == 200 and answer["status"] == "accepted"
    [incident] = await intake.incidents()
    assert answer["incidents"] == [incident.ref]
    # First route (team=billing), severity from the label: critical -> P1; the summary is the title, kept as text.
    assert (incident.severity, incident.services, incident.title) == ("P1", ["billing"], "High memory usage on billing <!channel>")
    assert incident.dedup_key == 'alert:grafana:group:grafana:1:{}/{team="billing"}:{alertname="High memory usage"}'
    assert "Opened by the grafana alert integration (2 alerts)." in incident.description
    assert "Source: https://play.grafana.org/alerting/1afz29v7z/edit" in incident.description
    assert intake.channel.posts == []  # the sender was answered before anything went to Slack
    await intake.bot.scheduler.run_due()  # the announcement: a job booked with the incident
    headline = intake.channel.posts[0]
    assert headline[0] == "C0INCIDENTS" and "INC-1" in str(headline[1].text)

    for _ in range(2):  # Grafana's repeat_interval, and a retry of the same delivery
        status, answer = await intake.post("grafana", grafana_payload(alerts=2))
        assert status == 200 and answer["incidents"] == [incident.ref]
    assert len(await intake.incidents()) == 1
    listed = await alert_list.of_incident(intake.bot.db, incident.id)
    assert [(a.fingerprint, a.status, a.firing_count) for a in listed] == [("c6eadffa33fcdf30", "firing", 3), ("c6eadffa33fcdf31", "firing", 3)]
    assert (await kinds(intake.bot, incident.id)).count("alert") == 2  # each alert once, however often it is sent

    posts = len(intake.channel.posts)
    for _ in range(2):  # the resolved notification, delivered twice
        status, _ = await intake.post("grafana", grafana_payload("resolved", alerts=2))
        assert status == 200
    assert (await kinds(intake.bot, incident.id)).count("alerts_resolved") == 1
    assert await alert_list.firing(intake.bot.db, incident.id) == 0
    assert intake.channel.posts[posts:] == []  # the sender was answered before anything went to Slack
    await intake.bot.scheduler.run_due()  # the note is a job, booked once for both deliveries
    [(where, note)] = [(to, reply) for to, reply in intake.channel.posts[posts:] if "resolved" in str(reply.text)]
    assert where == "C0INCIDENTS" and str(note.text) == "INC-1: all 2 of its alerts are resolved, says grafana. (alerts resolved 1.1.1795510263)"
    [buttons] = [b for b in note.blocks if isinstance(b, Actions)]
    assert [(b.label, b.action_id, b.value) for b in buttons.buttons] == [("Resolve", "incident.resolve", str(incident.id))]
    assert (await incidents.get(intake.bot.db, incident.id)).state is IncidentState.open  # auto_resolve is off on this route


async def test_routes_first_match_wins_per_alert_dedup_and_the_default_route(intake):
    # team=blue: the second route, dedup per alert (fingerprint): two alerts, two incidents on api.
    status, answer = await intake.post("grafana", grafana_payload(team="blue", severity="warning", alerts=2))
    assert status == 200 and len(answer["incidents"]) == 2
    opened = await intake.incidents()
    assert sorted(i.dedup_key for i in opened) == ["alert:grafana:alert:c6eadffa33fcdf30", "alert:grafana:alert:c6eadffa33fcdf31"]
    assert {(i.severity, tuple(i.services)) for i in opened} == {("P3", ("api",))}  # route default severities: warning -> P3
    # No team label matches: the default route, its own severity.
    status, answer = await intake.post("grafana", grafana_payload(team="red", severity="info"))
    [default] = [i for i in await intake.incidents() if i.ref == answer["incidents"][0]]
    assert (default.severity, default.services) == ("P2", [])


async def test_an_alert_firing_again_within_reopen_within_reopens_and_later_opens_a_new_one(intake):
    bot, clock = intake.bot, intake.bot.clock
    await intake.post("grafana", grafana_payload())
    [incident] = await intake.incidents()
    await bot.handle(Request("UOPS1", "C1", "incident", f"resolve {incident.id} memory freed", "console"))
    clock.advance(timedelta(minutes=30))
    status, answer = await intake.post("grafana", grafana_payload())
    assert status == 200 and answer["incidents"] == [incident.ref]
    again = await incidents.get(bot.db, incident.id)
    assert again.state is IncidentState.open and (await kinds(bot, incident.id)).count("reopened") == 1
    await bot.handle(Request("UOPS1", "C1", "incident", f"resolve {incident.id} really freed", "console"))
    clock.advance(timedelta(hours=1, minutes=1))
    status, answer = await intake.post("grafana", grafana_payload())
    assert status == 200 and answer["incidents"] == ["INC-2"]
    assert [i.state for i in await intake.incidents()] == [IncidentState.open, IncidentState.resolved]


async def test_a_maintenance_window_holds_the_alert_and_its_end_lists_it(intake):
    bot = intake.bot
    started = await bot.handle(Request("UOPS1", "C1", "maintenance", 'start 1h billing "disk swap"', "console"))
    assert "started" in started.text
    await bot.scheduler.run_due()
    for _ in range(3):
        status, answer = await intake.post("grafana", grafana_payload())
        assert status == 200 and answer["incidents"] == ["held by maintenance window #1"]
    assert await intake.incidents() == []
    bot.clock.advance(timedelta(minutes=20))
    await bot.handle(Request("UOPS1", "C1", "maintenance", "end 1", "console"))
    await bot.scheduler.run_due()
    [ended] = [str(r.text) for to, r in intake.channel.posts if to == "#ops" and "ended" in str(r.text)]
    assert "Alerts held during the window (1), no incident opened:" in ended
    assert "- billing: High memory usage on billing <!channel> (firing, 3 notifications, via grafana)" in ended
    # After the window the alert opens its incident.
    status, answer = await intake.post("grafana", grafana_payload())
    assert answer["incidents"] == ["INC-1"]


# --------------------------------------------------------------------------- generic JSON


def generic(state: str = "alerting", *, level: str = "high") -> dict:
    return {"check": {"id": "uptime-api-1", "name": "api answers 502", "state": state}, "level": level, "svc": "api",
            "link": "https://status.example.com/checks/1"}


async def test_generic_json_is_mapped_by_its_declared_fields_and_auto_resolves(intake):
    status, answer = await intake.post("hooks", generic())
    assert status == 200
    [incident] = await intake.incidents()
    assert (incident.title, incident.severity, incident.services, incident.dedup_key) == (
        "api answers 502", "P1", ["api"], "alert:hooks:group:uptime-api-1")
    status, _ = await intake.post("hooks", generic("OK"))  # resolved_values, case-insensitively
    assert status == 200
    await intake.bot.scheduler.run_due()  # auto_resolve: a job run after the sender's answer
    resolved = await incidents.get(intake.bot.db, incident.id)
    assert resolved.state is IncidentState.resolved and resolved.resolved_by == "opsbot" and resolved.summary == "The alert is resolved (hooks)."
    assert (await kinds(intake.bot, incident.id)).count("resolved") == 1


@pytest.mark.parametrize("payload, sentence", [
    ([1, 2], "The payload must be a JSON object."),
    ({"check": {"id": "x", "state": "alerting"}}, "The payload has no check.name."),
    ({"check": {"id": "x", "name": {"nested": 1}, "state": "alerting"}}, "The payload's check.name must be a string or a number."),
])
async def test_generic_json_missing_or_wrong_fields_is_one_sentence(intake, payload, sentence):
    status, answer = await intake.post("hooks", payload)
    assert (status, answer) == (400, {"error": sentence})
    assert await intake.incidents() == []


async def test_a_window_on_an_open_incidents_service_holds_nothing_of_that_incident(intake):
    """INC-1 is open for billing; a window opened on billing to fix it must not hide its repeats or that the fix worked."""
    bot = intake.bot
    await intake.post("grafana", grafana_payload())
    [incident] = await intake.incidents()
    started = await bot.handle(Request("UOPS1", "C1", "maintenance", 'start 1h billing "free memory"', "console"))
    assert "started" in started.text
    await bot.scheduler.run_due()
    status, answer = await intake.post("grafana", grafana_payload())  # a repeat: counted on the open incident
    assert (status, answer["incidents"]) == (200, [incident.ref])
    assert [a.firing_count for a in await alert_list.of_incident(bot.db, incident.id)] == [2]
    status, answer = await intake.post("grafana", grafana_payload("resolved"))
    assert (status, answer["incidents"]) == (200, [incident.ref])
    assert (await kinds(bot, incident.id)).count("alerts_resolved") == 1
    await bot.scheduler.run_due()  # the resolution note with its Resolve button
    assert [to for to, reply in intake.channel.posts if "its alert is resolved, says grafana" in str(reply.text)] == ["C0INCIDENTS"]
    await bot.handle(Request("UOPS1", "C1", "incident", f"resolve {incident.id} memory freed", "console"))
    # With nothing open, the alert would open (here: reopen) an incident: that the window holds.
    status, answer = await intake.post("grafana", grafana_payload())
    assert (status, answer["incidents"]) == (200, ["held by maintenance window #1"])
    assert [i.state for i in await intake.incidents()] == [IncidentState.resolved]


async def test_auto_resolve_keeps_the_incident_open_when_its_alert_fired_again_before_the_job_ran(intake):
    bot = intake.bot
    await intake.post("hooks", generic())
    [incident] = await intake.incidents()
    await intake.post("hooks", generic("OK"))  # auto_resolve booked, not yet run
    status, answer = await intake.post("hooks", generic())  # it flaps back, and joins the open incident
    assert (status, answer["incidents"]) == (200, [incident.ref])
    await bot.scheduler.run_due()
    await bot.scheduler.run_due()
    assert (await incidents.get(bot.db, incident.id)).state is IncidentState.open
    [skipped] = [e for e in await incidents.timeline(bot.db, incident.id) if e.kind == "auto_resolve_skipped"]
    assert skipped.text == "Not resolved automatically: 1 alert fires again."
    assert (await kinds(bot, incident.id)).count("resolved") == 0


# --------------------------------------------------------------------------- the edge


async def test_a_wrong_or_missing_token_is_401_and_opens_nothing(intake):
    for token in ("wrong", "", TOKEN + "x", TOKEN.upper()):
        status, answer = await intake.post("grafana", grafana_payload(), token=token)
        assert (status, answer) == (401, {"error": "The bearer token is missing or wrong."})
    async with intake.http.post(f"{intake.url}/alerts/grafana", json=grafana_payload()) as response:  # no header at all
        assert response.status == 401
    assert await intake.incidents() == []


async def test_a_1_mb_body_is_413_and_unknown_integrations_404(intake):
    payload = grafana_payload()
    payload["message"] = "x" * 1_000_000
    # Expect: 100-continue (as curl sends it): refused on its Content-Length before a byte of the body is sent.
    status, answer = await intake.post("grafana", payload, expect100=True)
    assert status == 413 and answer == {"error": "The body is larger than 512 KiB; lower max_alerts on the sender."}
    # Without it, and without a Content-Length (chunked): read up to the cap, then refused.
    async def chunks():
        for _ in range(16):
            yield b"x" * 65536
    async with intake.http.post(f"{intake.url}/alerts/grafana", data=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 413
    status, _ = await intake.post("grafana", grafana_payload(), token="wrong", expect100=True)
    assert status == 401
    status, answer = await intake.post("nope", grafana_payload())
    assert status == 404
    assert await intake.incidents() == []


@pytest.mark.parametrize("raw, sentence", [
    (b"{not json", "The body is not JSON."),
    (b"\xff\xfe", "The body is not JSON."),
    (b"[" * 100_000 + b"]" * 100_000, "The body is not JSON."),
    (json.dumps({**grafana_payload(), "version": "4"}).encode(),
     "This is not a Grafana alerting webhook payload (version 1): version: Input should be '1'."),
    (json.dumps({**grafana_payload(), "alerts": []}).encode(),
     "This is not a Grafana alerting webhook payload (version 1): alerts: List should have at least 1 item after validation, not 0."),
])
async def test_malformed_bodies_are_400_with_one_sentence_and_the_server_keeps_serving(intake, raw, sentence):
    status, answer = await intake.post("grafana", None, raw=raw)
    assert (status, answer) == (400, {"error": sentence})
    status, _ = await intake.post("grafana", grafana_payload())
    assert status == 200


async def test_a_failure_half_way_is_a_503_and_the_senders_retry_finishes_without_a_duplicate(intake):
    bot = intake.bot
    async with bot.db.sessions() as session, session.begin():  # the alert list's table is away: opened, then failed
        await session.execute(text("ALTER TABLE alert_instances RENAME TO alert_instances_away"))
    status, answer = await intake.post("grafana", grafana_payload())
    assert (status, answer) == (503, {"error": "The alert could not be handled now; send it again."})
    async with bot.db.sessions() as session, session.begin():
        await session.execute(text("ALTER TABLE alert_instances_away RENAME TO alert_instances"))
    status, answer = await intake.post("grafana", grafana_payload())  # the sender's retry
    assert (status, answer["incidents"]) == (200, ["INC-1"])
    [incident] = await intake.incidents()
    assert [a.firing_count for a in await alert_list.of_incident(bot.db, incident.id)] == [1]


# --------------------------------------------------------------------------- config


def test_routes_need_a_default_and_name_what_exists():
    text = CONFIG.replace("        - severity: P2\n", "        - {match: {team: red}, severity: P9, playbook: nope}\n")
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    said = [str(p) for p in raised.value.problems]
    line = text.splitlines().index("        - {match: {team: red}, severity: P9, playbook: nope}") + 1
    assert f"app.yaml:{line}: alerts.integrations.grafana.routes[2]: integration 'grafana' needs a default route: its last route must have no match" in said
    assert any("route 2 of 'grafana' names unknown severity 'P9'" in s for s in said)
    assert any("route 2 of 'grafana' names unknown playbook 'nope'" in s for s in said)
    generic_without_fields = CONFIG.replace("      fields: {title: check.name, status: check.state, dedup_key: check.id, severity: level, service: svc, source_url: link}\n", "")
    with pytest.raises(ConfigError, match="a generic integration needs fields"):
        parse_config(generic_without_fields)


def test_severity_is_the_most_urgent_the_alerts_map_to():
    config = parse_config(CONFIG)
    from bot.alerts.grafana import notification_of
    from bot.alerts.routing import routed, severity_for

    payload = grafana_payload(severity="warning", alerts=2)
    payload["alerts"][1]["labels"]["severity"] = "critical"
    payload["commonLabels"].pop("severity")
    [item] = routed("grafana", config.alerts.integrations["grafana"], notification_of(copy.deepcopy(payload)))
    assert severity_for(item, config) == "P1"


async def test_secrets_in_an_alert_are_redacted_before_they_are_kept_or_shown(intake):
    payload = grafana_payload()
    secret = "ghp_" + "a1B2" * 9
    payload["commonAnnotations"]["summary"] = f"login failing with token {secret}"
    payload["alerts"][0]["annotations"]["summary"] = f"login failing with token {secret}"
    payload["alerts"][0]["generatorURL"] = "https://grafana.example.com/alerting/x?password=hunter2hunter2"
    status, _ = await intake.post("grafana", payload)
    assert status == 200
    await intake.bot.scheduler.run_due()  # the headline, with the alert list once redrawn
    intake.bot.clock.advance(timedelta(minutes=1))
    await intake.bot.scheduler.run_due()
    [incident] = await intake.incidents()
    kept = [incident.title, incident.description] + [e.text + json.dumps(e.data) for e in await incidents.timeline(intake.bot.db, incident.id)]
    kept += [a.title + a.source_url for a in await alert_list.of_incident(intake.bot.db, incident.id)]
    kept += [str(reply.text) for _, reply in intake.channel.posts]
    assert incident.title == "login failing with token [REDACTED]"
    assert not [text for text in kept if secret in text or "hunter2hunter2" in text]


async def test_an_alertmanager_payload_with_a_wrong_version_or_no_group_key_is_one_sentence(intake, monkeypatch):
    from bot.alerts.formats import parse

    config = parse_config(CONFIG.replace("      format: grafana\n", "      format: alertmanager\n", 1))
    integration = config.alerts.integrations["grafana"]
    payload = {**grafana_payload(), "version": "4"}
    assert parse(integration, json.dumps(payload).encode()).group_key == payload["groupKey"]
    from bot.alerts.notification import Malformed

    with pytest.raises(Malformed, match=r"^This is not an Alertmanager webhook payload \(version 4\): version: Input should be '4'\.$"):
        parse(integration, json.dumps(grafana_payload()).encode())
    del payload["groupKey"]
    with pytest.raises(Malformed, match=r"^This is not an Alertmanager webhook payload \(version 4\): groupKey: Field required\.$"):
        parse(integration, json.dumps(payload).encode())
