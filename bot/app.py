"""The Bot object only wires things: config, storage, checks, roles and the pipeline."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.check.engine import CheckEngine
from bot.config.loader import load_config
from bot.config.models import AppConfig
from bot.coordination import Coordinator
from bot.docker_engine import DockerGateway
from bot.pipeline.dispatch import DEFAULT_MIDDLEWARE, Pipeline
from bot.pipeline.messenger import Click, Messenger
from bot.pipeline.reply import Outcome, Reply
from bot.pipeline.request import Request
from bot.pipeline.roles import GroupLookup, RoleDirectory
from bot.settings import Settings
from bot.storage import Database

log = logging.getLogger(__name__)


class Bot:
    def __init__(self, settings: Settings, config: AppConfig, group_lookup: GroupLookup | None = None):
        from commands import ALL

        self.settings = settings
        self.config = config
        self.db = Database(settings.database_url)
        self.checks = CheckEngine(DockerGateway())
        self.roles = RoleDirectory(config, group_lookup)
        self.coordinator = Coordinator(settings.redis_url)
        self.pipeline = Pipeline(ALL, DEFAULT_MIDDLEWARE)
        # Transports register how they post and edit messages: {"slack": ..., "console": ...}.
        self.messengers: dict[str, Messenger] = {}
        self._housekeeping: asyncio.Task | None = None

    @classmethod
    def from_settings(cls, settings: Settings, config_path: str | None = None, group_lookup: GroupLookup | None = None) -> "Bot":
        return cls(settings, load_config(config_path or settings.config_path), group_lookup)

    async def handle(self, request: Request) -> Reply:
        return await self.pipeline.handle(request, self)

    async def handle_click(self, click: Click) -> Reply:
        """A button press: Approve or Deny on an action request; any other button gets one sentence."""
        from bot.action.flow import decide

        if click.action_id not in ("approve", "deny"):
            return Reply.refusal("That button is not one opsbot knows (it may belong to an older version); nothing was done.")
        try:
            return await decide(self, click)
        except Exception:
            log.exception("button %s failed", click.action_id)
            return Reply.refusal(
                "That button press failed inside opsbot; the error is in the bot's log and the request's message shows its state.",
                Outcome.error,
            )

    def start_housekeeping(self) -> None:
        """The periodic sweep, for serve and the console alike."""
        if self._housekeeping is None:
            self._housekeeping = asyncio.get_running_loop().create_task(self.sweep_forever())

    async def stop_housekeeping(self) -> None:
        """Cancelled and awaited: a sweep cut short must be over before the database closes."""
        task, self._housekeeping = self._housekeeping, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep_forever(self, interval: float = 30.0) -> None:
        """Run sweep() now (a restart may have left requests behind) and then every `interval` seconds."""
        while True:
            await self.sweep()
            await asyncio.sleep(interval)

    async def sweep(self) -> None:
        """Housekeeping, at start and periodically: expire overdue approval requests, fail stranded ones."""
        from bot.action.flow import recover_stale, sweep_expired

        try:
            await sweep_expired(self)
            await recover_stale(self)
        except Exception as exc:
            log.warning("request sweep failed: %s", exc)

    async def close(self) -> None:
        await self.stop_housekeeping()
        await self.checks.close()
        await self.coordinator.close()
        await self.db.close()
