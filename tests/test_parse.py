"""Argument parsing: Slack formatting normalised, grammar enforced, nothing shell-like survives."""
import pytest

from bot.pipeline.parse import Grammar, Option, UsageError, normalise_slack_text


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<@U123ABC|ana> web", "U123ABC web"),
        ("<@W9X>", "W9X"),
        ("<#C024BE7LR|ops>", "C024BE7LR"),
        ("<!subteam^S0LEADS|@leads>", "S0LEADS"),
        ("<!here>", "@here"),
        ("<http://example.com|example.com>", "http://example.com"),
        ("a &amp; b &lt;c&gt;", "a & b <c>"),
        ("\u201cweb server\u201d \u2018x\u2019", "\"web server\" 'x'"),
        ("  web\u00a0cache  ", "web cache"),
    ],
)
def test_normalise_slack_text(raw, expected):
    assert normalise_slack_text(raw) == expected


LOGS = Grammar(
    usage="/logs <service> [--tail N] [--count]",
    positionals=("service",),
    options=(Option("--tail", int), Option("--count")),
)


def test_grammar_parses_positionals_and_options():
    args = LOGS.parse("web --tail 50 --count")
    assert args.positionals == {"service": "web"}
    assert args.options == {"tail": 50, "count": True}
    assert LOGS.parse("web --tail=5").options == {"tail": 5}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "Missing <service>"),
        ("web extra", "Unexpected 'extra'"),
        ("web --privileged", "Unknown option '--privileged'"),
        ("web --tail", "--tail needs a value"),
        ("web --tail many", "--tail many"),
        ("web --count=yes", "--count takes no value"),
        ('web "unclosed', "A quote is not closed"),
        ("web\x00", "control characters"),
        ("x" * 5000, "at most 2,000"),
    ],
)
def test_grammar_refusals_are_one_sentence_with_usage(text, fragment):
    with pytest.raises(UsageError) as info:
        LOGS.parse(text)
    message = str(info.value)
    assert fragment in message
    assert message.endswith(LOGS.usage) and "\n" not in message


def test_shell_metacharacters_stay_literal_words():
    args = Grammar(usage="/health [service ...]", rest="services").parse("web; $(id) `id` | cat && x > /etc/passwd")
    assert args.positionals["services"] == ["web;", "$(id)", "`id`", "|", "cat", "&&", "x", ">", "/etc/passwd"]


def test_a_value_starting_with_a_dash_is_an_option_not_a_name():
    with pytest.raises(UsageError, match="Unknown option '-rf'"):
        Grammar(usage="/health [service ...]", rest="services").parse("web -rf")


def test_rest_limit():
    with pytest.raises(UsageError, match="At most 50 names"):
        Grammar(usage="/health [service ...]", rest="services").parse(" ".join(f"s{i}" for i in range(60)))


def test_a_guarded_subcommand_is_read_from_the_parsed_words_whatever_surrounds_it():
    from bot.pipeline.commands import ANY_ROLE, CommandSpec

    async def handler(inv):
        return None

    spec = CommandSpec("oncall", "x", Grammar("/oncall", rest="words"), handler, public=True, guarded=(("override", (ANY_ROLE,)),))
    for text, needs in (("override primary U1 until 8h", (ANY_ROLE,)), ('"Override" primary', (ANY_ROLE,)), ("primary", None),
                        ("", None), ('" "', None), ('"  override  "', (ANY_ROLE,))):
        assert spec.roles_for(spec.grammar.parse(text)) == needs, text
    closed = CommandSpec("restart", "x", Grammar("/restart", rest="words"), handler, roles=("ops",))
    assert closed.roles_for(closed.grammar.parse('" "')) == ("ops",)
    assert spec.title_for(spec.grammar.parse("override x")) == "/oncall override" and spec.title_for(spec.grammar.parse("x")) == "/oncall"
