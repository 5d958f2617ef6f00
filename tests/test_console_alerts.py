"""A console takes alert webhooks as `opsbot serve` does: a real `opsbot shell` process, an alert
POSTed to its loopback listener, the incident it opens listed in the same console. With the port
taken, the console says the webhooks are off in one sentence and opens anyway. Next to a Slack bot
(Slack tokens set, as in its container) a console never listens: the port and the alerts are the bot's."""
from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "console-alert-token-0123456789"
CONFIG = """
version: 1
services:
  host:
    checks:
      - kind: memory
        usage: {warn: 99.9}
roles:
  ops: {users: [UOPS1]}
alerts:
  integrations:
    demo:
      format: generic
      token_env: OPSBOT_TEST_CONSOLE_ALERT_TOKEN
      fields: {title: title, status: status, dedup_key: id, severity: severity, service: service}
      routes:
        - {match: {service: host}, service: host, auto_resolve: true}
        - {}
"""


async def start_shell(tmp_path: Path, port: int, *flags: str, **extra_env: str) -> asyncio.subprocess.Process:
    (tmp_path / "app.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REDIS_URL", "OPSBOT_", "PORT"))}
    env.update({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'opsbot.db'}", "PYTHONPATH": str(ROOT), "PORT": str(port),
                "OPSBOT_TEST_CONSOLE_ALERT_TOKEN": TOKEN, **extra_env})
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "shell", "--as", "UOPS1", *flags, "--config", str(tmp_path / "app.yaml"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env,
    )


async def said(process: asyncio.subprocess.Process, words: str) -> str:
    """The stderr line holding `words` (the console says where its webhooks are before it reads a line)."""
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        assert line, "the console ended before saying anything about its webhooks"
        if words in line:
            return line


async def finish(process: asyncio.subprocess.Process, lines: list[str]) -> str:
    out, _ = await asyncio.wait_for(process.communicate(("\n".join(lines) + "\n").encode()), 120)
    assert process.returncode == 0
    return out.decode()


async def test_an_alert_posted_to_the_console_opens_an_incident_it_lists(tmp_path):
    port = free_port()
    process = await start_shell(tmp_path, port)
    line = await said(process, "Alert webhooks")
    assert f"POST http://127.0.0.1:{port}/alerts/demo" in line
    alert = {"id": "host-memory", "title": "host memory is nearly full", "status": "firing", "severity": "critical", "service": "host"}
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{port}/alerts/demo"
        async with http.post(url, json=alert, headers={"Authorization": "Bearer wrong"}) as refused:
            assert refused.status == 401
        async with http.post(url, json=alert, headers={"Authorization": f"Bearer {TOKEN}"}) as accepted:
            assert accepted.status == 200 and (await accepted.json())["incidents"] == ["INC-1"]
    out = await finish(process, ["/incident list", "quit"])
    assert "INC-1" in out and "host memory is nearly full" in out


async def test_with_its_port_taken_the_console_opens_without_webhooks(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await start_shell(tmp_path, port)
        line = await said(process, "Alert webhooks are off")
        assert f"cannot listen on 127.0.0.1:{port}" in line and "Traceback" not in line
        out = await finish(process, ["/health", "quit"])
    assert "Health: OK" in out


async def test_a_console_next_to_a_slack_bot_takes_neither_its_port_nor_its_alerts(tmp_path):
    port = free_port()
    process = await start_shell(tmp_path, port, "--allow-impersonation",  # --as next to a Slack bot needs it
                                SLACK_BOT_TOKEN="xoxb-not-used-here", SLACK_SIGNING_SECRET="not-used-here")
    out, err = await asyncio.wait_for(process.communicate(b"/health\nquit\n"), 120)
    assert process.returncode == 0 and "Health: OK" in out.decode()
    assert "Alert webhooks" not in err.decode()
    with socket.socket() as probe:  # nothing listened there: the port is free
        probe.bind(("127.0.0.1", port))
