"""What commands, presses, scheduled jobs and listeners are given: the bot's parts, typed.

The composition root (bot/app.py) builds one `BotContext` and hands it to both pipelines, the
scheduler and the activity feed. Handlers and slices name this, never `Bot`, so nothing in
bot/pipeline/ or in a slice imports bot/app.py: the import circle that ran from bot/app.py through
every command module and back is gone. Every import below is for type checking only, so this module
imports nothing at run time and any module may name it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

if TYPE_CHECKING:
    from bot.activity import ActivityFeed
    from bot.check.engine import CheckEngine
    from bot.config.models import AppConfig
    from bot.coordination import Coordinator
    from bot.oncall.service import OncallDirectory
    from bot.pipeline.commands import CommandSpec
    from bot.pipeline.messenger import Messenger
    from bot.pipeline.reply import Reply
    from bot.pipeline.request import Request
    from bot.pipeline.roles import RoleDirectory
    from bot.schedule import Clock, Scheduler
    from bot.settings import Settings
    from bot.storage import Database


@dataclass(eq=False)
class BotContext:
    settings: Settings
    config: AppConfig
    clock: Clock  # "now" for every slice: a test passes a ManualClock
    db: Database
    checks: CheckEngine
    oncall: OncallDirectory
    roles: RoleDirectory
    coordinator: Coordinator  # retried deliveries run once
    activity: ActivityFeed  # checks and actions tell what they did; the incident slice keeps it on a timeline
    # The commands /help lists and the pipeline runs, by name.
    commands: Mapping[str, CommandSpec]
    # Runs a command through the same pipeline as a typed one (a playbook step is a command).
    handle: Callable[[Request], Awaitable[Reply]]
    # How each transport posts and edits messages: {"slack": ..., "console": ...}, registered as they start.
    messengers: dict[str, Messenger] = field(default_factory=dict)
    # What other slices add to a maintenance window's end post: (context, window) -> lines (the alerts it held).
    window_end_notes: list[Callable] = field(default_factory=list)
    # What other slices add to an incident's headline: (context, incident) -> blocks (an alert incident's alerts).
    headline_notes: list[Callable] = field(default_factory=list)
    # What other slices do when an incident resolves: (context, incident) -> None (its Alertmanager silences expire).
    incident_resolved_hooks: list[Callable] = field(default_factory=list)
    # Periodic and promised work; its jobs are given this context, so it is set just after construction.
    scheduler: Scheduler = field(init=False)
