"""Reply -> Block Kit, inside Slack's limits (docs: 50 blocks, 3,000 characters a section);
Form -> a modal (`form_view`).

This is the one place where text is escaped for Slack, for every Web API argument that
carries text; callers pass raw text and pick the field's kind (see "Outbound text by field
kind" below). Every string a Reply carries in mrkdwn (sections, context, the message text)
goes through `to_mrkdwn`, so only the bot's own `Mention`s become live markup. mrkdwn objects
are `verbatim`, so Slack does not turn a plain `@channel` or a bare URL in echoed text into a
mention or a link either. Headers, button labels and everything in a modal are plain_text
(`plain`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bot.pipeline.forms import Form, FormField
from bot.pipeline.markup import escape, to_mrkdwn
from bot.pipeline.reply import Actions, Context, Header, Preformatted, Reply, Section

# --- Outbound text by field kind ------------------------------------------------------------
# Message text (chat.* `text`, mrkdwn objects, a file's initial_comment) and a channel's topic or
# purpose: Slack parses it for mentions and links and shows &amp; &lt; &gt; as & < >, so escaping
# once means those three entities (`to_mrkdwn`; only the bot's own Mentions stay live). The
# topic counts as message text: Slack announces it in the channel ("set the channel topic: …").
# plain_text objects (headers, buttons, a modal's title, labels, hints and options) and file or
# bookmark titles: Slack shows every character as given and decodes no entity, so `&lt;` would
# read "&lt;" (escaped twice, in effect). There escaping once means `plain`: each `<` keeps its
# place and gets an invisible WORD JOINER after it, so no `<!…>`, `<@…>`, `<#…>` or `<http…|…>`
# can form, whichever surface ends up parsing the string (a notification, a copy into mrkdwn).
WORD_JOINER = "\u2060"
MAX_TOPIC = 250  # conversations.setTopic and setPurpose refuse more (too_long)


def plain(text: str) -> str:
    """Text for a plain_text object, a file's or a bookmark's title: reads as typed, cannot become markup."""
    return text.replace("<", "<" + WORD_JOINER)


def channel_topic(text: str) -> str:
    """A channel's topic or purpose: escaped as message text, then cut to Slack's 250 characters
    without splitting an entity (an escaped title is longer than the title)."""
    return _clip(to_mrkdwn(text), MAX_TOPIC)


MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_TEXT = 4000  # Slack truncates past 40,000; a phone screen gives up long before
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,31}$")


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict]
    # Set when the reply did not fit in one message or carries a file: uploaded alongside.
    attachment: str | None = None
    filename: str | None = None


def to_slack(reply: Reply) -> SlackMessage:
    blocks: list[dict] = []
    for block in reply.blocks:
        if isinstance(block, Header):
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": _clip(plain(block.text), MAX_HEADER), "emoji": True}})
        elif isinstance(block, Section):
            for chunk in split_text(to_mrkdwn(block.text), MAX_SECTION):
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": chunk}})
        elif isinstance(block, Preformatted):
            # Raw output (logs) is never mrkdwn: escaped, a log line cannot ping (<!channel>) or link (<url|text>).
            for chunk in split_text(escape(block.text.replace("```", "'''")), MAX_SECTION - 8):
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": f"```{chunk}```"}})
        elif isinstance(block, Context):
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "verbatim": True, "text": _clip(to_mrkdwn(block.text), MAX_SECTION)}]})
        elif isinstance(block, Actions):
            blocks.append({"type": "actions", "elements": [_button(b) for b in block.buttons[:25]]})
    attachment, filename = (reply.file.content, reply.file.filename) if reply.file else (None, None)
    if len(blocks) > MAX_BLOCKS:
        attachment = attachment or reply.text
        blocks = blocks[: MAX_BLOCKS - 1] + [
            {"type": "context", "elements": [{"type": "mrkdwn", "verbatim": True, "text": "Too long for one message: the full output is attached as a file."}]}
        ]
    return SlackMessage(text=_clip(to_mrkdwn(reply.text), MAX_TEXT), blocks=blocks, attachment=attachment, filename=filename)


def _button(button) -> dict:
    element = {
        "type": "button",
        "text": {"type": "plain_text", "text": _clip(plain(button.label), 75)},
        "action_id": button.action_id,
        "value": button.value[:2000],
    }
    if button.style:
        element["style"] = button.style
    return element


def split_text(text: str, limit: int) -> list[str]:
    """Split on line boundaries into chunks of at most `limit` characters (hard-split longer lines)."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            head = _entity_safe(line, limit) or line[:limit]
            chunks.append(head)
            line = line[len(head):]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current or not chunks:
        chunks.append(current or " ")
    return chunks


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else _entity_safe(text, limit - 1) + "…"


def _entity_safe(text: str, cut: int) -> str:
    """text[:cut], backed off so the cut does not split an entity (&amp;) or a mention (<@U123>)."""
    head = text[:cut]
    for opener, closer in (("&", ";"), ("<", ">")):
        start = head.rfind(opener, max(0, cut - 40))
        if start != -1 and closer not in head[start:]:
            head = head[:start]
    return head


MAX_MODAL_TEXT = 24  # a modal's title, submit and close
MAX_LABEL = 2000  # an input's label and hint
MAX_OPTION_TEXT = 75
MAX_OPTIONS = 100
MAX_INPUT = 3000
FORM_CLOSE = "Cancel"


def form_view(form: Form) -> dict:
    """A Form as a Slack modal (views.open): one input block per field, inside Slack's limits.

    Text is plain_text (`plain`: Slack does not parse it, and no markup can form in it), clipped to its limit;
    a select keeps its first 100 options. Each input's action_id is its block_id, so the
    submission's view.state.values[block_id] holds it.
    """
    view = {
        "type": "modal",
        "callback_id": form.callback_id,
        "title": _plain(form.title, MAX_MODAL_TEXT),
        "submit": _plain(form.submit, MAX_MODAL_TEXT),
        "close": _plain(FORM_CLOSE, MAX_MODAL_TEXT),
        "blocks": [_input(field) for field in form.fields],
    }
    if form.metadata:
        view["private_metadata"] = form.metadata  # Form refuses more than 3,000 characters
    return view


def _input(field: FormField) -> dict:
    block = {"type": "input", "block_id": field.block_id, "label": _plain(field.label, MAX_LABEL), "optional": field.optional}
    if field.hint.strip():
        block["hint"] = _plain(field.hint, MAX_LABEL)
    element: dict = {"action_id": field.block_id}
    if field.kind in ("text", "multiline"):
        element["type"] = "plain_text_input"
        element["multiline"] = field.kind == "multiline"
        limit = field.max_length or MAX_INPUT
        element["max_length"] = limit
        if field.initial:
            element["initial_value"] = field.initial[:limit]
    elif field.kind in ("select", "multi_select"):
        options = [_option(value, label) for value, label in field.options[:MAX_OPTIONS]]
        element["type"] = "static_select" if field.kind == "select" else "multi_static_select"
        element["options"] = options
        chosen = {field.initial} if field.kind == "select" else set(field.initial.split(","))
        initial = [option for option in options if option["value"] in chosen]
        if initial and field.kind == "select":
            element["initial_option"] = initial[0]
        elif initial:
            element["initial_options"] = initial
    else:  # user
        element["type"] = "users_select"
        if _USER_ID.fullmatch(field.initial):
            element["initial_user"] = field.initial
    block["element"] = element
    return block


def _option(value: str, label: str) -> dict:
    return {"text": _plain(label or value, MAX_OPTION_TEXT), "value": value}


def _plain(text: str, limit: int) -> dict:
    """A plain_text object (`plain`): never empty (Slack refuses that), clipped to `limit` with an ellipsis."""
    text = plain(text.strip()) or "-"
    return {"type": "plain_text", "text": text if len(text) <= limit else text[: limit - 1] + "…"}
