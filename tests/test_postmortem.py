"""The post-incident review (runbook 003's template), rendered from objects in memory: no database."""
from datetime import datetime, timedelta, timezone
from importlib import resources

import pytest

from bot.config.incident_models import Calendar
from bot.config.models import AppConfig
from bot.incident.models import FollowUp, Incident, IncidentState, TimelineEntry
from bot.incident.postmortem import MAX_TEMPLATE_BYTES, human, load_template, render_postmortem

BERLIN = AppConfig(calendar=Calendar(timezone="Europe/Berlin"))
# Europe/Berlin leaves CET for CEST at 2026-03-29 01:00 UTC (02:00 local becomes 03:00).
DST_DAY = datetime(2026, 3, 29, tzinfo=timezone.utc)
ANA, BOB, CARA = "U0ANA0001", "U0BOB0001", "U0CARA001"


def at(hours: float) -> datetime:
    return DST_DAY + timedelta(hours=hours)


def entry(hours: float, kind: str, user: str = "", text: str = "", **data) -> TimelineEntry:
    return TimelineEntry(incident_id=42, at=at(hours), kind=kind, user_id=user, text=text, data=data)


def incident(**overrides) -> Incident:
    values = dict(
        id=42, title="Database connection failure", severity="P1", state=IncidentState.resolved, services=["db", "api"],
        description="", opened_by=ANA, opened_at=at(0.5), acknowledged_at=at(0.5 + 7 / 60), resolved_at=at(2 + 50 / 60),
        summary="Connection pool exhausted by idle-in-transaction sessions", transport="slack", team="",
    )
    values.update(overrides)
    return Incident(**values)


def timeline() -> list[TimelineEntry]:
    return [
        entry(0.5, "opened", ANA, "Database connection failure", severity="P1", services=["db", "api"]),
        entry(0.5 + 2 / 60, "ping", "", "paged on-call (primary)", level=0),
        entry(0.5 + 7 / 60, "acknowledged", BOB),
        entry(0.75, "check", BOB, summary="db: connections 96% of max_connections", outcome="critical"),
        entry(1.25, "note", BOB, "pool full of idle in transaction", milestone="root_cause"),
        entry(1.5, "action", BOB, action="restart", service="db", requester=BOB, approvers=[ANA], plan_hash="9f2c4e1a7b3d5f60aa",
              outcome="succeeded", verification="all 2 checks passed"),
        entry(1.6, "update", BOB, "db restarted, errors dropping", milestone="fix_deployed"),
        entry(2 + 50 / 60, "resolved", ANA, "Connection pool exhausted by idle-in-transaction sessions"),
    ]


def render(inc: Incident | None = None, entries: list[TimelineEntry] | None = None, followups: list[FollowUp] | None = None,
           **kwargs) -> str:
    return render_postmortem(inc or incident(), timeline() if entries is None else entries, followups or [], config=BERLIN,
                             now=kwargs.pop("now", at(3)), **kwargs)


def section(text: str, heading: str) -> str:
    """The text from `**heading:**` to the next bold section heading."""
    start = text.index(f"**{heading}:**") + len(heading) + 5
    return text[start:].split("\n**")[0]


def test_sections_follow_runbook_003_in_order():
    text = render()
    headings = ["Incident", "Date", "Duration", "Severity", "Timeline", "Time to acknowledge", "Time to resolve",
                "Root Cause", "Impact", "Resolution", "Action Items", "Lessons Learned"]
    positions = [text.index(f"**{h}:**") for h in headings]
    assert positions == sorted(positions)
    assert text.startswith("**Incident:** INC-42 - Database connection failure  \n")
    assert "**Date:** 2026-03-29  \n" in text
    assert "**Severity:** P1 (High)\n" in text
    assert "**Lessons Learned:** _to be written_" in text


def test_a_utc_calendar_names_its_zone_once():
    text = render_postmortem(incident(), timeline(), [], config=AppConfig(calendar=Calendar(timezone="UTC")), now=at(3))
    assert "**Timeline:** (times in UTC)\n" in text


def test_milestones_and_times_cross_daylight_saving():
    text = render()
    assert "**Timeline:** (times in CET, Europe/Berlin)" in text
    milestones = section(text, "Timeline").split("Full timeline from the bot:")[0]
    assert "- 01:30 - Issue detected\n" in milestones  # 00:30 UTC is CET (+1)
    assert "- 01:32 - Team notified\n" in milestones  # the first ping
    assert "- 03:15 CEST - Root cause identified\n" in milestones  # 01:15 UTC is CEST (+2): the zone is said again
    assert "- 03:36 CEST - Fix deployed\n" in milestones
    assert "- 04:50 CEST - Incident resolved\n" in milestones
    assert "**Duration:** 2h 20m (01:30 CET → 04:50 CEST)" in text


def test_full_timeline_lists_every_entry_with_mentions():
    full = section(render(), "Timeline").split("Full timeline from the bot:")[1]
    lines = [line for line in full.splitlines() if line.startswith("- ")]
    assert len(lines) == len(timeline())
    assert lines[0] == f"- 01:30 <@{ANA}> opened: Database connection failure"
    assert lines[1] == "- 01:32 opsbot ping: paged on-call (primary)"
    assert lines[2] == f"- 01:37 <@{BOB}> acknowledged"
    assert lines[3] == f"- 01:45 <@{BOB}> check: critical - db: connections 96% of max_connections"
    assert lines[5] == f"- 03:30 CEST <@{BOB}> action: restart db succeeded"


def test_durations_and_resolution():
    text = render()
    assert "**Time to acknowledge:** 7m  \n" in text
    assert "**Time to resolve:** 2h 20m\n" in text
    assert "**Root Cause:** _to be written_\n" in text  # /incident rootcause was not used: the summary is the resolution's
    resolution = section(text, "Resolution")
    assert (f"- 03:30 CEST restart of db, requested by <@{BOB}>, approved by <@{ANA}>: succeeded; "
            "verification: all 2 checks passed (plan 9f2c4e1a7b3d)") in resolution
    assert resolution.rstrip().endswith("Connection pool exhausted by idle-in-transaction sessions")
    impact = section(text, "Impact")
    assert "- Users affected: _to be filled in_" in impact
    assert "- Services impacted: db, api" in impact
    assert "- Data loss: _to be filled in_" in impact


def test_root_cause_is_the_newest_rootcause_entry_and_the_resolve_summary_is_the_resolution():
    entries = timeline() + [entry(1.0, "rootcause", BOB, "idle-in-transaction sessions <!here> hold the pool", milestone="root_cause"),
                            entry(2.5, "rootcause", CARA, "a deploy leaked connections\n**Action Items:** forged", milestone="root_cause")]
    text = render(incident(summary="rolled back"), entries)
    root_cause = section(text, "Root Cause")
    assert root_cause == " a deploy leaked connections **Action Items:** forged\n"  # the newest, on one line, inert
    assert "rolled back" not in root_cause and section(text, "Resolution").rstrip().endswith("rolled back")
    assert text.count("\n**Action Items:**") == 1 and "<!here>" not in text
    assert "- 03:00 CEST - Root cause identified\n" in text  # the earliest mark: the first rootcause entry (01:00 UTC)


@pytest.mark.parametrize("seconds, expected", [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h 0m"),
                                               (8100, "2h 15m"), (90061, "1d 1h 1m"), (-5, "0s")])
def test_human_durations(seconds, expected):
    assert human(seconds) == expected


def test_ongoing_incident_without_acknowledgement_or_milestones():
    inc = incident(state=IncidentState.open, acknowledged_at=None, resolved_at=None, summary="")
    entries = [entry(0.5, "opened", ANA, "Database connection failure")]
    text = render(inc, entries, now=at(3 + 45 / 60))
    assert "**Duration:** ongoing (3h 15m so far)" in text
    assert "**Time to acknowledge:** not acknowledged" in text
    assert "**Time to resolve:** not resolved" in text
    assert "- _not recorded_ - Team notified" in text
    assert "- _not recorded_ - Root cause identified" in text
    assert "- _not recorded_ - Fix deployed" in text
    assert "- _ongoing_ - Incident resolved" in text
    assert "**Root Cause:** _to be written_" in text
    assert "**Resolution:** _to be written_" in text


def test_reopened_incident_counts_as_ongoing():
    text = render(incident(state=IncidentState.open), now=at(5))
    assert "**Duration:** ongoing (4h 30m so far)" in text


def test_action_items_are_numbered_with_owners_or_the_runbook_placeholders():
    followups = [FollowUp(text="Alert on idle in transaction > 5 min", owner=CARA, created_by=ANA, created_at=at(3)),
                 FollowUp(text="Document the pool limits", owner=None, created_by=ANA, created_at=at(3))]
    items = section(render(followups=followups), "Action Items")
    assert f"1. Alert on idle in transaction &gt; 5 min (owner: <@{CARA}>)" in items
    assert "2. Document the pool limits\n" in items
    placeholders = section(render(), "Action Items")
    assert "1. [Preventive measure 1]\n2. [Preventive measure 2]\n3. [Documentation update]" in placeholders


def test_user_text_is_made_inert_but_bot_mentions_stay_live():
    inc = incident(title="db down <!channel>", summary="blame <@U0EVE0001> & <https://evil.example|click>")
    entries = timeline() + [entry(2.9, "note", BOB, "wake <!here> now\n**Action Items:** fake")]
    followups = [FollowUp(text="tell <!everyone>", owner=CARA, created_by=ANA, created_at=at(3))]
    text = render(inc, entries, followups)
    for raw in ("<!channel>", "<!here>", "<!everyone>", "<@U0EVE0001>", "<https://"):
        assert raw not in text
    assert "**Incident:** INC-42 - db down &lt;!channel&gt;" in text
    assert "blame &lt;@U0EVE0001&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert f"<@{BOB}> note: wake &lt;!here&gt; now **Action Items:** fake" in text  # one line, not a section
    assert text.count("\n**Action Items:**") == 1
    assert f"(owner: <@{CARA}>)" in text


def test_malformed_user_ids_are_not_mentions():
    entries = [entry(0.5, "opened", "<!channel>", "x")]
    text = render(incident(opened_by="<!channel>"), entries)
    assert "<!channel>" not in text and "@&lt;!channel&gt; opened" in text


def test_unknown_severity_and_severity_without_alias():
    assert "**Severity:** SEV9\n" in render(incident(severity="SEV9"))
    assert "**Severity:** P3 (Low)\n" in render(incident(severity="low"))


def test_builtin_template_is_packaged():
    assert resources.files("bot.incident").joinpath("templates/postmortem.md.j2").is_file()


def test_custom_template(tmp_path):
    (tmp_path / "review.md.j2").write_text(
        "# {{ incident.ref }}: {{ incident.title }} ({{ incident.severity_label }})\n"
        "{% for m in milestones %}{{ m.time }} {{ m.label }}\n{% endfor %}"
        "{% for a in actions %}{{ a.action }} {{ a.service }} by {{ a.requester }}: {{ a.outcome }}\n{% endfor %}"
        "TTA {{ time_to_acknowledge }}; generated {{ generated_at }}\n"
    )
    template = load_template("review.md.j2", tmp_path)
    text = render(incident(title="<!here> pool"), template_text=template)
    assert text.startswith("# INC-42: &lt;!here&gt; pool (P1 (High))\n01:30 Issue detected\n")
    assert f"restart db by <@{BOB}>: succeeded\n" in text
    assert "TTA 7m; generated 2026-03-29 05:00 CEST" in text


def test_custom_template_runs_in_the_sandbox():
    with pytest.raises(ValueError, match="failed to render"):
        render(template_text="{{ incident.__class__.__mro__ }}")
    with pytest.raises(ValueError, match="failed to render"):
        render(template_text="{{ incident.title.__class__.__subclasses__() }}")


@pytest.mark.parametrize("body, message", [
    ("{% if %}broken", "line 1 does not compile"),
    ("{{ incident.title }\n", "does not compile"),
    ("{% for x in timeline %}", "does not compile"),
    ("{{ secrets }}", "unknown variables secrets"),
])
def test_bad_templates_are_refused_when_loaded(tmp_path, body, message):
    (tmp_path / "bad.j2").write_text(body)
    with pytest.raises(ValueError, match=message) as info:
        load_template("bad.j2", tmp_path)
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


def test_undefined_attribute_fails_at_render_with_value_error():
    with pytest.raises(ValueError, match="failed to render: 'dict object' has no attribute 'nope'"):
        render(template_text="{{ incident.nope }}")


def test_runaway_output_is_stopped():
    with pytest.raises(ValueError, match="more than"):
        render(template_text="{% for a in range(100000) %}{% for b in range(100) %}xxxxxxxxxxxxxxxxxxxx{% endfor %}{% endfor %}")


def test_oversized_missing_and_binary_templates_are_refused(tmp_path):
    (tmp_path / "big.j2").write_text("x" * (MAX_TEMPLATE_BYTES + 1))
    with pytest.raises(ValueError, match="over 64 KiB"):
        load_template("big.j2", tmp_path)
    (tmp_path / "exact.j2").write_text("x" * MAX_TEMPLATE_BYTES)
    assert len(load_template("exact.j2", tmp_path)) == MAX_TEMPLATE_BYTES
    with pytest.raises(ValueError, match="cannot be read"):
        load_template("missing.j2", tmp_path)
    (tmp_path / "binary.j2").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_template("binary.j2", tmp_path)


def test_template_path_is_relative_to_the_app_yaml_directory(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "pm.j2").write_text("{{ incident.ref }}")
    assert load_template("templates/pm.j2", tmp_path) == "{{ incident.ref }}"
    assert load_template(str(tmp_path / "templates" / "pm.j2"), tmp_path / "elsewhere") == "{{ incident.ref }}"


def test_notified_entry_counts_and_checks_show_their_headline_only():
    entries = [
        entry(0.5, "opened", ANA, "Database connection failure"),
        entry(0.5 + 1 / 60, "notified", "", "Notified S0MGMT0001, C0STATUS01"),
        entry(0.6, "check", BOB, "db: critical\n  postgres: 96% connections <!channel>\n  container: ok", outcome="critical"),
        entry(0.7, "action", BOB, "restart db: succeeded", action="restart", service="db", requester=BOB, approvers=[],
              outcome="succeeded", verification="all checks passed\n  db postgres ok\n  db container ok"),
    ]
    text = render(entries=entries)
    assert "- 01:31 - Team notified\n" in text
    assert f"<@{BOB}> check: critical - db: critical\n" in text and "<!channel>" not in text and "96%" not in text
    assert f"requested by <@{BOB}>, no approval needed: succeeded; verification: all checks passed\n" in text
