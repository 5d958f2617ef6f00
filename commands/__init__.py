"""One module per slash command; ALL is what the bot registers, in /help order."""
from commands import audit, backup, cache, db, deploy, health, help, incident, job, logs, maintenance, oncall, restart, restore, rollback, run, schedule

ALL = [incident.COMMAND, health.COMMAND, restart.COMMAND, deploy.COMMAND, rollback.COMMAND, logs.COMMAND, run.COMMAND, job.COMMAND, db.COMMAND, backup.COMMAND, restore.COMMAND, cache.COMMAND, audit.COMMAND, oncall.COMMAND, schedule.COMMAND, maintenance.COMMAND, help.COMMAND]
