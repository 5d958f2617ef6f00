"""The Slack edge: Bolt listeners that turn slash commands into Requests and Replies into messages."""
from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler, async_default_handlers
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import SLACK_API_ERRORS
from bot.pipeline.request import Request
from bot.redaction import redact
from bot.settings import Settings
from bot.transport.blocks import to_slack

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


def build_slack_app(bot, settings: Settings, client: AsyncWebClient, socket_mode: bool = False) -> AsyncApp:
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret,
        request_verification_enabled=not socket_mode,  # the socket is authenticated instead
        process_before_response=False,  # ack at once, work after
    )

    @app.middleware
    async def skip_retried_deliveries(body, next):  # noqa: A002 (Bolt's argument name)
        """Slack retries deliveries (X-Slack-Retry-Num); the same request must never run twice."""
        key = _delivery_key(body)
        if key is not None and not await bot.coordinator.claim(key):
            log.info("skipping a repeated delivery of %s", key)
            return BoltResponse(status=200, body="")
        return await next()

    async def on_command(ack, body, respond, client):
        await ack()
        request = Request(
            user_id=body.get("user_id", ""),
            channel_id=body.get("channel_id", ""),
            command=str(body.get("command", "")).lstrip("/"),
            text=body.get("text") or "",
            transport="slack",
        )
        reply = await bot.handle(request)
        await deliver(reply, respond, client, request.channel_id, request.command)

    for name in bot.pipeline.commands:
        app.command(f"/{name}")(on_command)
    return app


async def deliver(reply, respond, client: AsyncWebClient, channel_id: str, command: str) -> None:
    message = to_slack(reply)
    try:
        posted = await respond(
            text=message.text,
            blocks=message.blocks,
            response_type="ephemeral" if reply.ephemeral else "in_channel",
        )
        # respond() does not raise when Slack refuses the post (404 used_url / expired_url, 400 invalid_blocks).
        if posted is not None and posted.status_code != 200:
            error = (posted.body or str(posted.status_code)).splitlines()[0][:64]
            SLACK_API_ERRORS.labels("response_url", error).inc()
            log.error("could not deliver /%s reply: response_url answered %s %s", command, posted.status_code, redact(error))
        if message.attachment is not None:
            await client.files_upload_v2(
                channel=channel_id,
                content=message.attachment,
                filename=f"{command}.txt",
                title=f"/{command} output",
            )
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown"))
        SLACK_API_ERRORS.labels("files.upload" if message.attachment else "response_url", error).inc()
        log.error("could not deliver /%s reply: %s", command, redact(error))
    except Exception as exc:  # response_url expired, network gone: log it, keep serving
        SLACK_API_ERRORS.labels("response_url", exc.__class__.__name__).inc()
        log.error("could not deliver /%s reply: %s", command, redact(str(exc))[:300])


def _delivery_key(body: dict) -> str | None:
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None
