"""One module per slash command; ALL is what the bot registers, in /help order."""
from commands import audit, cache, health, help, incident, logs, oncall, restart, run

ALL = [incident.COMMAND, health.COMMAND, restart.COMMAND, logs.COMMAND, run.COMMAND, cache.COMMAND, audit.COMMAND, oncall.COMMAND, help.COMMAND]
