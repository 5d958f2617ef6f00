"""One module per slash command; ALL is what the bot registers, in /help order."""
from commands import health, help

ALL = [health.COMMAND, help.COMMAND]
