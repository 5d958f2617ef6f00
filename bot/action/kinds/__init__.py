"""Every action kind, by the name app.yaml's `kind:` uses; the flow looks them up here and nowhere else."""
from __future__ import annotations

from bot.action.kinds import (
    alertmanager_silence,
    deploy,
    docker_exec,
    docker_logs,
    docker_restart,
    docker_stop,
    http,
    job,
    k8s_logs,
    k8s_rollout_restart,
    k8s_rollout_undo,
    k8s_scale,
    logs,
    pg_backup,
    pg_restore,
    pg_terminate,
    pg_vacuum,
    redis_delete_pattern,
    redis_flush,
    restart,
    rollback,
    supervisor_logs,
    supervisor_restart,
    systemd_jobs,
    systemd_logs,
    systemd_restart,
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
        restart.KIND,
        logs.KIND,
        supervisor_restart.KIND,
        supervisor_logs.KIND,
        k8s_rollout_restart.KIND,
        k8s_rollout_undo.KIND,
        k8s_scale.KIND,
        k8s_logs.KIND,
        systemd_restart.KIND,
        systemd_jobs.START,
        systemd_jobs.STOP,
        systemd_jobs.RELOAD,
        systemd_logs.KIND,
        deploy.KIND,
        rollback.KIND,
        alertmanager_silence.KIND,
    )
}


def kind_of(spec) -> ActionKind:
    return KINDS[spec.kind]
