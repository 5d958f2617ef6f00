"""/maintenance over signed Slack HTTP requests, Socket Mode and the console: start, list, end,
/health marking the service in maintenance instead of red, and the refusals of a window outside
its opener's scope or past maintenance.max_duration."""
from __future__ import annotations

from drivers import drive  # noqa: F401 (fixture)

CONFIG = """
version: 1
services:
  backend:
    owners: [ops]
    checks:
      - {kind: tcp, host: 127.0.0.1, port: 9, timeout: 2s}
roles:
  ops: {users: [UOPS1, UOPS2]}
  dev: {users: [UDEV1]}
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


async def test_a_window_outside_its_openers_scope_or_too_long_is_one_sentence_and_nothing_stored(drive):
    d = await drive(CONFIG)
    not_owner = await d.command("UDEV1", "/maintenance", 'start 1h backend "replacing the disk"')
    assert not_owner.one_line == "You cannot open a window on backend: it needs the ops role (its owners in app.yaml)."
    every = await d.command("UOPS1", "/maintenance", 'start 1h "network switch swap"')
    assert every.one_line == ("You cannot open a window on every service: app.yaml declares no role for it "
                              "(maintenance.all_services_roles); name the services instead.")
    too_long = await d.command("UOPS1", "/maintenance", 'start 5h backend "replacing the disk"')
    assert too_long.one_line == "A maintenance window can last at most 4h (maintenance.max_duration); give a shorter one."
    listed = await d.command("UOPS1", "/maintenance", "list")
    assert "No maintenance window is active or scheduled." in listed.words

    started = await d.command("UOPS1", "/maintenance", 'start 2h backend "replacing the disk"')
    assert "#1" in started.words
    ended = await d.command("UDEV1", "/maintenance", "end 1")
    assert ended.one_line == "You cannot end a window on backend: it needs the ops role (its owners in app.yaml)."
