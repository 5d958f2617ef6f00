"""Buttons, modal submissions and shortcuts are declared like commands and go through one middleware list.

An `InteractionSpec` names a namespaced id (`action.approve`, `incident.ack`), who may press
it and its handler; the registry lists them all (interactions/__init__.py). The press
pipeline is bolt-style middleware, outermost first, as for commands (pipeline/dispatch.py):
count the outcome, put it on record, contain errors, find the interaction (unknown ids get
one sentence), check the roles centrally (deny by default), run the handler. Nothing is
matched by "anything that is not X": an id is either declared, an alias of one, or unknown.

A button is found by its action_id; a modal submission (view_submission) or a shortcut
(shortcut, message_action) by its callback_id, and only by a spec that lists that kind.
An Events API event (kind "event", e.g. a reaction_added) is found as "event:<type>" by the
one spec whose `events` lists that type; nobody is there to read its refusals or failures
(an event has no response_url), so they only reach the audit log and the bot's log.
"""
from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

from bot.metrics import INTERACTIONS_HANDLED
from bot.pipeline.dispatch import chain
from bot.pipeline.messenger import Click
from bot.pipeline.reply import Context, Outcome, Reply
from bot.pipeline.roles import role_needed
from bot.redaction import redact_cut

if TYPE_CHECKING:
    from bot.context import BotContext

log = logging.getLogger(__name__)

INTERACTION_ID = re.compile(r"^[a-z]+\.[a-z_]+$")  # <slice>.<verb>: action.approve, incident.ack
UNKNOWN_BUTTON = "That button is not one opsbot knows (it may belong to an older version); nothing was done."
UNKNOWN_FORM = "This form is not one opsbot knows (it may belong to an older version); nothing was done."
FAILED = "That button press failed inside opsbot; the error is in the bot's log, and the message it is on shows what state things are in."
FORM_FAILED = "This form failed inside opsbot; the error is in the bot's log, and nothing after the failure was done."
# Events have no one to answer: these sentences go to the audit log only.
UNKNOWN_EVENT = "That event is not one opsbot handles; nothing was done."
EVENT_FAILED = "Handling that event failed inside opsbot; the error is in the bot's log, and nothing after the failure was done."

BUTTON = "block_actions"
EVENT = "event"
KINDS = frozenset({BUTTON, "view_submission", "shortcut", "message_action", EVENT})
EVENT_TYPE = re.compile(r"^[a-z][a-z_]{0,63}$")  # reaction_added, member_joined_channel


def _is_button(click: Click) -> bool:
    return click.kind == BUTTON


def _is_event(click: Click) -> bool:
    return click.kind == EVENT


@dataclass
class FormErrors(Reply):
    """A modal handler's answer that keeps the modal open with a message under each field: {block_id: message}."""

    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Press:
    """What an interaction handler receives: the click and the bot's parts."""

    click: Click
    ctx: BotContext


InteractionHandler = Callable[[Press], Awaitable[Reply]]


@dataclass(frozen=True)
class InteractionSpec:
    id: str  # "action.approve"
    summary: str
    handler: InteractionHandler
    # Deny by default, as for commands: open to everyone only when it says so.
    public: bool = False
    roles: tuple[str, ...] = ()
    # The handler writes its own audit row for every outcome (the action flow does); otherwise
    # the pipeline writes one per press.
    audits_itself: bool = False
    # What Slack delivers it as: a button's action_id by default; a modal's or shortcut's callback_id.
    kinds: tuple[str, ...] = (BUTTON,)
    # With "event" in kinds: the Events API types it handles (reaction_added), each by one spec only.
    events: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not INTERACTION_ID.match(self.id):
            raise ValueError(f"interaction id {self.id!r} is not namespaced like action.approve")
        if not self.kinds or not set(self.kinds) <= KINDS:
            raise ValueError(f"interaction {self.id} kinds {self.kinds!r} are not among {sorted(KINDS)}")
        if (EVENT in self.kinds) != bool(self.events):
            raise ValueError(f"interaction {self.id}: kind {EVENT!r} and a list of event types go together")
        for event_type in self.events:
            if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
                raise ValueError(f"interaction {self.id} event type {event_type!r} is not one like reaction_added")
        if len(set(self.events)) != len(self.events):
            raise ValueError(f"interaction {self.id} lists an event type twice")


@dataclass
class PressCall:
    click: Click
    ctx: BotContext
    known: Mapping[str, InteractionSpec]
    spec: InteractionSpec | None = None
    verdict: str = ""  # set when the press was stopped before its handler: "unknown", "refused"
    handled: bool = False  # the handler returned a reply


PressNext = Callable[[PressCall], Awaitable[Reply]]
PressMiddleware = Callable[[PressCall, PressNext], Awaitable[Reply]]


class InteractionPipeline:
    def __init__(
        self, interactions: list[InteractionSpec], middleware: list[PressMiddleware], aliases: Mapping[str, str] | None = None
    ):
        self.interactions = {spec.id: spec for spec in interactions}
        if len(self.interactions) != len(interactions):
            raise ValueError("two interactions share an id")
        self.middleware = middleware
        self.known = dict(self.interactions)
        for spec in interactions:
            for event_type in spec.events:
                key = f"{EVENT}:{event_type}"
                if key in self.known:
                    raise ValueError(f"two interactions handle the {event_type} event")
                self.known[key] = spec
        for old, new in (aliases or {}).items():
            if new not in self.interactions or old in self.interactions:
                raise ValueError(f"alias {old!r} -> {new!r} does not name one declared interaction")
            self.known[old] = self.interactions[new]

    async def handle(self, click: Click, ctx: BotContext) -> Reply:
        async def run_handler(call: PressCall) -> Reply:
            reply = await call.spec.handler(Press(call.click, ctx))
            call.handled = True
            return reply

        return await chain(self.middleware, run_handler)(PressCall(click, ctx, self.known))


async def count_press(call: PressCall, call_next: PressNext) -> Reply:
    reply = await call_next(call)
    # Declared ids only: a label per arbitrary action_id would grow the metric without bound.
    INTERACTIONS_HANDLED.labels(call.spec.id if call.spec else "unknown", reply.outcome.value).inc()
    return reply


async def audit_press(call: PressCall, call_next: PressNext) -> Reply:
    """Every press is on record: by its handler when it says so and ran, otherwise here."""
    reply = await call_next(call)
    if call.handled and call.spec.audits_itself:
        return reply
    from bot.audit import service as audit

    click = call.click
    try:
        await audit.record(
            call.ctx.db,
            user_id=click.user_id,
            command=call.spec.id if call.spec else click.target,
            arguments=click.value,
            channel=click.channel_id,
            transport=click.transport,
            outcome=call.verdict or reply.outcome.value,
            detail="" if reply.outcome is Outcome.ok else reply.text,
        )
    except Exception as exc:
        log.error("audit write failed: %s", exc.__class__.__name__)  # its message quotes the row: user text
        reply.blocks.append(Context("Not recorded in the audit log: the bot's database is unreachable."))
    return reply


async def contain_press_errors(call: PressCall, call_next: PressNext) -> Reply:
    """Whatever breaks inside, the one who pressed gets one sentence and the process keeps serving."""
    try:
        return await call_next(call)
    except Exception:
        what = "button" if _is_button(call.click) else call.click.kind
        log.error("%s %s failed:\n%s", what, call.spec.id if call.spec else "?", redact_cut(traceback.format_exc(), 8000))
        if _is_event(call.click):
            return Reply.refusal(EVENT_FAILED, Outcome.error)
        return Reply.refusal(FAILED if _is_button(call.click) else FORM_FAILED, Outcome.error)


async def find_interaction(call: PressCall, call_next: PressNext) -> Reply:
    spec = call.known.get(call.click.target)
    # A spec answers only the kinds it lists: a button id is never taken for a modal's callback_id.
    call.spec = spec if spec is not None and call.click.kind in spec.kinds else None
    if call.spec is None:
        call.verdict = "unknown"
        if _is_event(call.click):
            return Reply.refusal(UNKNOWN_EVENT)
        return Reply.refusal(UNKNOWN_BUTTON if _is_button(call.click) else UNKNOWN_FORM)
    return await call_next(call)


async def authorize_press(call: PressCall, call_next: PressNext) -> Reply:
    spec = call.spec
    if not spec.public:
        needed = role_needed(await call.ctx.roles.roles_of(call.click.user_id), spec.roles)
        if needed:
            call.verdict = "refused"
            verb = "press this button" if _is_button(call.click) else "trigger this" if _is_event(call.click) else "use this form"
            sentence = f"You are not allowed to {verb}: it needs {needed} in app.yaml; nothing was done."
            return Reply.refusal(sentence, Outcome.denied)
    return await call_next(call)


# audit_press sits outside contain_press_errors so that failures are on record too.
PRESS_MIDDLEWARE: list[PressMiddleware] = [count_press, audit_press, contain_press_errors, find_interaction, authorize_press]
