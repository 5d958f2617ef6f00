"""Posts to one channel under Slack's per-channel limit (the double enforces it): one at a time,
the most urgent first, every one delivered, and another channel never held by this one's 429s."""
from __future__ import annotations

import asyncio

from slack_double import ChannelPostBucket

from bot.pipeline.messenger import urgent
from bot.pipeline.reply import Reply
from bot.settings import Settings
from bot.transport.pacing import ChannelPacer
from bot.transport.slack import SlackMessenger, web_client
from conftest import BOT_TOKEN, SIGNING_SECRET


def messenger(slack) -> SlackMessenger:
    settings = Settings.from_env({"SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                  "DATABASE_URL": "sqlite+aiosqlite:///:memory:"})
    return SlackMessenger(web_client(settings))  # as serve wires it: the client honours Retry-After


def test_the_bucket_allows_a_burst_then_one_a_second_and_says_how_long_to_wait():
    bucket = ChannelPostBucket(per_second=1.0, burst=3)
    assert [bucket.take("C1", 100.0) for _ in range(3)] == [None, None, None]
    assert bucket.take("C1", 100.0) == 1
    assert bucket.take("C2", 100.0) is None  # per channel
    assert bucket.take("C1", 100.5) == 1  # half a token: still a whole second to say
    assert bucket.take("C1", 101.0) is None
    assert bucket.take("C1", 101.1) == 1


async def test_queued_posts_to_one_channel_leave_most_urgent_first_and_none_is_lost(slack):
    slack.limit_channel_posts(per_second=1.0, burst=1)
    chat = messenger(slack)

    async def post(text: str, rank: int, channel: str = "C0PACED") -> str:
        with urgent(rank):
            return await chat.post(channel, Reply(text))

    slack.rate_limit_channel_posts("C0PACED", times=1, retry_after=1)  # the first post holds the channel a second
    first = asyncio.create_task(post("first come", 3))
    await asyncio.sleep(0.2)  # it is waiting out its Retry-After; the others queue behind it meanwhile
    others = [asyncio.create_task(post(text, rank)) for text, rank in (("P3 page", 3), ("P1 page", 1), ("P0 page", 0), ("P2 page", 2))]
    elsewhere = asyncio.create_task(post("another channel", 3, "C0ELSEWHERE"))
    await asyncio.gather(first, *others, elsewhere)

    delivered = [c.args["text"] for c in slack.calls_to("chat.postMessage") if c.status == 200 and c.args["channel"] == "C0PACED"]
    assert delivered == ["first come", "P0 page", "P1 page", "P2 page", "P3 page"]
    # Slack said 429 to this channel, never to the other one, and each wait was its Retry-After.
    refused = [c for c in slack.calls_to("chat.postMessage") if c.status == 429]
    assert refused and {c.args["channel"] for c in refused} == {"C0PACED"}
    assert all(retry_after == 1 for _, retry_after in slack.posts_refused)
    assert chat.pacer.held_seconds >= 1  # the pacer waited them out (Retry-After exactly), not slack-sdk's jittered retry


async def test_a_post_that_outlasts_the_clients_retries_waits_out_retry_after_and_goes(slack):
    chat = messenger(slack)
    slack.rate_limit_channel_posts("C0HELD", times=5, retry_after=1)  # more 429s than the client retries (3)
    ref = await chat.post("C0HELD", Reply("still delivered"))
    assert ref.startswith("C0HELD:")
    assert chat.pacer.held_seconds >= 1
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 429, 429, 429, 429, 200]


async def test_a_post_cancelled_while_waiting_gives_up_its_place_and_holds_nothing():
    pacer = ChannelPacer()
    order: list[str] = []
    gate = asyncio.Event()

    def post(name: str, wait: asyncio.Event | None = None):
        async def call():
            if wait is not None:
                await wait.wait()
            order.append(name)
            return name
        return call

    first = asyncio.create_task(pacer.send("C1", 3, post("first", gate)))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(pacer.send("C1", 0, post("cancelled")))
    later = asyncio.create_task(pacer.send("C1", 2, post("later")))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    assert await asyncio.gather(first, later) == ["first", "later"]
    assert order == ["first", "later"] and cancelled.cancelled()
    assert await pacer.send("C1", 1, post("after")) == "after"  # the channel is free again, nothing left queued
    assert pacer._channels == {}


async def test_a_hung_answer_frees_the_channel_for_the_next_post(slack):
    """Slack (or the network) holding an answer is not Slack's limit: after SLOW_CALL the channel
    goes to the next post, which may be this very page's retry by another job."""
    chat = messenger(slack)
    release = asyncio.Event()

    async def post_message(args):
        if args.get("text") == "hangs":
            await release.wait()
        return slack._chat_post_message(args)

    slack.set_handler("chat.postMessage", post_message)
    try:
        hung = asyncio.create_task(chat.post("C0SLOW", Reply("hangs")))
        await asyncio.sleep(0.1)
        ref = await asyncio.wait_for(chat.post("C0SLOW", Reply("goes on")), timeout=30)
        assert ref.startswith("C0SLOW:") and not hung.done()
    finally:
        release.set()
        slack._custom_handlers.pop("chat.postMessage", None)  # the session's double keeps handlers across tests
    await hung
