"""The composition root: builds the bot's parts once, hands every handler and job the same context,
and runs the two pipelines. Transports hold the Bot; handlers and slices see only the BotContext."""
from __future__ import annotations

import logging

from bot.action.scheduled import JOBS as ACTION_JOBS
from bot.activity import ActivityFeed
from bot.alerts.headline import note as alerts_headline_note
from bot.alerts.heartbeat import jobs_for as alert_jobs
from bot.alerts.held import end_note as held_alerts_note
from bot.alerts.redraw import JOBS as ALERT_REDRAW_JOBS
from bot.alerts.resolution import JOBS as ALERT_RESOLUTION_JOBS
from bot.alerts.silences import expire_for as expire_silences
from bot.check.engine import CheckEngine
from bot.config.approvals import approval_problems
from bot.config.loader import load_config
from bot.config.models import AppConfig
from bot.context import BotContext
from bot.coordination import Coordinator
from bot.deploy.recovery import JOBS as DEPLOY_JOBS
from bot.docker_engine import DockerGateway
from bot.incident.activity import timeline_listener
from bot.incident.escalation import JOBS as INCIDENT_JOBS
from bot.incident.opening import JOBS as OPENING_JOBS
from bot.maintenance.scheduled import JOBS as MAINTENANCE_JOBS
from bot.oncall.service import OncallDirectory
from bot.pipeline.dispatch import DEFAULT_MIDDLEWARE, Pipeline
from bot.pipeline.interactions import PRESS_MIDDLEWARE, InteractionPipeline
from bot.pipeline.messenger import Click, Messenger
from bot.pipeline.reply import Reply
from bot.pipeline.request import Request
from bot.pipeline.roles import GroupLookup, RoleDirectory
from bot.schedule import Clock, Scheduler, SystemClock
from bot.schedule.retention import JOBS as SCHEDULE_JOBS
from bot.schedules.scheduled import JOBS as SCHEDULES_JOBS
from bot.settings import Settings
from bot.storage import Database
from commands import ALL
from interactions import ALL as INTERACTIONS, LEGACY as LEGACY_IDS

log = logging.getLogger(__name__)


def _part(name: str) -> property:
    """bot.db, bot.config, ...: the context's parts, read and replaced there (transports and tests use them)."""
    return property(lambda bot: getattr(bot.context, name), lambda bot, value: setattr(bot.context, name, value))


class Bot:
    (settings, config, clock, db, checks, oncall, roles, coordinator, activity, messengers, scheduler, commands,
     window_end_notes, headline_notes, incident_resolved_hooks) = map(_part, (
        "settings", "config", "clock", "db", "checks", "oncall", "roles", "coordinator", "activity", "messengers", "scheduler",
        "commands", "window_end_notes", "headline_notes", "incident_resolved_hooks"))

    def __init__(self, settings: Settings, config: AppConfig, group_lookup: GroupLookup | None = None, clock: Clock | None = None):
        self._pipeline = Pipeline(ALL, DEFAULT_MIDDLEWARE)
        self.interactions = InteractionPipeline(INTERACTIONS, PRESS_MIDDLEWARE, aliases=LEGACY_IDS)
        db, clock = Database(settings.database_url), clock or SystemClock()
        oncall = OncallDirectory(db, config, clock)
        self.context = BotContext(
            settings=settings,
            config=config,
            clock=clock,
            db=db,
            checks=CheckEngine(DockerGateway()),
            oncall=oncall,
            roles=RoleDirectory(config, group_lookup, oncall=oncall.on_call_users),
            coordinator=Coordinator(settings.redis_url, db, clock),
            activity=ActivityFeed(clock.now),
            commands=self._pipeline.commands,
            handle=self.handle,
            window_end_notes=[held_alerts_note],
            headline_notes=[alerts_headline_note],
            incident_resolved_hooks=[expire_silences],
        )
        # Each slice contributes its job types. Serve and the console start the scheduler; close()
        # stops it before the database closes.
        # batch 64: 10,000 pages due within a minute go out with p99 under 1 s (bench/escalation_scale.py).
        self.context.scheduler = Scheduler(db, [*ACTION_JOBS, *INCIDENT_JOBS, *OPENING_JOBS, *SCHEDULE_JOBS, *SCHEDULES_JOBS, *MAINTENANCE_JOBS, *alert_jobs(config), *ALERT_REDRAW_JOBS, *ALERT_RESOLUTION_JOBS, *DEPLOY_JOBS], self.context, clock=clock, batch=64)
        self.context.activity.subscribe(timeline_listener(self.context))

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Pipeline) -> None:
        """A test's own pipeline: /help and the command lookup read its commands too."""
        self._pipeline = pipeline
        self.context.commands = pipeline.commands

    @classmethod
    def from_settings(cls, settings: Settings, config_path: str | None = None, group_lookup: GroupLookup | None = None) -> "Bot":
        config = load_config(config_path or settings.config_path)
        # `opsbot config check` calls these errors; the bot still starts (health, incidents and pages
        # must not wait on a restore policy), and says so where an operator reads its log.
        for problem in approval_problems(config):
            log.warning("app.yaml: %s: %s (opsbot config check shows the line)", ".".join(map(str, problem.path)), problem.message)
        return cls(settings, config, group_lookup)

    async def handle(self, request: Request) -> Reply:
        return await self.pipeline.handle(request, self.context)

    async def handle_click(self, click: Click) -> Reply:
        """A button press, from any transport: through the interaction pipeline, like a command."""
        return await self.interactions.handle(click, self.context)

    async def close(self) -> None:
        await self.scheduler.stop()  # a job cut short must be over before the database closes
        await self.activity.close()  # timeline entries still being retried get a last chance to be stored
        await self.checks.close()
        await self.coordinator.close()
        await self.db.close()
