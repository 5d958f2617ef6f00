"""/maintenance over signed Slack HTTP requests, Socket Mode and the console: start, list, end,
and /health marking the service in maintenance instead of red."""
from __future__ import annotations

from drivers import drive  # noqa: F401 (fixture)

CONFIG = """
version: 1
services:
  backend:
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 9, timeout: 2s}
roles:
  ops: {users: [UOPS1, UOPS2]}
slack:
  ops_channel: C0OPS1
"""


async def test_a_window_is_started_listed_shown_in_health_and_ended(drive):
    d = await drive(CONFIG)
    before = await d.command("UOPS1", "/health", "backend")
    assert "CRITICAL" in before.words

    started = await d.command("UOPS1", "/maintenance", 'start 1h backend "replacing the disk"')
    assert "#1" in started.words and "backend" in started.words, started.words
    listed = await d.command("UOPS2", "/maintenance", "list")
    assert "#1" in listed.words and "replacing the disk" in listed.words
    during = await d.command("UOPS1", "/health", "backend")
    assert "MAINT" in during.words and "CRITICAL" not in during.words

    refused = await d.command("UOPS1", "/maintenance", 'start 2h nosuch "x"')
    assert "nosuch" in refused.words and "#2" not in refused.words
    backwards = await d.command("UOPS1", "/maintenance", 'schedule 2020-01-01T10:00 1h backend "in the past"')
    assert "#2" not in backwards.words

    ended = await d.command("UOPS1", "/maintenance", "end")
    assert "#1" in ended.words
    after = await d.command("UOPS1", "/health", "backend")
    assert "CRITICAL" in after.words
