"""Bad input gets one plain sentence; nothing runs; the bot keeps serving."""
import pytest

from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request

BAD = [
    ("health", "bakend", "Unknown service 'bakend'"),
    ("health", "webb", "Did you mean 'web'?"),
    ("health", "x" * 5120, "at most 2,000"),
    ("health", "сервис", "Unknown service 'сервис'"),
    ("health", "🔥🔥🔥", "Unknown service '🔥🔥🔥'"),
    ("health", "<@U123ABC|ana>", "Unknown service 'U123ABC'"),
    ("health", "<#C0OPS|ops>", "Unknown service 'C0OPS'"),
    ("health", "web; rm -rf /", "Unknown option '-rf'"),
    ("health", "web;", "Unknown service 'web;'"),
    ("health", "$(id)", "Unknown service '$(id)'"),
    ("health", "`reboot`", "Unknown service '`reboot`'"),
    ("health", "web --privileged", "Unknown option '--privileged'"),
    ("health", "web\x00", "control characters"),
    ("health", "\u201cweb", "A quote is not closed"),
    ("health", "web | cat /etc/passwd", "Unknown service '|'"),
    ("help", "me please", "Unexpected 'me'"),
    ("restartt", "web", "There is no /restartt command"),
    ("", "", "There is no / command"),
    ("health", "a" * 300, "Unknown service 'aaaaaaaa"),
]


@pytest.mark.parametrize("command, text, fragment", BAD, ids=[f"{c}:{t[:12]!r}" for c, t, _ in BAD])
async def test_bad_input_is_one_sentence_and_the_bot_keeps_serving(make_bot, command, text, fragment):
    bot = await make_bot()
    reply = await bot.handle(Request("UOPS1", "C1", command, text, "console"))
    assert fragment in reply.text
    assert reply.outcome in (Outcome.usage_error, Outcome.denied)
    assert reply.ephemeral
    assert "\n" not in reply.text and len(reply.text) < 600
    assert "Traceback" not in reply.text
    # Nothing ran: no check run was recorded.
    from bot.check.service import recent_runs

    assert await recent_runs(bot.db) == []
    # And the process still serves.
    after = await bot.handle(Request("UOPS1", "C1", "health", "database", "console"))
    assert after.outcome is Outcome.ok


async def test_unknown_service_lists_the_known_ones(make_bot):
    bot = await make_bot()
    reply = await bot.handle(Request("UOPS1", "C1", "health", "databse", "console"))
    assert reply.text == "Unknown service 'databse'. Did you mean 'database'? Known: database, cache, web, broken."
    reply = await bot.handle(Request("UOPS1", "C1", "health", "zzz", "console"))
    assert reply.text == "Unknown service 'zzz'. Known: database, cache, web, broken."


async def test_commands_are_denied_by_default(make_bot):
    from bot.pipeline.commands import CommandSpec
    from bot.pipeline.parse import Grammar
    from bot.pipeline.reply import Reply

    ran = []

    async def handler(inv):
        ran.append(inv.request.user_id)
        return Reply(text="done")

    bot = await make_bot()
    spec = CommandSpec(name="guarded", summary="s", grammar=Grammar(usage="/guarded"), handler=handler, roles=("ops",))
    bot.pipeline.commands["guarded"] = spec
    denied = await bot.handle(Request("USTRANGER", "C1", "guarded", "", "console"))
    assert denied.outcome is Outcome.denied and "needs the ops role" in denied.text
    allowed = await bot.handle(Request("UOPS2", "C1", "guarded", "", "console"))
    assert allowed.text == "done" and ran == ["UOPS2"]
    help_for_stranger = await bot.handle(Request("USTRANGER", "C1", "help", "", "console"))
    assert "/guarded" not in help_for_stranger.text


async def test_a_crashing_handler_is_contained_and_audited(make_bot):
    from bot.audit.service import entries
    from bot.pipeline.commands import CommandSpec
    from bot.pipeline.parse import Grammar

    async def handler(inv):
        raise RuntimeError("boom with password=hunter2")

    bot = await make_bot()
    bot.pipeline.commands["crash"] = CommandSpec(name="crash", summary="s", grammar=Grammar(usage="/crash"), handler=handler, public=True)
    reply = await bot.handle(Request("UOPS1", "C1", "crash", "", "console"))
    assert reply.outcome is Outcome.error and "nothing was changed" in reply.text and "hunter2" not in reply.text
    [row] = await entries(bot.db)
    assert (row.command, row.outcome) == ("crash", "error")
    assert (await bot.handle(Request("UOPS1", "C1", "health", "database", "console"))).outcome is Outcome.ok
