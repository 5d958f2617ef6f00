"""Every action kind, by the name app.yaml's `kind:` uses; the flow looks them up here and nowhere else."""
from __future__ import annotations

from bot.action.kinds import (
    docker_exec,
    docker_logs,
    docker_restart,
    docker_stop,
    http,
    job,
    pg_backup,
    pg_restore,
    pg_terminate,
    pg_vacuum,
    redis_delete_pattern,
    redis_flush,
)
from bot.action.kinds.base import ActionKind

KINDS: dict[str, ActionKind] = {
    kind.name: kind
    for kind in (
        docker_restart.KIND,
        docker_stop.STOP,
        docker_stop.START,
        docker_logs.KIND,
        docker_exec.KIND,
        http.KIND,
        job.KIND,
        pg_backup.KIND,
        pg_restore.KIND,
        pg_terminate.KIND,
        pg_vacuum.KIND,
        redis_delete_pattern.KIND,
        redis_flush.KIND,
    )
}


def kind_of(spec) -> ActionKind:
    return KINDS[spec.kind]
