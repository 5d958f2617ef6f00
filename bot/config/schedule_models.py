"""app.yaml sections for what runs on its own: schedules (cron), Prometheus metric thresholds, maintenance.

Runbook 001 "Morning checks", runbook 003 "Monitoring Checklist" and runbook 004 "Preventive
Measures" become scheduled posts; runbook 000 section 4.2 and runbook 001 "When to Alert"
become metric thresholds; runbook 001 "Scheduled Maintenance" announces a window 48 h ahead.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from bot.config.incident_models import check_timezone
from bot.config.literal_secrets import HttpUrl
from bot.config.types import Duration, Name, RoleName, ServiceName, SlackChannel, Strict

ScheduleRun = Literal["daily_check", "weekly_check", "monthly_checklist", "backup", "health"]
# Runbook 003 "Monitoring Checklist" (monthly) and runbook 004 "Preventive Measures" (monthly checks).
MONTHLY_CHECKLIST = [
    "Review and update the runbooks",
    "Conduct an incident response drill",
    "Review capacity planning",
    "Update documentation",
    "Review error trends",
    "Check that backup restoration works",
    "Rotate secrets and API keys",
    "Audit dependencies for security updates",
]


class Schedule(Strict):
    """A post that arrives on its own at each cron slot, exactly once across replicas."""

    cron: str = Field(description="Five fields: minute hour day-of-month month day-of-week, e.g. '0 8 * * 1-5'.")
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in (DST-safe).")
    channel: SlackChannel | None = Field(None, description="Where the post goes; default slack.ops_channel.")
    run: ScheduleRun = Field(description="What it runs.")
    services: list[ServiceName] = Field([], description="health: the services to check (empty: all).")
    database: Name | None = Field(None, description="backup: the database to back up (empty: every declared one).")
    checklist: list[Annotated[str, Field(min_length=1, max_length=150)]] = Field(
        MONTHLY_CHECKLIST, max_length=20, description="monthly_checklist: the items, each ticked with a button (runbooks 003, 004)."
    )
    open_incident: str | None = Field(
        None, description="A severity (e.g. P2): a red check opens one incident at it, and says so there when it is green again."
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from bot.schedule.cron import CronError, parse_cron

        from datetime import datetime, timezone

        from bot.schedule.cron import next_slot

        try:
            parse_cron(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        if next_slot(value, "UTC", datetime(2026, 1, 1, tzinfo=timezone.utc)) is None:
            raise ValueError(f"'{value}' never fires within a year (a 30 February, or 29 February only)")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)


class PrometheusSettings(Strict):
    url: HttpUrl = Field(description="The Prometheus server's base URL, e.g. http://prometheus:9090.")
    timeout: Duration = Field(5.0, description="Each query's timeout.")


class Metric(Strict):
    """A PromQL query with thresholds (runbook 000 section 4.2), shown in /health and the daily post."""

    query: str = Field(min_length=1, max_length=2000, description="PromQL; its result must be one number (one series).")
    warn: float | None = Field(None, description="Warning at or above this (at or below with lower_is_worse).")
    critical: float | None = Field(None, description="Critical at or above this (at or below with lower_is_worse).")
    for_: Duration | None = Field(
        None, alias="for", description="Only when the condition held for this long (runbook 001: CPU over 90 % for 5 minutes)."
    )
    lower_is_worse: bool = Field(False, description="For readings where less is worse (free space, hit rate).")
    unit: str = Field("", max_length=20, description="Shown after the value: s, %, MB.")
    service: ServiceName | None = Field(None, description="Shown with this service in /health; maintenance windows on it silence it.")

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        from bot.metrics_check.promql import promql_problem

        problem = promql_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Metric":
        if self.warn is None and self.critical is None:
            raise ValueError("a metric needs warn, critical or both")
        if self.warn is not None and self.critical is not None:
            if (self.warn > self.critical) if not self.lower_is_worse else (self.warn < self.critical):
                raise ValueError("warn must come before critical (lower_is_worse turns the order around)")
        return self


class MaintenanceSettings(Strict):
    announce_before: Duration = Field(48 * 3600.0, description="A window scheduled ahead is announced this long before (runbook 001).")
    channel: SlackChannel | None = Field(None, description="Where announcements go; default slack.ops_channel. A channel ID (C...) lets a retried post look for itself in the channel's history.")
    max_duration: Duration = Field(4 * 3600.0, gt=0, description="The longest a window lasts; so do windows on one service that overlap or are less than an hour apart (the gap counted).")
    all_services_roles: list[RoleName] = Field([], description="Roles that may open a window on every service; none: such windows are refused.")


MetricName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
