"""A view_submission's state, flattened: view.state.values -> ((block_id, value), ...).

Slack reports a submitted modal as nested objects, {block_id: {action_id: element state}},
and each element type keeps its input under a different key (a text value, a selected
option, selected options, a selected user, selected users). This reads them, bounded in
blocks, elements, selections and length, into one string a block, in the view's order, and
raises `Malformed` (bot/transport/inbound_fields.py) for a state Slack would not send.
"""
from __future__ import annotations

from bot.transport.inbound_fields import Malformed, _id, _list, _printable_id, _str

MAX_FORM_BLOCKS = 50  # a view_submission's state: blocks read (more is not a form opsbot built)
MAX_FORM_VALUE = 3000  # one block's flattened value (a plain_text_input takes at most 3,000)
MAX_ELEMENTS = 25  # elements in one block's state (an actions block holds at most 25)
MAX_SELECTED = 100  # selected options or users in one element (a select offers at most 100)


def _state_values(view: dict) -> tuple[tuple[str, str], ...]:
    """view.state.values {block_id: {action_id: element state}} -> ((block_id, value), ...), one string a block.

    A block's value is its first element's: an input block holds exactly one.
    """
    state = view.get("state")
    if state is None:
        return ()
    if not isinstance(state, dict):
        raise Malformed("view.state is not an object")
    values = state.get("values")
    if values is None:
        return ()
    if not isinstance(values, dict):
        raise Malformed("view.state.values is not an object")
    if len(values) > MAX_FORM_BLOCKS:
        raise Malformed("view.state.values has too many blocks")
    fields = []
    for block_id, elements in values.items():
        _printable_id(block_id, "block_id")
        if not isinstance(elements, dict) or len(elements) > MAX_ELEMENTS:
            raise Malformed("a block's state is not an object of elements")
        flattened = [_element_value(action_id, element) for action_id, element in elements.items()]
        fields.append((block_id, flattened[0] if flattened else ""))
    return tuple(fields)


def _element_value(action_id: object, element: object) -> str:
    """One element's state as one string; an element of another type, or nothing chosen, is ""."""
    _printable_id(action_id, "action_id")
    if not isinstance(element, dict):
        raise Malformed("an element's state is not an object")
    kind = _str(element, "type", 64)
    if kind == "plain_text_input":
        value = _str(element, "value", MAX_FORM_VALUE, required=False)
    elif kind in ("static_select", "radio_buttons"):
        option = element.get("selected_option")
        value = _option_value(option) if option is not None else ""
    elif kind in ("multi_static_select", "checkboxes"):
        value = ",".join(_option_value(option) for option in _list(element, "selected_options", limit=MAX_SELECTED))
    elif kind == "users_select":
        value = _id(element, "selected_user", required=False)
    elif kind == "multi_users_select":
        value = ",".join(_id({"user": user}, "user") for user in _list(element, "selected_users", limit=MAX_SELECTED))
    else:
        return ""
    if len(value) > MAX_FORM_VALUE:
        raise Malformed("a form value is too long")
    return value


def _option_value(option: object) -> str:
    if not isinstance(option, dict):
        raise Malformed("a selected option is not an object")
    return _str(option, "value", MAX_FORM_VALUE)
