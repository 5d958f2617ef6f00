"""supervisor_restart: the restart kind, for services on supervisord only (`supervisorctl restart laravel-worker:*`).

A program is stopped and started (stopProcess/startProcess), a group all together
(stopProcessGroup/startProcessGroup: group:* semantics); bot/targets/supervisor.py does it.
"""
from __future__ import annotations

from bot.action.kinds.restart import Restart


class SupervisorRestart(Restart):
    name = "supervisor_restart"
    platforms = ("supervisor",)


KIND = SupervisorRestart()
