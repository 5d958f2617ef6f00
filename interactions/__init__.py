"""One module per slice's interactions (buttons; later modals, shortcuts, events); ALL is what the bot registers.

Ids are namespaced `<slice>.<verb>`. LEGACY maps ids of buttons on messages posted by older
versions to the interaction that now answers them.
"""
from interactions import action, incident, schedule

ALL = [action.APPROVE, action.DENY, action.WITHDRAW, action.CONFIRM, *incident.ALL, schedule.DETAILS_BUTTON, schedule.TICK_BUTTON]

LEGACY = {"approve": action.APPROVE.id, "deny": action.DENY.id}
