"""Every command and button, through all three transports: Slack over HTTP, Slack over Socket Mode, the console.

Each test takes the `drive` fixture (tests/drivers.py) and so runs three times; what it
asserts is what the person sees (`Seen.words`, the same text on every transport) and what
changed: the audit log, check runs and action requests in the bot's database, the
containers on the real Docker Engine. Slack is the Web API double and the Socket Mode
double; every Socket Mode envelope must be acknowledged in time (checked at teardown).

Containers: /logs reads test_logs_audit's logs container, /restart restarts
test_action_transports' busybox httpd; both are this module's own instances (label
opsbot.test=1, removed after the module).
"""
from __future__ import annotations

import re

import pytest


from conftest import FLEET_CONFIG, REDIS_URL  # noqa: E402
from drivers import drive  # noqa: E402,F401 (fixture)
from test_action_transports import restart_config, service  # noqa: E402,F401 (module fixture: a busybox httpd container)
from test_logs_audit import ALL_LINES, ERROR_LINES, logs_config, logs_container  # noqa: E402,F401 (module fixture)

from action_helpers import request_rows, state_of, trail  # noqa: E402
from bot.audit import service as audit  # noqa: E402
from bot.check.service import recent_runs  # noqa: E402

UNKNOWN_BUTTON = "That button is not one opsbot knows (it may belong to an older version); nothing was done."
TWO_PERSON_RULE = "You requested this, so someone else has to approve it (two-person rule)."


# --------------------------------------------------------------------------- helpers


def in_channel(d, seen) -> None:
    """Shown to the channel (Slack in_channel); the console shows everything to the one typing."""
    assert seen.ephemeral is (None if d.name == "console" else False), seen


def one_sentence(d, seen, expected: str) -> str:
    """A refusal: only the caller sees it, and it is one line saying `expected`."""
    assert seen.ephemeral is (None if d.name == "console" else True), seen
    line = seen.one_line
    assert expected in line, line
    assert "Traceback" not in line and len(line) < 600
    return line


def where(d) -> tuple[str, str]:
    """(channel, transport) as the audit log records them for this driver."""
    return d.channel, "console" if d.name == "console" else "slack"


async def audit_rows(bot) -> list[tuple[str, str, str, str]]:
    """(user, command, arguments, outcome), oldest first."""
    rows = await audit.entries(bot.db, 1000)
    return [(r.user_id, r.command, r.arguments, r.outcome) for r in reversed(rows)]


async def request_restart(d, user: str = "UOPS1") -> tuple[int, str]:
    """/restart svc as `user`: the plan is posted with Approve, Deny and Withdraw; returns (request id, message ref)."""
    seen = await d.command(user, "/restart", "svc")
    match = re.search(r"Request #(\d+) is posted and waits for approval\.", seen.words)
    assert match, seen.words
    request_id = int(match.group(1))
    if d.name != "console":
        assert seen.one_line == f"Request #{request_id} is posted and waits for approval."
        assert seen.ephemeral
    plan = d.messages()[-1]
    words = plan.now.words
    assert f"/restart svc: request #{request_id}" in words
    assert f"Requested by @{user}" in words and "needs 1 approval from ops" in words
    assert "Status: Waiting for approval" in words
    assert plan.now.buttons == [(action, str(request_id)) for action in ("action.approve", "action.deny", "action.withdraw")]
    [row] = [r for r in await request_rows(d.bot, "svc") if r.id == request_id]
    assert (row.state, row.requested_by, row.message_ref) == ("pending", user, plan.ref)
    return request_id, plan.ref


def plan_message(d, ref: str):
    """The message the bot posted as `ref` (its message_ref), with every edit so far."""
    [message] = [m for m in d.messages() if m.ref == ref]
    return message


# --------------------------------------------------------------------------- /health, /help, unknown commands, usage errors


async def test_health_of_all_and_of_one_service(drive):
    d = await drive(FLEET_CONFIG)

    seen = await d.command("UOPS1", "/health")
    in_channel(d, seen)
    assert "Health: CRITICAL (1 critical, 3 ok)" in seen.words
    assert re.search(r"CRITICAL +broken \(\d+ ms\) http: HTTP 500, expected 200", seen.words), seen.words
    for name in ("database", "cache", "web"):
        assert re.search(rf"OK +{name} \(\d+ ms\)", seen.words), (name, seen.words)

    seen = await d.command("UOPS1", "/health", "database")
    in_channel(d, seen)
    assert "Health: OK (1 ok)" in seen.words
    assert "broken" not in seen.words and "web" not in seen.words

    runs = await recent_runs(d.bot.db)
    channel, _ = where(d)
    assert [(r.status, r.requested_by, r.channel) for r in runs] == [("ok", "UOPS1", channel), ("critical", "UOPS1", channel)]
    assert {result["service"] for result in runs[0].results} == {"database"}

    seen = await d.command("UOPS1", "/health", "databse")
    one_sentence(d, seen, "Unknown service 'databse'. Did you mean 'database'? Known: database, cache, web, broken.")
    assert len(await recent_runs(d.bot.db)) == 2  # nothing ran


async def test_help_lists_what_the_caller_may_run(drive):
    d = await drive(FLEET_CONFIG)

    seen = await d.command("UOPS1", "/help")
    assert seen.ephemeral is (None if d.name == "console" else True)
    assert "Commands you can run" in seen.words and "Your roles: ops" in seen.words
    for usage in ("/health [service ...]", "/help", "/logs <service>", "/audit [service]", "/restart"):
        assert usage in seen.words, usage

    seen = await d.command("UNOBODY", "/help")
    assert "Your roles: none" in seen.words
    assert "/health [service ...]" in seen.words
    assert "/logs" not in seen.words and "/audit" not in seen.words and "/restart" not in seen.words


async def test_unknown_command_gets_one_sentence(drive):
    d = await drive(FLEET_CONFIG)
    seen = await d.command("UOPS1", "/nosuch", "web")
    one_sentence(d, seen, "There is no /nosuch command. Commands: /incident, /health, /restart, /deploy, /rollback, /logs, /run, /job, /db, /backup, /restore, /cache, /audit, /oncall, /schedule, /maintenance, /help; /help explains them.")
    assert await audit_rows(d.bot) == [("UOPS1", "nosuch", "web", "usage_error")]


# Over Slack such a name is not a slash command at all (refused as malformed: tests/test_edge.py).
@pytest.mark.parametrize("drive", ["console"], indirect=True)
async def test_unknown_command_with_a_nul_in_its_name_is_on_record_on_postgres(drive, pg_database_url):
    d = await drive(FLEET_CONFIG, pg_database_url)
    before = await audit.entries(d.bot.db, 1)
    seen = await d.command("UOPS1", "/no\x00such", "web")
    rows = await audit.entries(d.bot.db, 10)
    new = [(r.user_id, r.command, r.outcome) for r in rows if not before or r.id > before[0].id]
    assert new == [("UOPS1", "no\\x00such", "usage_error")], (
        f"the refused command was not written to the audit log on PostgreSQL (rows added: {new}); "
        f"the user saw: {seen.words!r}"
    )
    assert "database is unreachable" not in seen.words, "the database is reachable: the reply blames it wrongly"
    one_sentence(d, seen, "There is no /no")


USAGE_ERRORS = [
    ("/health", "web --privileged", "Unknown option '--privileged'. Usage: /health [service ...]"),
    ("/health", "'web", "A quote is not closed. Usage: /health [service ...]"),
    ("/health", "web\x00", "The arguments contain control characters. Usage: /health [service ...]"),
    ("/health", "web\x1b[2J", "The arguments contain control characters."),
    ("/help", "me please", "Unexpected 'me'"),
]


async def test_usage_errors_get_one_ephemeral_sentence_and_run_nothing(drive):
    d = await drive(FLEET_CONFIG)
    for command, text, expected in USAGE_ERRORS:
        seen = await d.command("UOPS1", command, text)
        one_sentence(d, seen, expected)
    assert await recent_runs(d.bot.db) == []
    rows = await audit_rows(d.bot)
    assert [(user, command, outcome) for user, command, _, outcome in rows] == [
        ("UOPS1", command[1:], "usage_error") for command, _, _ in USAGE_ERRORS
    ]
    # And the bot keeps serving.
    assert "Health: OK (1 ok)" in (await d.command("UOPS1", "/health", "database")).words


# --------------------------------------------------------------------------- /logs


async def test_logs_tail_grep_and_count(drive, logs_container):
    d = await drive(logs_config(logs_container))

    seen = await d.command("UOPS1", "/logs", "app --tail 5")
    in_channel(d, seen)
    assert "app logs: 5 lines, last 5 lines" in seen.words
    assert "\n".join(ALL_LINES[-5:]) in seen.words
    assert ALL_LINES[-6] not in seen.words

    seen = await d.command("UOPS1", "/logs", "app --grep error")
    in_channel(d, seen)
    assert "app logs: 3 lines matching 'error', last 100 lines" in seen.words
    assert "ERROR disk full on /var/lib/app" in seen.words
    assert "ERROR connection refused to postgres://app:[REDACTED]@db/app" in seen.words
    assert "warn: an error in lowercase" in seen.words
    assert "s3cr3t" not in seen.plain and "line 300" not in seen.words

    seen = await d.command("UOPS1", "/logs", "app --since 1h --grep error --count")
    in_channel(d, seen)
    assert f"{len(ERROR_LINES)} lines matching 'error' in the last 1h of app ({logs_container})." in seen.words

    seen = await d.command("UOPS1", "/logs", "app --tail abc")
    one_sentence(d, seen, "--tail abc: must be a whole number of lines")

    channel, transport = where(d)
    rows = await audit.entries(d.bot.db, 100)
    assert {(r.channel, r.transport) for r in rows} == {(channel, transport)}
    assert [(r.target, r.arguments, r.outcome) for r in reversed(rows)] == [
        ("app", "app --tail 5", "requested"),
        ("app", "app --grep error", "requested"),
        ("app", "app --since 1h --grep error --count", "requested"),
        ("", "app --tail abc", "usage_error"),  # refused while parsing: no service was established
    ]


async def test_logs_refused_without_the_role(drive, logs_container):
    d = await drive(logs_config(logs_container))

    seen = await d.command("UNOBODY", "/logs", "app --tail 1")
    one_sentence(d, seen, "You are not allowed to run /logs: it needs a role in app.yaml.")
    seen = await d.command("ULEAD1", "/logs", "app --tail 1")
    one_sentence(d, seen, "You cannot read the logs of app: it needs the ops role in app.yaml.")
    assert "done" not in seen.words  # the last log line

    # The owners' role can.
    seen = await d.command("UOPS2", "/logs", "app --tail 1")
    assert "app logs: 1 lines, last 1 lines" in seen.words and "\ndone" in seen.words
    assert [row for row in await audit_rows(d.bot) if row[3] != "requested" or row[0] != "UOPS2"] == [
        ("UNOBODY", "logs", "app --tail 1", "denied"),
        ("ULEAD1", "logs", "app --tail 1", "requested"),
        ("ULEAD1", "logs", "app --tail 1", "denied"),
    ]


# --------------------------------------------------------------------------- /audit


async def test_audit_shows_what_was_just_done(drive, logs_container):
    d = await drive(logs_config(logs_container))
    await d.command("UOPS1", "/logs", "app --tail 1")
    await d.command("ULEAD1", "/logs", "app --tail 2")  # refused: app needs ops

    seen = await d.command("ULEAD1", "/audit", "app")  # any role may read the trail
    assert seen.ephemeral is (None if d.name == "console" else True)  # only for the caller
    assert "Audit: app, last 1d, 3 entries" in seen.words
    lines = [line for line in seen.words.splitlines() if re.match(r"^\d\d-\d\d \d\d:\d\d:\d\d ", line)]
    assert [re.sub(r"^\S+ \S+ ", "", line) for line in lines] == [
        "ULEAD1      /logs app --tail 2 -> denied (You cannot read the logs of app: it needs the ops role in app.yaml.)",
        "ULEAD1      /logs app --tail 2 -> requested",
        "UOPS1       /logs app --tail 1 -> requested",
    ]

    seen = await d.command("UNOBODY", "/audit", "app")
    one_sentence(d, seen, "You are not allowed to run /audit: it needs a role in app.yaml.")
    assert "UOPS1" not in seen.words and "ULEAD1" not in seen.words
    rows = await audit_rows(d.bot)
    assert rows[-2:] == [("ULEAD1", "audit", "app", "requested"), ("UNOBODY", "audit", "app", "denied")]
    channel, transport = where(d)
    assert {(r.channel, r.transport) for r in await audit.entries(d.bot.db, 100)} == {(channel, transport)}


# --------------------------------------------------------------------------- /restart: two-person rule, buttons


async def test_restart_needs_a_second_person_then_runs_once(drive, service):
    before = service.started_at()
    d = await drive(restart_config(service))
    request_id, ref = await request_restart(d)

    # The requester's own approval is refused; nothing changes.
    seen = await d.click("UOPS1", "action.approve", str(request_id))
    one_sentence(d, seen, TWO_PERSON_RULE)
    await d.settle()
    assert await state_of(d.bot, request_id) == "pending"
    assert plan_message(d, ref).edits == []
    assert service.started_at() == before

    # A second ops member approves: it runs, and the plan message is edited in place.
    seen = await d.click("UOPS2", "action.approve", str(request_id))
    assert f"Request #{request_id} succeeded." in seen.words
    if d.name != "console":
        assert seen.one_line == f"Request #{request_id} succeeded." and seen.ephemeral
    message = plan_message(d, ref)
    assert len(message.edits) == 2, [v.words for v in message.edits]
    running, done = message.edits
    assert "Status: Running · approved by @UOPS2" in running.words
    assert "Status: Succeeded · approved by @UOPS2" in done.words
    assert "svc: restarted in" in done.words and "(2 checks pass)" in done.words
    assert running.buttons == [] and done.buttons == []  # decided: no buttons any more
    assert len(d.messages()) == 1  # edited, never posted again
    if d.name != "console":
        stored = d.slack.messages[tuple(ref.split(":", 1))]
        assert "Succeeded" in stored["text"] and "edited" in stored

    assert await state_of(d.bot, request_id) == "succeeded"
    restarted_at = service.started_at()
    assert restarted_at != before and service.running() and service.healthy()
    assert await trail(d.bot, "svc", request_id, refusals=True) == ["requested", "approval refused", "approved", "running", "succeeded"]

    # A second click after the decision: already decided, nothing runs again.
    seen = await d.click("UOPS3", "action.approve", str(request_id))
    one_sentence(d, seen, f"Request #{request_id} was already decided by @UOPS2: it is succeeded.")
    await d.settle()
    assert len(plan_message(d, ref).edits) == 2
    assert service.started_at() == restarted_at
    assert (await trail(d.bot, "svc", request_id, refusals=True))[-1] == "approve refused"
    channel, transport = where(d)
    rows = await audit.entries(d.bot.db, 100, target="svc")
    assert {(r.channel, r.transport) for r in rows} == {(channel, transport)}


async def test_restart_denied(drive, service):
    before = service.started_at()
    d = await drive(restart_config(service))
    request_id, ref = await request_restart(d)

    seen = await d.click("UVIEW1", "action.deny", str(request_id))
    one_sentence(d, seen, "You cannot deny this request: only its requester or an approver can.")
    seen = await d.click("UVIEW1", "action.approve", str(request_id))
    one_sentence(d, seen, "You cannot approve this: approving needs the ops role.")
    await d.settle()
    assert plan_message(d, ref).edits == [] and await state_of(d.bot, request_id) == "pending"

    seen = await d.click("UOPS2", "action.deny", str(request_id))
    assert f"You denied request #{request_id}; nothing was run." in seen.words
    [denied] = plan_message(d, ref).edits
    assert "Status: Denied by @UOPS2 at" in denied.words and denied.buttons == []

    seen = await d.click("UOPS3", "action.approve", str(request_id))
    one_sentence(d, seen, f"Request #{request_id} was already decided by @UOPS2: it is denied.")
    seen = await d.click("UOPS2", "action.deny", str(request_id))
    one_sentence(d, seen, f"Request #{request_id} was already decided by @UOPS2: it is denied.")
    await d.settle()
    assert len(plan_message(d, ref).edits) == 1
    assert await state_of(d.bot, request_id) == "denied"
    assert service.started_at() == before
    assert await trail(d.bot, "svc", request_id) == ["requested", "denied"]

    # /audit shows the same trail, with the refused clicks and their sentences.
    seen = await d.command("UOPS1", "/audit", "svc")
    lines = [re.sub(r"^\S+ \S+ ", "", line) for line in seen.words.splitlines() if re.match(r"^\d\d-\d\d \d\d:", line)]
    assert [re.sub(r" \(.*", "", line) for line in lines] == [
        f"UOPS2       /restart #{request_id} svc -> deny refused",
        f"UOPS3       /restart #{request_id} svc -> approve refused",
        f"UOPS2       /restart #{request_id} svc -> denied",
        f"UVIEW1      /restart #{request_id} svc -> approval refused",
        f"UVIEW1      /restart #{request_id} svc -> denial refused",
        f"UOPS1       /restart #{request_id} svc -> requested",
        "UOPS1       /restart svc -> requested",
    ]
    assert "(You cannot approve this: approving needs the ops role.)" in lines[3]

    # The deny released the lock: the service can be requested again.
    second, _ = await request_restart(d)
    assert second == request_id + 1
    seen = await d.click("UOPS1", "action.deny", str(second))  # requesters may withdraw their own
    assert f"You denied request #{second}; nothing was run." in seen.words


async def test_restart_refused_without_the_role_or_for_an_unknown_service(drive, service):
    d = await drive(restart_config(service))
    seen = await d.command("UNOBODY", "/restart", "svc")
    one_sentence(d, seen, "You are not allowed to run /restart: it needs a role in app.yaml.")
    seen = await d.command("UVIEW1", "/restart", "svc")
    one_sentence(d, seen, "You cannot restart svc: it needs the ops role in app.yaml.")
    seen = await d.command("UOPS1", "/restart", "svcc")
    one_sentence(d, seen, "Unknown service 'svcc'. Did you mean 'svc'?")
    await d.settle()
    assert d.messages() == [] and await request_rows(d.bot) == []
    assert [(user, outcome) for user, _, _, outcome in await audit_rows(d.bot)] == [
        ("UNOBODY", "denied"),
        ("UVIEW1", "requested"),
        ("UVIEW1", "denied"),
        ("UOPS1", "requested"),
        ("UOPS1", "usage_error"),
    ]


async def test_buttons_that_are_not_this_requests_are_refused(drive, service):
    before = service.started_at()
    d = await drive(restart_config(service))
    request_id, ref = await request_restart(d)
    audit_before = await audit_rows(d.bot)

    if d.name == "console":
        # The console has one channel and only its own numbered buttons: a number with no button.
        seen = await d.type("UOPS2", "99")
        one_sentence(d, seen, "There is no button 99; the numbers are shown in brackets next to each button.")
        assert await audit_rows(d.bot) == audit_before
    else:
        # The request's own button, pressed from another channel.
        seen = await d.click("UOPS2", "action.approve", str(request_id), channel="C2")
        one_sentence(d, seen, f"That button does not belong to request #{request_id} in this channel; nothing was done.")
        [refused] = await audit.entries(d.bot.db, 1)
        assert (refused.user_id, refused.outcome, refused.channel) == ("UOPS2", "approve refused", "C2")
        # A button opsbot never made (another app's, an older version's): answered, and on record.
        seen = await d.click("UOPS2", "incident.nope", "7")
        one_sentence(d, seen, UNKNOWN_BUTTON)
        assert await audit_rows(d.bot) == audit_before + [
            ("UOPS2", "restart", f"#{request_id} svc", "approve refused"),
            ("UOPS2", "incident.nope", "7", "unknown"),
        ]

    await d.settle()
    assert await state_of(d.bot, request_id) == "pending"
    assert plan_message(d, ref).edits == []
    assert service.started_at() == before
    # The request itself still works from where it was made.
    seen = await d.click("UOPS1", "action.deny", str(request_id))
    assert f"You denied request #{request_id}; nothing was run." in seen.words


# --------------------------------------------------------------------------- Slack deliveries: retries, Socket Mode reconnects


@pytest.mark.parametrize("drive", ["http", "socket"], indirect=True)
async def test_a_retried_delivery_runs_once(drive, service):
    d = await drive(restart_config(service), redis_url=REDIS_URL)  # deliveries are claimed in the real Redis
    fields = d.fields("UOPS1", "/restart", "svc")
    await d.send_command(fields)
    await d.send_command(fields, retry_attempt=1)  # same trigger_id: Slack's retry of the same command
    await d.settle()

    [answer] = d.slack.response_posts(fields["response_url"])
    assert re.fullmatch(r"Request #\d+ is posted and waits for approval\.", answer.text), answer.text
    assert await d.bot.coordinator.redis.exists(f"opsbot:claim:trigger:{fields['trigger_id']}")
    [plan] = d.messages()
    [request] = await request_rows(d.bot, "svc")
    assert [row for row in await audit_rows(d.bot) if row[1] == "restart"] == [
        ("UOPS1", "restart", "svc", "requested"),
        ("UOPS1", "restart", f"#{request.id} svc", "requested"),
    ]

    # A button press delivered twice is one press: the retry would otherwise be "already decided".
    press = d.press("UOPS2", "action.deny", str(request.id))
    await d.send_click(press)
    await d.send_click(press, retry_attempt=1)
    await d.settle()
    [answer] = d.slack.response_posts(press["response_url"])
    assert answer.text == f"You denied request #{request.id}; nothing was run."
    assert await trail(d.bot, "svc", request.id, refusals=True) == ["requested", "denied"]
    assert len(plan_message(d, plan.ref).edits) == 1

    if d.name == "socket":
        envelopes = d.slack.socket.envelopes
        assert [(e.type, e.retry_attempt) for e in envelopes] == [
            ("slash_commands", 0),
            ("slash_commands", 1),
            ("interactive", 0),
            ("interactive", 1),
        ]
        assert all(e.ack is not None for e in envelopes)  # the retries are acknowledged too


@pytest.mark.parametrize("drive", ["socket"], indirect=True)
async def test_socket_mode_reconnects_after_a_disconnect_mid_session(drive, service):
    before = service.started_at()
    d = await drive(restart_config(service))
    socket = d.slack.socket
    request_id, ref = await request_restart(d)

    # Slack asks for a refresh: slack-sdk opens a new connection and drops the old one itself.
    first, opened = socket.live[-1], len(socket.connections)
    await socket.disconnect("refresh_requested")
    second = await socket.wait_connected(count=opened + 1)
    assert not first.live and first.closed_by == "client"

    # The request made before the disconnect is approved over the new connection; right after the
    # ack, with the restart still to run, the connection is refreshed again: the work goes on and
    # answers through the response_url, which does not depend on the socket.
    press = d.press("UOPS2", "action.approve", str(request_id))
    await d.send_click(press)
    assert socket.envelopes[-1].connection_id == second.id
    await socket.disconnect("refresh_requested")
    third = await socket.wait_connected(count=opened + 2)
    assert not second.live

    seen = await d.answer(press["response_url"], "action.approve", 30)
    assert seen.one_line == f"Request #{request_id} succeeded."
    assert "Status: Succeeded · approved by @UOPS2" in plan_message(d, ref).now.words
    assert await state_of(d.bot, request_id) == "succeeded"
    assert service.started_at() != before and service.healthy()

    # And commands keep working on the newest connection.
    seen = await d.command("UOPS1", "/help")
    assert "Your roles: ops" in seen.words
    assert socket.envelopes[-1].connection_id == third.id
