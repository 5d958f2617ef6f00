"""Which scheduled job the running code serves, set by the loop around each handler (and inherited
by the tasks it starts): what a job posts can then say what it is (the console heads a page
"── page · INC-12 · 03:14 UTC ──"), without every handler passing it along."""
from __future__ import annotations

from contextvars import ContextVar

from bot.schedule.models import Job

current_job: ContextVar[Job | None] = ContextVar("current_job", default=None)
