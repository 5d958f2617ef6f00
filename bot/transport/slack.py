"""Slack's Web API side: the client, group lookups, posting and editing messages, delivering replies.

What comes in from Slack is in bot/transport/edge.py (both transports) with
server.py (HTTP) and socket_mode.py.
"""
from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import replace

import aiohttp

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler, async_default_handlers
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.metrics import SLACK_API_ERRORS
from bot.pipeline.forms import Form
from bot.pipeline.messenger import ChatUser, MessagePostFailed, UserLookupFailed, urgency
from bot.redaction import redact_cut
from bot.settings import Settings
from bot.transport.blocks import MAX_BLOCKS, form_view, plain, to_slack
from bot.transport.pacing import ChannelPacer

log = logging.getLogger(__name__)


def web_client(settings: Settings) -> AsyncWebClient:
    # slack-sdk does not retry 429s unless asked; Slack's Retry-After is honoured by this handler.
    handlers = async_default_handlers() + [AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
    return AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, retry_handlers=handlers)


def group_lookup(client: AsyncWebClient):
    async def members(group_id: str) -> list[str]:
        response = await client.usergroups_users_list(usergroup=group_id)
        return list(response.get("users", []))

    return members


def pooled(client: AsyncWebClient, *, without: type | None = None) -> AsyncWebClient:
    """A copy of `client` whose calls share one aiohttp session, and its kept-alive connections,
    while any of them is in flight; the session is closed when the last one ends, so nothing is
    left open while idle. slack-sdk otherwise opens a session and a TCP connection per call (four
    a page): 0.92 ms of the bot's CPU a post, against 0.48 ms shared (bench/escalation_scale.py
    --only calls). `without`: a retry handler class the copy leaves out."""
    if client.session is not None:  # the caller manages its own
        return client
    clone = copy.copy(client)
    if without is not None:
        clone.retry_handlers = [h for h in client.retry_handlers if not isinstance(h, without)]
    call = clone.api_call
    in_flight = 0

    async def api_call(*args, **kwargs):
        nonlocal in_flight
        if clone.session is None:
            clone.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=clone.timeout))  # as slack-sdk makes its own
        in_flight += 1
        try:
            return await call(*args, **kwargs)
        finally:
            in_flight -= 1
            if not in_flight:
                session, clone.session = clone.session, None
                await session.close()

    clone.api_call = api_call
    return clone


class SlackMessenger:
    """Action plans are posted with chat.postMessage so that chat.update can edit them in place."""

    def __init__(self, client: AsyncWebClient):
        self._client = pooled(client)
        # chat.postMessage's 429s are the pacer's to wait out, exactly Retry-After, with the channel's
        # queue kept in order: slack-sdk's handler adds a random 0-1 s to each wait, only delay here.
        self._posting = pooled(client, without=AsyncRateLimitErrorRetryHandler)
        self.pacer = ChannelPacer()  # one post in flight per channel, most urgent first (bot/transport/pacing.py)

    async def post(self, channel: str, reply) -> str:
        message = to_slack(reply)
        try:
            response = await self.pacer.send(
                channel, urgency.get(), lambda: self._posting.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))
            SLACK_API_ERRORS.labels("chat.postMessage", error).inc()
            raise MessagePostFailed(error) from None
        return f"{response['channel']}:{response['ts']}"

    async def update(self, ref: str, reply) -> None:
        channel, ts = ref.split(":", 1)
        message = to_slack(reply)
        try:
            await self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)
        except SlackApiError as exc:
            SLACK_API_ERRORS.labels("chat.update", str(exc.response.get("error", "unknown"))).inc()
            raise

    async def open_form(self, trigger_id: str, form: Form) -> bool:
        """views.open with the form as a modal; False (and a log line, without what anyone typed)
        when Slack refuses it: the trigger_id lives 3 s (expired_trigger_id), or was used already."""
        what = form.callback_id[:40]  # declared by the code, not typed by anyone
        if not trigger_id:
            log.warning("could not open the %s form: no trigger_id", what)
            return False
        try:
            await self._client.views_open(trigger_id=trigger_id, view=form_view(form))
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))[:64]
            SLACK_API_ERRORS.labels("views.open", error).inc()
            log.warning("could not open the %s form: Slack answered %s", what, error)
            return False
        except Exception as exc:  # the network, a timeout: the form is not shown either way
            SLACK_API_ERRORS.labels("views.open", exc.__class__.__name__).inc()
            log.warning("could not open the %s form: %s", what, exc.__class__.__name__)
            return False
        return True

    async def direct(self, user_id: str, reply) -> str:
        """conversations.open for the user's DM channel with the bot, then a post there."""
        try:
            response = await self._client.conversations_open(users=user_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))
            SLACK_API_ERRORS.labels("conversations.open", error).inc()
            raise MessagePostFailed(error) from None
        return await self.post(response["channel"]["id"], reply)

    async def user(self, user_id: str) -> ChatUser | None:
        """users.info: None for user_not_found; UserLookupFailed for any other answer, so a check fails closed."""
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))[:64]
            if error == "user_not_found":
                return None
            SLACK_API_ERRORS.labels("users.info", error).inc()
            raise UserLookupFailed(error) from None
        except Exception as exc:  # the network, a timeout
            SLACK_API_ERRORS.labels("users.info", exc.__class__.__name__).inc()
            raise UserLookupFailed(exc.__class__.__name__) from None
        found = response.get("user") or {}
        user = str(found.get("id", user_id))
        # Slackbot is a bot that users.info reports with is_bot false.
        return ChatUser(user, bool(found.get("deleted")), bool(found.get("is_bot")) or user == "USLACKBOT")


class BackgroundWork:
    """Work started after the ack; kept referenced until done, awaited on shutdown.

    Acks come first: Slack drops a command not acknowledged within 3 s, while a reply has
    30 minutes on its response_url. So during a burst, work waits until no request has
    been acknowledged for ACK_QUIET seconds, for at most ACK_PRIORITY_MAX_WAIT seconds
    so a steady stream of requests cannot starve it.
    """

    ACK_QUIET = 0.02
    ACK_PRIORITY_MAX_WAIT = 2.0

    def __init__(self):
        self._tasks: set[asyncio.Task] = set()
        self._acks_in_flight = 0
        self._last_ack = 0.0

    def ack_started(self) -> None:
        self._acks_in_flight += 1

    def ack_finished(self) -> None:
        self._acks_in_flight = max(0, self._acks_in_flight - 1)
        self._last_ack = asyncio.get_running_loop().time()

    def _quiet(self, now: float) -> bool:
        return self._acks_in_flight == 0 and now - self._last_ack >= self.ACK_QUIET

    def spawn(self, coro, *, urgent: bool = False) -> None:
        """`urgent`: starts at once, for work with its own short deadline (a trigger_id lives 3 s)."""
        task = asyncio.get_running_loop().create_task(coro if urgent else self._after_acks(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_acks(self, coro):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ACK_PRIORITY_MAX_WAIT
        while not self._quiet(loop.time()) and loop.time() < deadline:
            await asyncio.sleep(self.ACK_QUIET)
        return await coro

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the work in flight; what is still running after `timeout` is cancelled and awaited,
        so nothing touches the database or Slack after this returns."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            log.warning("cancelling work still running at shutdown")
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def responder(response_url: str):
    """`respond(text=..., blocks=..., response_type=...)` posting to one response_url (slack-sdk's webhook client)."""

    async def respond(**message):
        return await AsyncWebhookClient(response_url).send(**message)

    return respond


PRIVATE_FILE_NOTE = (
    "The full output is not attached: a file would be visible to the whole channel, and this reply is only for you. "
    "Narrow it down, or run the command in the console (opsbot shell)."
)


async def deliver(reply, respond, client: AsyncWebClient, channel_id: str, command: str, **extra) -> None:
    message = to_slack(reply)
    shared_in = reply.file.channel if reply.file is not None else None
    if message.attachment is not None and reply.ephemeral and not shared_in:
        # Files cannot be ephemeral: sharing one would show the channel what only the caller may see (/audit).
        note = {"type": "context", "elements": [{"type": "mrkdwn", "text": PRIVATE_FILE_NOTE}]}
        message = replace(message, blocks=message.blocks[: MAX_BLOCKS - 1] + [note], attachment=None, filename=None)
    try:
        posted = await respond(
            text=message.text,
            blocks=message.blocks,
            response_type="ephemeral" if reply.ephemeral else "in_channel",
            **extra,
        )
        # respond() does not raise when Slack refuses the post (404 used_url / expired_url, 400 invalid_blocks).
        if posted is not None and posted.status_code != 200:
            error = (posted.body or str(posted.status_code)).splitlines()[0][:64]
            SLACK_API_ERRORS.labels("response_url", error).inc()
            log.error("could not deliver /%s reply: response_url answered %s %s", command, posted.status_code, redact_cut(error, 64))
        if message.attachment is not None:
            await client.files_upload_v2(
                channel=shared_in or channel_id,
                content=message.attachment,
                filename=message.filename or f"{command}.txt",
                title=plain(f"/{command} output"),
            )
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        SLACK_API_ERRORS.labels("files.upload" if message.attachment else "response_url", error).inc()
        log.error("could not deliver /%s reply: %s", command, redact_cut(error, 300))
    except Exception as exc:  # response_url expired, network gone: log it, keep serving
        SLACK_API_ERRORS.labels("response_url", exc.__class__.__name__).inc()
        log.error("could not deliver /%s reply: %s", command, redact_cut(str(exc), 300))
