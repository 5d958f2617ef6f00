"""/incident silence through Grafana's Alertmanager-compatible API, whose path has a prefix.

Grafana serves its built-in Alertmanager's API v2 under /api/alertmanager/grafana/api/v2/ and wants a
service account token. A small proxy plays that part in front of the real Alertmanager (Debian's binary):
it answers only under the prefix, refuses a request without the token, and forwards the rest. The
integration's alertmanager_url is the prefix; the silence is made, then expired when the incident resolves.
"""
from __future__ import annotations

import json
import re

import aiohttp
import pytest_asyncio
from aiohttp import web
from conftest import free_port, wait_until
from drivers import drive  # noqa: F401 (fixture)
from test_alerts import grafana_payload
from test_alerts_silence import alertmanager, silences  # noqa: F401 (fixture: the real Alertmanager)

from action_helpers import state_of
from bot.alerts.formats import parse
from bot.alerts.intake import receive

PREFIX = "/api/alertmanager/grafana"
SA_TOKEN = "glsa_grafanaServiceAccount_0123456789abcdef"

CONFIG = """
version: 1
services:
  billing:
    owners: [ops]
    checks: [{{kind: tcp, host: 127.0.0.1, port: 9}}]
roles:
  ops: {{users: [UOPS1, UOPS2]}}
slack:
  ops_channel: C0OPS
  incidents_channel: C0INCIDENTS
alerts:
  integrations:
    grafana:
      format: grafana
      token_env: TEST_GRAFANA_IN_TOKEN
      alertmanager_url: {url}
      alertmanager_token_env: TEST_GRAFANA_SA_TOKEN
      routes:
        - {{match: {{team: billing}}, service: billing}}
        - {{}}
"""


@pytest_asyncio.fixture
async def grafana_prefix(alertmanager):  # noqa: F811
    """Grafana's path for its Alertmanager in front of the real one: (the prefixed URL, what it was asked)."""
    target, http = alertmanager
    asked: list[tuple[str, str, int]] = []

    async def forward(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SA_TOKEN}":
            asked.append((request.method, request.path, 401))
            return web.json_response({"message": "Unauthorized"}, status=401)
        async with http.request(request.method, f"{target}/{request.match_info['tail']}", data=await request.read(),
                                headers={"Content-Type": request.headers.get("Content-Type", "application/json")}) as answer:
            body = await answer.read()
            asked.append((request.method, request.path, answer.status))
            return web.Response(status=answer.status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", PREFIX + "/{tail:api/v2/.*}", forward)  # anything else: aiohttp's 404, as Grafana's router
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}{PREFIX}", asked
    finally:
        await runner.cleanup()


async def test_a_silence_through_grafanas_prefixed_alertmanager_api_is_made_and_expired(drive, alertmanager, grafana_prefix, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEST_GRAFANA_IN_TOKEN", "unused-here-8765")
    monkeypatch.setenv("TEST_GRAFANA_SA_TOKEN", SA_TOKEN)
    target, http = alertmanager
    url, asked = grafana_prefix
    d = await drive(CONFIG.format(url=url))
    bot = d.bot
    assert await receive(bot, "grafana", parse(bot.config.alerts.integrations["grafana"], json.dumps(grafana_payload()).encode())) == ["INC-1"]

    seen = await d.command("UOPS1", "/incident", "silence 1 2h")
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    await d.click("UOPS2", "action.approve", match.group(1))
    await d.settle()
    await wait_until(lambda: state_of(bot, int(match.group(1))), timeout=5)
    assert await state_of(bot, int(match.group(1))) == "succeeded"
    [silence] = await silences(http, target)
    assert silence["status"]["state"] == "active" and silence["createdBy"] == "UOPS1"
    assert sorted((m["name"], m["value"]) for m in silence["matchers"]) == [
        ("alertname", "High memory usage"), ("severity", "critical"), ("team", "billing"), ("zone", "eu-1")]
    assert asked == [("POST", f"{PREFIX}/api/v2/silences", 200)]

    await d.command("UOPS1", "/incident", "resolve 1 memory freed")
    [silence] = await silences(http, target)
    assert silence["status"]["state"] == "expired"
    assert asked[1:] == [("DELETE", f"{PREFIX}/api/v2/silence/{silence['id']}", 200)]

    # Without the service account token Grafana refuses: the proxy does too (what the bot would then be told).
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{url}/api/v2/silences") as response:
            assert response.status == 401
        async with client.get(url.replace(PREFIX, "") + "/api/v2/silences", headers={"Authorization": f"Bearer {SA_TOKEN}"}) as response:
            assert response.status == 404  # the unprefixed path is not Grafana's
