"""A real Prometheus and a real Alertmanager (Debian's binaries; scripts/test-env.sh installs them) paging
through two opsbot replicas on one PostgreSQL database.

A rule on a test exporter fires, then resolves. Alertmanager's receiver has two webhook_configs, one
per replica, so each replica gets every notification, as with a fan-out behind a load balancer; the
first answer to replica one is turned into a 503 on its way back (a proxy between them), so
Alertmanager retries what was already stored. Checked: one incident, one chain of pages (planned
once, the first page sent once to Slack's double), no page after Acknowledge, one resolution note
with a Resolve button, and the alert's entries in the postmortem's timeline.
"""
from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from conftest import BOT_TOKEN, free_port, wait_until
from slack_double import TEAM_ID
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select
from test_escalation import pg_template, pg_url, pings  # noqa: F401  (fixtures: a database of the test's own)

from bot.incident import service as incidents
from bot.incident.models import IncidentState
from bot.pipeline.request import Request
from bot.schedule.models import ScheduledJob
from bot.transport.server import build_web_app
from bot.transport.slack_channels import SlackWorkspaceMessenger

TOKEN = "am-token-5d1c9e"
CONFIG = """
version: 1
services:
  api:
    checks: [{kind: tcp, host: 127.0.0.1, port: 9}]
roles:
  ops: {users: [UOPS1, UONC1]}
slack:
  ops_channel: C0OPS
  incidents_channel: C0INCIDENTS
severities:
  P1:
    respond_within: 15m
    escalation: [{users: [UONC1], repeat_every: 10m, max_repeats: 2}]
  P2:
    respond_within: 1h
    escalation: [{users: [UONC1]}]
  P3:
    respond_within: 4h
    escalation: [{users: [UONC1]}]
alerts:
  integrations:
    alertmanager:
      format: alertmanager
      token_env: TEST_AM_TOKEN
      routes:
        - match: {service: api}
          service: api
          severities: {critical: P1, warning: P3}
        - {}
"""
RULES = {"groups": [{"name": "opsbot-test", "interval": "1s", "rules": [{
    "alert": "ApiDown", "expr": "test_api_up == 0", "for": "0s",
    "labels": {"severity": "critical", "service": "api"},
    # Hostile text from the sender: Slack's double fails the test if a <!channel> arrives unescaped.
    "annotations": {"summary": "api is down <!channel>", "description": "test_api_up is 0 on {{ $labels.instance }} <@U0EVIL>"},
}]}]}


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/test-env.sh (make test does).")
    return found


def _tail(path: Path) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-5:])


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def _start(args: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def test_alertmanager_opens_pages_and_resolves_one_incident_through_two_replicas(make_bot, pg_url, slack, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEST_AM_TOKEN", TOKEN)
    prometheus, alertmanager = _binary("prometheus"), _binary("prometheus-alertmanager")
    cleanup = []
    try:
        # Two replicas on one database, their pages to Slack's double.
        bots, ports = [], []
        for _ in range(2):
            bot = await make_bot(CONFIG, pg_url, api_url=slack.api_url)
            bot.messengers["slack"] = SlackWorkspaceMessenger(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))
            runner, port = await _serve(build_web_app(bot))
            cleanup.append(runner.cleanup)
            bot.scheduler.start()
            bots.append(bot)
            ports.append(port)

        # Between Alertmanager and the replicas: replica one's first answer becomes a 503.
        seen = {"r1": 0, "r2": 0}
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        cleanup.append(http.close)

        async def forward(request: web.Request) -> web.Response:
            which = request.match_info["replica"]
            seen[which] += 1
            body = await request.read()
            port = ports[0] if which == "r1" else ports[1]
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
            async with http.post(f"http://127.0.0.1:{port}/alerts/alertmanager", data=body, headers=headers) as answer:
                status, text = answer.status, await answer.text()
            if which == "r1" and seen[which] == 1:
                return web.json_response({"error": "lost on the way back"}, status=503)
            return web.Response(status=status, text=text, content_type="application/json")

        proxy = web.Application()
        proxy.router.add_post("/{replica}", forward)
        runner, proxy_port = await _serve(proxy)
        cleanup.append(runner.cleanup)

        # The exporter Prometheus scrapes: test_api_up, set by the test.
        values = {"test_api_up": 1}

        async def exposition(_: web.Request) -> web.Response:
            return web.Response(text="".join(f"{k} {v}\n" for k, v in values.items()), content_type="text/plain")

        exporter = web.Application()
        exporter.router.add_get("/metrics", exposition)
        runner, exporter_port = await _serve(exporter)
        cleanup.append(runner.cleanup)

        # Alertmanager: short waits, both replicas as webhook receivers with the bearer token.
        am_port = free_port()
        webhook = {"send_resolved": True, "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}}}
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "opsbot", "group_by": ["alertname", "service"], "group_wait": "1s", "group_interval": "2s",
                      "repeat_interval": "1h"},
            "receivers": [{"name": "opsbot", "webhook_configs": [
                {**webhook, "url": f"http://127.0.0.1:{proxy_port}/r1"}, {**webhook, "url": f"http://127.0.0.1:{proxy_port}/r2"}]}],
        }))
        am_log = tmp_path / "alertmanager.log"
        am = _start([alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am-data'}",
                     f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn"], am_log)
        cleanup.append(lambda: asyncio.to_thread(_stop, am))

        # Prometheus: scrapes and evaluates every second, sends to that Alertmanager at once.
        prom_port = free_port()
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(RULES))
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }))
        prom_log = tmp_path / "prometheus.log"
        prom = _start([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                       f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s", "--log.level=warn"], prom_log)
        cleanup.append(lambda: asyncio.to_thread(_stop, prom))

        async def scraped() -> bool:
            for process, log in ((am, am_log), (prom, prom_log)):
                if process.poll() is not None:
                    raise AssertionError(f"{Path(process.args[0]).name} exited with {process.returncode}: {_tail(log)}")
            try:
                async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "test_api_up"}) as response:
                    result = (await response.json())["data"]["result"]
                async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/alertmanagers") as response:
                    managers = (await response.json())["data"]["activeAlertmanagers"]
            except (aiohttp.ClientError, asyncio.TimeoutError, KeyError):
                return False
            return len(result) == 1 and len(managers) == 1

        await wait_until(scraped, timeout=60, interval=0.25)

        # The rule fires.
        values["test_api_up"] = 0
        one = bots[0]

        async def opened():
            return [i for i in await incidents.listing(one.db, include_resolved=True)]

        await wait_until(opened, timeout=60, interval=0.2)
        await wait_until(lambda: seen["r1"] >= 2 and seen["r2"] >= 1, timeout=60, interval=0.2)  # Alertmanager retried the 503
        [incident] = await opened()
        assert (incident.severity, incident.services, incident.title) == ("P1", ["api"], "api is down <!channel>")
        assert incident.dedup_key.startswith("alert:alertmanager:group:{}:{alertname=\"ApiDown\"")

        # One chain: the pages of one plan, the first sent once, to the incident's channel.
        async with one.db.sessions() as session:
            planned = await session.scalar(select(func.count()).select_from(ScheduledJob)
                                           .where(ScheduledJob.key.startswith(f"incident.ping:{incident.id}:")))
        assert planned == 3  # level 0 at 0, 10 and 20 minutes
        await wait_until(lambda: len(pings(slack, "C0INCIDENTS")) >= 1, timeout=30, interval=0.1)
        reply = await one.handle(Request("UONC1", "C0INCIDENTS", "incident", f"ack {incident.id}", "slack", team_id=TEAM_ID))
        assert "acknowledged" in reply.text, reply.text
        assert len(pings(slack, "C0INCIDENTS")) == 1
        entries = [e.kind for e in await incidents.timeline(one.db, incident.id)]
        assert entries.count("opened") == 1 and entries.count("alert") == 1

        # The rule resolves: one note, with a Resolve button, whichever replica heard it first.
        values["test_api_up"] = 1

        async def resolved_notes():
            return [e for e in await incidents.timeline(one.db, incident.id) if e.kind == "alerts_resolved"]

        await wait_until(resolved_notes, timeout=60, interval=0.2)
        await wait_until(lambda: seen["r1"] >= 3 and seen["r2"] >= 2, timeout=30, interval=0.2)  # both replicas heard it
        def notes():  # a job, run after Alertmanager was answered, by whichever scheduler claims it
            return [c for c in slack.calls_to("chat.postMessage") if c.ok and "its alert is resolved, says alertmanager" in str(c.args.get("text"))]

        await wait_until(notes, timeout=30, interval=0.1)
        await asyncio.sleep(1)  # both schedulers passed again: a second note, if there were one, would be in
        notes = notes()
        assert len(notes) == 1 and notes[0].args["channel"] == "C0INCIDENTS"
        assert '"action_id": "incident.resolve"' in str(notes[0].args.get("blocks")).replace("'", '"')
        assert len(await resolved_notes()) == 1
        assert len(await incidents.listing(one.db, include_resolved=True)) == 1
        assert (await incidents.get(one.db, incident.id)).state is IncidentState.acknowledged  # auto_resolve is off

        # Resolved by a person; the postmortem's timeline has the alert and its resolution.
        await one.handle(Request("UONC1", "C0INCIDENTS", "incident", f"resolve {incident.id} restarted api", "slack", team_id=TEAM_ID))
        postmortem = await one.handle(Request("UONC1", "C0INCIDENTS", "incident", f"postmortem {incident.id}", "slack", team_id=TEAM_ID))
        document = postmortem.file.content
        assert "alert" in document and "api is down" in document and "The alert is resolved (alertmanager)." in document, document[:800]
    finally:
        for step in reversed(cleanup):
            await step()
