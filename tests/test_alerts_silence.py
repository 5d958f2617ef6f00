"""/incident silence <N> <duration>: an Alertmanager silence of the incident's alerts, through all three transports.

A real Alertmanager (Debian's binary, on a free port) takes the silence through its API v2. The
incident is opened by an Alertmanager notification (bot.alerts.intake, as POST /alerts/<name> does);
the silence is the `silence` action: requested by one owner of the incident's service, approved by
another, run, put on the timeline, and expired in Alertmanager when the incident resolves.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import aiohttp
import pytest
import pytest_asyncio
import yaml
from conftest import free_port, wait_until
from drivers import drive  # noqa: F401 (fixture)

from action_helpers import state_of
from bot.alerts.formats import parse
from bot.alerts.intake import receive
from bot.incident import service as incidents

CONFIG = """
version: 1
services:
  api:
    owners: [ops]
    checks: [{{kind: tcp, host: 127.0.0.1, port: 9}}]
roles:
  ops: {{users: [UOPS1, UOPS2]}}
  viewers: {{users: [UVIEW1]}}
slack:
  ops_channel: C0OPS
  incidents_channel: C0INCIDENTS
alerts:
  integrations:
    prod:
      format: alertmanager
      token_env: TEST_SILENCE_TOKEN
      alertmanager_url: {url}
      routes:
        - {{match: {{service: api}}, service: api}}
        - {{}}
"""


def notification(status: str = "firing") -> dict:
    """Alertmanager's webhook payload (version 4): one group of two alerts that differ by instance."""
    alerts = [{"status": status, "labels": {"alertname": "ApiDown", "service": "api", "severity": "critical", "instance": f"api-{n}:80"},
               "annotations": {"summary": "api is down"}, "startsAt": "2026-12-07T00:10:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"a1b2c3d4e5f6000{n}"} for n in (1, 2)]
    return {"version": "4", "groupKey": '{}:{alertname="ApiDown"}', "truncatedAlerts": 0, "status": status, "receiver": "opsbot",
            "groupLabels": {"alertname": "ApiDown"}, "commonLabels": {"alertname": "ApiDown", "service": "api", "severity": "critical"},
            "commonAnnotations": {"summary": "api is down"}, "externalURL": "http://alertmanager:9093", "alerts": alerts}


@pytest_asyncio.fixture
async def alertmanager(tmp_path):
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: run scripts/test-env.sh (make test does).")
    port = free_port()
    (tmp_path / "am.yml").write_text(yaml.safe_dump({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}))
    log_path = tmp_path / "am.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                                    f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def ready():
        if process.poll() is not None:
            raise AssertionError(f"alertmanager exited: {log_path.read_text(errors='replace')[-500:]}")
        try:
            async with http.get(f"{url}/-/ready") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await wait_until(ready, timeout=30, interval=0.1)
        yield url, http
    finally:
        await http.close()
        process.terminate()
        await asyncio.to_thread(process.wait, 15)


async def silences(http, url: str) -> list[dict]:
    async with http.get(f"{url}/api/v2/silences") as response:
        return await response.json()


async def test_a_silence_is_requested_approved_made_in_alertmanager_and_expired_on_resolve(drive, alertmanager, monkeypatch):
    monkeypatch.setenv("TEST_SILENCE_TOKEN", "unused-here-1234")
    url, http = alertmanager
    d = await drive(CONFIG.format(url=url))
    bot = d.bot
    [ref] = await receive(bot, "prod", parse(bot.config.alerts.integrations["prod"], json.dumps(notification()).encode()))
    assert ref == "INC-1"

    seen = await d.command("UOPS1", "/incident", "silence 1")
    assert "Usage: /incident silence 1 <duration>, e.g. /incident silence 1 2h" in seen.one_line
    seen = await d.command("UOPS1", "/incident", "silence 1 3d")
    assert "duration can be at most 1d." in seen.one_line
    seen = await d.command("UVIEW1", "/incident", "silence 1 2h")
    assert "You cannot silence the alerts of api: it needs the ops role in app.yaml." in seen.one_line

    seen = await d.command("UOPS1", "/incident", "silence 1 2h")
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    request_id = int(match.group(1))
    plan = d.messages()[-1].now.words
    assert ('prod: silence alertname="ApiDown", service="api", severity="critical" for 2h in Alertmanager, '
            "expired when INC-1 resolves") in plan
    assert await silences(http, url) == []  # nothing before the approval

    seen = await d.click("UOPS2", "action.approve", str(request_id))
    await d.settle()
    await wait_until(lambda: state_of(bot, request_id), timeout=5)
    assert await state_of(bot, request_id) == "succeeded", seen.words
    [silence] = await silences(http, url)
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "UOPS1"
    assert sorted((m["name"], m["value"], m["isRegex"], m.get("isEqual", True)) for m in silence["matchers"]) == [
        ("alertname", "ApiDown", False, True), ("service", "api", False, True), ("severity", "critical", False, True)]
    assert silence["comment"].startswith(f"INC-1: api is down (opsbot request #{request_id}, requested by UOPS1)")
    [entry] = [e for e in await incidents.timeline(bot.db, 1) if e.kind == "silence"]
    assert entry.text.startswith(f"Alertmanager silence {silence['id']} on alertname=\"ApiDown\", service=\"api\", severity=\"critical\" until ")

    await d.command("UOPS1", "/incident", "resolve 1 api back")
    [silence] = await silences(http, url)
    assert silence["status"]["state"] == "expired"
    [expired] = [e for e in await incidents.timeline(bot.db, 1) if e.kind == "silence_expired"]
    assert expired.text == f"Alertmanager silence {silence['id']} expired: the incident is resolved."

    seen = await d.command("UOPS1", "/incident", "silence 1 2h")
    assert "INC-1 is resolved; its alerts need no silence." in seen.one_line
