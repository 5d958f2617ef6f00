"""supervisor_logs: the logs kind, for services on supervisord only: stdout and stderr of the program or of each process of the group."""
from __future__ import annotations

from bot.action.kinds.logs import Logs


class SupervisorLogs(Logs):
    name = "supervisor_logs"
    platforms = ("supervisor",)


KIND = SupervisorLogs()
