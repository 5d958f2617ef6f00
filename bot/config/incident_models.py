"""app.yaml sections for incidents: severities (the response-time matrix), calendar, on-call
rotations, playbooks and incident settings. Defaults carry the runbooks' values.

Runbook 002 "Incident Severity Levels" and runbook 003 "Escalation Matrix":
P0 / Critical 15 min, P1 / High 1 h, P2 / Medium 4 h, P3 / Low next business day.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from bot.config.types import Duration, RoleName, RotationName, ServiceName, SlackChannel, SlackUserGroupId, SlackUserId, Strict

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
NEXT_BUSINESS_DAY = "next_business_day"


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{value[:60]}' (use an IANA name such as Europe/Berlin)") from None
    return value


def clock_time(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


class Calendar(Strict):
    """Working hours, for `next_business_day` and for holding low-severity pings to the day."""

    timezone: str = Field("UTC", description="IANA time zone the working hours are in; also how times are shown.")
    working_days: list[Weekday] = Field(["mon", "tue", "wed", "thu", "fri"], min_length=1, description="Days with working hours.")
    working_hours_start: ClockTime = Field("09:00", description="Start of the working day, local time.")
    working_hours_end: ClockTime = Field("17:00", description="End of the working day, local time.")
    holidays: list[dt.date] = Field([], description="Dates (YYYY-MM-DD) without working hours.")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _ordered(self) -> "Calendar":
        if clock_time(self.working_hours_end) <= clock_time(self.working_hours_start):
            raise ValueError("working_hours_end must be after working_hours_start")
        return self


class Rotation(Strict):
    """An on-call rotation: members take shifts in order, handing off at a fixed local time."""

    members: list[SlackUserId] = Field(min_length=1, description="Slack user IDs, in shift order.")
    handoff_day: Weekday = Field("mon", description="Weekday of the first hand-off (weekly shifts hand off on it).")
    handoff_time: ClockTime = Field("09:00", description="Local time of each hand-off.")
    timezone: str = Field("UTC", description="IANA time zone of the hand-off time; daylight saving is followed.")
    shift: Duration = Field(7 * 86400.0, description="Shift length: 1d, 7d, 12h ... Whole days hand off at the same local time.")
    starts: dt.date = Field(dt.date(2026, 1, 5), description="The first member's first shift begins at the first hand-off on or after this date.")
    override_roles: list[RoleName] = Field(
        [], description="Roles that may /oncall override this rotation; empty: only its members, swapping among themselves."
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("shift")
    @classmethod
    def _shift(cls, value: float) -> float:
        if value < 3600 or value % 60:
            raise ValueError("a shift is at least 1h and a whole number of minutes")
        return value


class EscalationLevel(Strict):
    """Who is paged at one level: exactly one of rotation, role, group, users, or here."""

    name: str | None = Field(None, max_length=60, description="Label on pings and the timeline; defaults to the target.")
    rotation: RotationName | None = Field(None, description="The current on-call of this rotation (oncall:).")
    role: RoleName | None = Field(None, description="Every user of this role (roles:), e.g. the DevOps lead.")
    group: SlackUserGroupId | None = Field(None, description="A Slack user group, mentioned as a group.")
    users: list[SlackUserId] = Field([], description="These users.")
    here: bool = Field(False, description="Mention @here in the incident's channel (no direct message).")
    repeat_every: Duration | None = Field(None, description="Ping again this often while nobody acknowledges.")
    max_repeats: int = Field(0, ge=0, le=20, description="How many repeats at this level before it moves on.")
    escalate_after: Duration | None = Field(None, description="Time at this level before the next; defaults to the severity's respond_within.")

    @model_validator(mode="after")
    def _one_target(self) -> "EscalationLevel":
        targets = [self.rotation, self.role, self.group, self.users or None, self.here or None]
        if sum(t is not None for t in targets) != 1:
            raise ValueError("an escalation level names exactly one of rotation, role, group, users or here")
        if self.max_repeats and self.repeat_every is None:
            raise ValueError("max_repeats needs repeat_every")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.rotation:
            return f"on-call ({self.rotation})"
        if self.role:
            return f"role {self.role}"
        if self.group:
            return f"group {self.group}"
        if self.here:
            return "@here"
        return ", ".join(self.users)


class Notify(Strict):
    """Told when an incident of this severity opens: a channel (the status channel), a group or a role."""

    channel: SlackChannel | None = None
    group: SlackUserGroupId | None = None
    role: RoleName | None = None

    @model_validator(mode="after")
    def _one(self) -> "Notify":
        if sum(v is not None for v in (self.channel, self.group, self.role)) != 1:
            raise ValueError("a notify entry names exactly one of channel, group or role")
        return self


class Severity(Strict):
    aliases: list[str] = Field([], description="Other names accepted in commands (the runbooks' Critical, High, ...).")
    description: str = Field("", max_length=200, description="When to use it (runbook 002's examples).")
    respond_within: Duration | Literal["next_business_day"] = Field(
        description="Time to acknowledge before the next level is paged: a duration, or next_business_day (calendar:)."
    )
    escalation: list[EscalationLevel] = Field(min_length=1, max_length=10, description="The chain, first level paged on open.")
    notify: list[Notify] = Field([], description="Told on open: the status channel, management.")
    update_reminder: Duration | None = Field(None, description="Remind the commander to post an update this often while open.")
    status_updates: bool = Field(False, description="Post /incident update text to incidents.status_channel too.")

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for alias in value:
            if not alias or len(alias) > 20 or not alias.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"alias '{alias[:30]}' must be 1-20 letters, digits, - or _")
        return value

    @property
    def business_hours_only(self) -> bool:
        """next_business_day severities page only within working hours."""
        return self.respond_within == NEXT_BUSINESS_DAY


def _here(repeat: float, repeats: int) -> list[EscalationLevel]:
    return [EscalationLevel(here=True, name="incident channel", repeat_every=repeat, max_repeats=repeats)]


# The runbooks' matrix, used when app.yaml has no severities:. With no rotations known here the
# chain pages @here in the incident's channel; examples/ show rotations, leads and management.
DEFAULT_SEVERITIES: dict[str, Severity] = {
    "P0": Severity(aliases=["Critical", "SEV0"], description="Complete outage, data breach", respond_within=900.0,
                   escalation=_here(300.0, 3), update_reminder=1800.0, status_updates=True),
    "P1": Severity(aliases=["High", "SEV1"], description="Partial outage, payment failures", respond_within=3600.0,
                   escalation=_here(900.0, 3), update_reminder=3600.0, status_updates=True),
    "P2": Severity(aliases=["Medium", "SEV2"], description="Performance degradation", respond_within=4 * 3600.0,
                   escalation=_here(3600.0, 3)),
    "P3": Severity(aliases=["Low", "SEV3"], description="Minor bugs", respond_within=NEXT_BUSINESS_DAY,
                   escalation=_here(4 * 3600.0, 1)),
}


StepCommand = Annotated[str, Field(pattern=r"^/[a-z][a-z0-9_-]{0,30}( [^\n]{1,300})?$")]


class PlaybookStep(Strict):
    text: str = Field(min_length=1, max_length=500, description="What to do, as the runbook says it.")
    command: StepCommand | None = Field(None, description="A bot command the step's Run button runs, e.g. /health database.")


class Playbook(Strict):
    title: str = Field(min_length=1, max_length=150, description="The runbook scenario's name.")
    severity: str | None = Field(None, description="The severity it suggests (a name or alias in severities:).")
    services: list[ServiceName] = Field([], description="Suggested when an incident names one of these services.")
    steps: list[PlaybookStep] = Field(min_length=1, max_length=40, description="The checklist.")


class IncidentSettings(Strict):
    channel: SlackChannel | None = Field(None, description="Where headlines are posted; defaults to slack.incidents_channel.")
    status_channel: SlackChannel | None = Field(None, description="Where updates of severities with status_updates go.")
    create_channels: bool = Field(False, description="Create a channel per incident (inc-42-db-down), invite, set its topic, pin the headline.")
    channel_prefix: str = Field("inc", pattern=r"^[a-z][a-z0-9-]{0,19}$", description="Incident channel names start with it.")
    private_channels: bool = Field(False, description="Create incident channels as private channels.")
    invite: list[SlackUserId] = Field([], description="Always invited to incident channels.")
    postmortem_template: str | None = Field(None, description="Path to a Jinja2 Markdown template replacing the built-in one (runbook 003).")
