"""Durable scheduling: work promised for later is a row in scheduled_jobs, claimed once across
replicas and run by one loop per process (bot.schedule.loop.Scheduler). Domains register
JobTypes; the composition root (bot.app) builds the Scheduler and starts it."""
from bot.schedule.clock import Clock, ManualClock, SystemClock
from bot.schedule.jobs import JobType
from bot.schedule.loop import Scheduler
from bot.schedule.models import Job, JobState

__all__ = ["Clock", "Job", "JobState", "JobType", "ManualClock", "Scheduler", "SystemClock"]
