"""docker_logs: the logs kind, for container services only (read-only; /logs has the filters)."""
from __future__ import annotations

from bot.action.kinds.logs import Logs


class DockerLogs(Logs):
    name = "docker_logs"
    thing = "container"
    platforms = ("container",)


KIND = DockerLogs()
