"""systemd_restart: the restart kind, for services on systemd only (`systemctl restart UNIT`).

Manager.RestartUnit with mode "replace", then the job's JobRemoved result, then the service's
checks (bot/targets/systemd.py and the generic restart kind do it).
"""
from __future__ import annotations

from bot.action.kinds.restart import Restart


class SystemdRestart(Restart):
    name = "systemd_restart"
    platforms = ("systemd",)


KIND = SystemdRestart()
