"""A form a handler asks the person to fill in, described without any transport.

Slack shows it as a modal (bot/transport/blocks.py `form_view`, opened by
`Messenger.open_form`); its submission comes back as a Click of kind view_submission whose
`form_value(block_id)` gives each field's input, and whose `metadata` is the form's.
The console has no forms: there `open_form` returns False and the handler answers with a
sentence saying what to type instead.

What the code declares is checked here (a programming error raises ValueError at once);
text that may come from elsewhere (titles, labels, option labels) is clipped to Slack's
limits where the form is drawn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["text", "multiline", "select", "multi_select", "user"]
FIELD_KINDS = frozenset({"text", "multiline", "select", "multi_select", "user"})
MAX_FIELDS = 50  # a modal takes 100 blocks; the Slack edge reads at most 50 inputs of a submission
MAX_METADATA = 3000  # a modal's private_metadata
MAX_INPUT = 3000  # a plain_text_input's max_length
MAX_OPTION_VALUE = 150
_ID = re.compile(r"^[^\x00-\x1f]{1,255}$")  # block_id, callback_id: Slack's 255 characters


@dataclass(frozen=True)
class FormField:
    block_id: str  # the key of its input in the submission (Click.form_value)
    label: str
    kind: FieldKind
    options: tuple[tuple[str, str], ...] = ()  # (value, label), for select and multi_select
    optional: bool = False
    initial: str = ""  # a text, an option's value (values joined with "," for multi_select) or a user id
    max_length: int | None = None  # text and multiline
    hint: str = ""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.block_id):
            raise ValueError(f"form field block_id {self.block_id!r} must be 1..255 printable characters")
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"form field {self.block_id} kind {self.kind!r} is not among {sorted(FIELD_KINDS)}")
        if not self.label.strip():
            raise ValueError(f"form field {self.block_id} needs a label")
        if self.kind in ("select", "multi_select"):
            if not self.options:
                raise ValueError(f"form field {self.block_id} is a {self.kind} without options")
            values = [value for value, _ in self.options]
            if any(not value or len(value) > MAX_OPTION_VALUE for value in values):
                raise ValueError(f"form field {self.block_id} option values must be 1..{MAX_OPTION_VALUE} characters")
            if len(set(values)) != len(values):
                raise ValueError(f"form field {self.block_id} has two options with one value")
        elif self.options:
            raise ValueError(f"form field {self.block_id} is {self.kind}: options are for select and multi_select")
        if self.max_length is not None:
            if self.kind not in ("text", "multiline"):
                raise ValueError(f"form field {self.block_id}: max_length is for text and multiline")
            if not 1 <= self.max_length <= MAX_INPUT:
                raise ValueError(f"form field {self.block_id} max_length must be 1..{MAX_INPUT}")


@dataclass(frozen=True)
class Form:
    callback_id: str  # the InteractionSpec id its submission is declared under (kinds=("view_submission",))
    title: str
    submit: str  # the submit button's label
    fields: tuple[FormField, ...]
    metadata: str = ""  # context for the submission's handler (Click.metadata), at most 3,000 characters

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.callback_id):
            raise ValueError(f"form callback_id {self.callback_id!r} must be 1..255 printable characters")
        if not self.title.strip() or not self.submit.strip():
            raise ValueError(f"form {self.callback_id} needs a title and a submit label")
        if not self.fields or len(self.fields) > MAX_FIELDS:
            raise ValueError(f"form {self.callback_id} must have 1..{MAX_FIELDS} fields")
        block_ids = [f.block_id for f in self.fields]
        if len(set(block_ids)) != len(block_ids):
            raise ValueError(f"form {self.callback_id} has two fields with one block_id")
        if len(self.metadata) > MAX_METADATA:
            raise ValueError(f"form {self.callback_id} metadata is over {MAX_METADATA} characters")
