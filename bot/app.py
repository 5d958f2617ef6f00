"""The Bot object only wires things: config, storage, checks, roles and the pipeline."""
from __future__ import annotations

import logging

from bot.activity import ActivityFeed
from bot.check.engine import CheckEngine
from bot.config.approvals import approval_problems
from bot.config.loader import load_config
from bot.config.models import AppConfig
from bot.coordination import Coordinator
from bot.docker_engine import DockerGateway
from bot.oncall.service import OncallDirectory
from bot.pipeline.dispatch import DEFAULT_MIDDLEWARE, Pipeline
from bot.pipeline.interactions import PRESS_MIDDLEWARE, InteractionPipeline
from bot.pipeline.messenger import Click, Messenger
from bot.pipeline.reply import Reply
from bot.pipeline.request import Request
from bot.pipeline.roles import GroupLookup, RoleDirectory
from bot.schedule import Clock, Scheduler, SystemClock
from bot.settings import Settings
from bot.storage import Database

log = logging.getLogger(__name__)


class Bot:
    def __init__(self, settings: Settings, config: AppConfig, group_lookup: GroupLookup | None = None, clock: Clock | None = None):
        from bot.action.scheduled import JOBS as ACTION_JOBS
        from bot.alerts.headline import note as alerts_headline_note
        from bot.alerts.heartbeat import jobs_for as alert_jobs
        from bot.alerts.redraw import JOBS as ALERT_REDRAW_JOBS
        from bot.alerts.resolution import JOBS as ALERT_RESOLUTION_JOBS
        from bot.alerts.held import end_note as held_alerts_note
        from bot.alerts.silences import expire_for as expire_silences
        from bot.deploy.recovery import JOBS as DEPLOY_JOBS
        from bot.incident.activity import timeline_listener
        from bot.incident.escalation import JOBS as INCIDENT_JOBS
        from bot.incident.opening import JOBS as OPENING_JOBS
        from bot.schedule.retention import JOBS as SCHEDULE_JOBS
        from bot.maintenance.scheduled import JOBS as MAINTENANCE_JOBS
        from bot.schedules.scheduled import JOBS as SCHEDULES_JOBS
        from commands import ALL
        from interactions import ALL as INTERACTIONS, LEGACY as LEGACY_IDS

        self.settings = settings
        self.config = config
        self.db = Database(settings.database_url)
        self.checks = CheckEngine(DockerGateway())
        self.clock = clock or SystemClock()  # "now" for every slice: a test passes a ManualClock
        self.oncall = OncallDirectory(self.db, config, self.clock)
        self.roles = RoleDirectory(config, group_lookup, oncall=self.oncall.on_call_users)
        self.coordinator = Coordinator(settings.redis_url, self.db, self.clock)  # retried deliveries run once
        self.pipeline = Pipeline(ALL, DEFAULT_MIDDLEWARE)
        self.interactions = InteractionPipeline(INTERACTIONS, PRESS_MIDDLEWARE, aliases=LEGACY_IDS)
        # Transports register how they post and edit messages: {"slack": ..., "console": ...}.
        self.messengers: dict[str, Messenger] = {}
        # Periodic and promised work (bot/schedule/): each slice contributes its job types.
        # Serve and the console start it; close() stops it before the database closes.
        # batch 64: 10,000 pages due within a minute go out with p99 under 1 s (bench/escalation_scale.py).
        self.scheduler = Scheduler(self.db, [*ACTION_JOBS, *INCIDENT_JOBS, *OPENING_JOBS, *SCHEDULE_JOBS, *SCHEDULES_JOBS, *MAINTENANCE_JOBS, *alert_jobs(config), *ALERT_REDRAW_JOBS, *ALERT_RESOLUTION_JOBS, *DEPLOY_JOBS], self, clock=self.clock, batch=64)
        # Checks and actions tell what they did in a channel; the incident slice keeps it on its timeline.
        self.activity = ActivityFeed(self.clock.now)
        self.activity.subscribe(timeline_listener(self))
        # What other slices add to a maintenance window's end post: (bot, window) -> lines (the alerts it held).
        self.window_end_notes = [held_alerts_note]
        # What other slices add to an incident's headline: (bot, incident) -> blocks (an alert incident's alerts).
        self.headline_notes = [alerts_headline_note]
        # What other slices do when an incident resolves: (bot, incident) -> None (its Alertmanager silences expire).
        self.incident_resolved_hooks = [expire_silences]

    @classmethod
    def from_settings(cls, settings: Settings, config_path: str | None = None, group_lookup: GroupLookup | None = None) -> "Bot":
        config = load_config(config_path or settings.config_path)
        # `opsbot config check` calls these errors; the bot still starts (health, incidents and pages
        # must not wait on a restore policy), and says so where an operator reads its log.
        for problem in approval_problems(config):
            log.warning("app.yaml: %s: %s (opsbot config check shows the line)", ".".join(map(str, problem.path)), problem.message)
        return cls(settings, config, group_lookup)

    async def handle(self, request: Request) -> Reply:
        return await self.pipeline.handle(request, self)

    async def handle_click(self, click: Click) -> Reply:
        """A button press, from any transport: through the interaction pipeline, like a command."""
        return await self.interactions.handle(click, self)

    async def close(self) -> None:
        await self.scheduler.stop()  # a job cut short must be over before the database closes
        await self.activity.close()  # timeline entries still being retried get a last chance to be stored
        await self.checks.close()
        await self.coordinator.close()
        await self.db.close()
