"""One module per slash command; ALL is what the bot registers, in /help order."""
from commands import audit, health, help, logs, restart

ALL = [health.COMMAND, restart.COMMAND, logs.COMMAND, audit.COMMAND, help.COMMAND]
