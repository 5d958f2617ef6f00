"""pg_restore: put a backup back, in the runbook's order (runbooks 002 and 003).

  1. safety backup of the target's current state (skipped for a scratch database that does not exist yet)
  2. stop the database's dependents (their containers; not for --into a scratch database)
  3. restore: the backup's checksum first, then pg_restore in one transaction
     (--clean --if-exists over an existing database; a new scratch database is created)
  4. start the dependents again
  5. their health checks must pass (spec.verify: deadline and interval)
  6. post the result

--clean drops and recreates the objects the archive holds: their rows are the backup's.
Objects created after the backup (a new table) are not in the archive and stay.

Every step writes an audit row (ctx.audit_step). A failure stops there, and the report
says exactly where things stand: which step, whether the dependents are stopped, which
safety backup holds the state before. Stopped dependents are left stopped on a failure:
starting them against a database in an unknown state is a human decision.
"""
from __future__ import annotations

import asyncio
import time

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.backup import dump as pg
from bot.backup import service as backups
from bot.backup import views
from bot.backup.dump import BackupError, StillRunning
from bot.backup.restore import MAX_SCRATCH_NAME, check_database_name, database_exists, declared_collision, is_scratch, restore_backup
from bot.docker_engine import DockerUnavailable

INTO_PATTERN = rf"[A-Za-z_][A-Za-z0-9_]{{0,{MAX_SCRATCH_NAME - 1}}}"
STEP_NAMES = {
    "safety_backup": "safety backup",
    "stop": "stop dependents",
    "restore": "restore",
    "start": "start dependents",
    "health": "health of dependents",
    "report": "report",
}


class PgRestore(ActionKind):
    name = "pg_restore"
    verb = "restore"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "backup": ParamType("int", "The backup's id (/backup list).", min=1, max=2**31 - 1),
            "into": ParamType(
                "pattern", "Restore into this scratch database instead (created when missing).", pattern=INTO_PATTERN, required=False
            ),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        config = ctx.config
        backup_id, into = int(params["backup"]), params.get("into")
        try:
            backup = await backups.get_backup(ctx.bot.db, backup_id)
        except backups.NoSuchBackup as exc:
            raise PlanError(str(exc)) from None
        if backup.deleted_at is not None:
            raise PlanError(f"Backup #{backup_id}'s file was deleted by retention on {backup.deleted_at:%Y-%m-%d}; /backup list shows what is left.")
        if backup.database not in config.databases:
            raise PlanError(f"Backup #{backup_id} is of database {backup.database}, which app.yaml does not declare, so there is nowhere to restore it.")
        if not backup.verified:
            raise PlanError(f"Backup #{backup_id} is not verified ({backup.verify_error or 'never checked'}); run /backup verify {backup_id} first.")
        try:
            conn = pg.connection(config, backup.database)
        except BackupError as exc:
            raise PlanError(f"{str(exc)[:1].upper()}{str(exc)[1:].rstrip('.')}; nothing was requested.") from None
        if into is not None:
            try:
                check_database_name(into)
            except ValueError as exc:
                raise PlanError(f"--into {into[:60]}: {exc}.") from None
            collision = declared_collision(config, into)
            if collision:
                hint = " (leave --into out to restore over it)" if into.casefold() in (backup.database.casefold(), conn.dbname.casefold()) else ""
                raise PlanError(f"--into {into}: {collision}, not a scratch database{hint}; nothing was requested.")
        try:
            into_exists = await database_exists(conn, into) if into else True
            if into and into_exists and not await is_scratch(conn, into):
                raise PlanError(
                    f"Database {into} exists and is not a scratch database an earlier --into made, so /restore will not "
                    "overwrite it; give --into a new name. Nothing was requested."
                )
        except BackupError as exc:
            raise PlanError(f"{exc}; nothing was requested.") from None
        database = config.databases[backup.database]
        dependents = [] if into else list(database.dependents)
        containers = {s: config.services[s].container for s in dependents if config.services[s].container}
        steps: list[dict] = []
        if into_exists:
            # A scratch database's safety backup is recorded as scratch:<name>, never as a declared database's.
            steps.append({"step": "safety_backup", "database": backups.scratch_key(into) if into else backup.database, "dbname": into or conn.dbname})
        if containers:
            steps.append({"step": "stop", "services": list(containers), "containers": containers, "timeout": 30.0})
        steps.append(
            {
                "step": "restore",
                "backup": backup.id,
                "file": backup.file_name,
                "sha256": backup.sha256,
                "source": backup.database,
                "into": into or conn.dbname,
                "scratch": into is not None,
                "create": not into_exists,
            }
        )
        if containers:
            steps.append({"step": "start", "services": list(containers), "containers": containers})
        if dependents:
            steps.append({"step": "health", "services": dependents})
        steps.append({"step": "report"})
        return Plan(
            action=action,
            kind=self.name,
            subject=into or backup.database,
            params={"backup": backup.id, "into": into},
            steps=steps,
            targets=[Target("database", backup.database)] + [Target("service", s) for s in dependents],
            verify=spec.verify.model_dump() if getattr(spec, "verify", None) else None,
            confirm=(into or backup.database) if spec.approval.confirm else None,
            facts={
                "made": backup.created_at.isoformat(),
                "size": backup.size,
                "made_by": backup.made_by,
                "label": backup.label,
                "skipped": [s for s in dependents if s not in containers],
            },
        )

    def describe(self, plan: Plan) -> list[str]:
        lines = []
        for step in plan.steps:
            kind = step["step"]
            if kind == "safety_backup":
                lines.append(f"safety backup: pg_dump of {step['dbname']} as it is now, verified, before anything changes")
            elif kind == "stop":
                lines.append(f"stop the dependents: {', '.join(step['services'])} (docker stop, {step['timeout']:g} s grace)")
            elif kind == "restore":
                where = f"scratch database {step['into']}" + (" (created now)" if step["create"] else " (overwritten: --clean)")
                if not step["scratch"]:
                    where = f"{step['source']} (database {step['into']}, overwritten: --clean --if-exists)"
                lines.append(
                    f"restore backup #{step['backup']} {step['file']} (sha256 {step['sha256'][:12]} checked first) into {where}, "
                    "pg_restore --no-owner in one transaction"
                )
            elif kind == "start":
                lines.append(f"start the dependents: {', '.join(step['services'])}")
            elif kind == "health":
                deadline = f" (up to {plan.verify['deadline']:g} s)" if plan.verify else ""
                lines.append(f"run the checks of {', '.join(step['services'])} until they pass{deadline}")
            else:
                lines.append("post the result here")
        return lines

    def notes(self, plan: Plan) -> list[str]:
        facts = plan.facts
        notes = []
        if facts.get("made"):
            label = f" \"{facts['label']}\"" if facts.get("label") else ""
            notes.append(f"Backup #{plan.params['backup']}{label}: made {facts['made'][:16].replace('T', ' ')} UTC, {views.human_size(facts.get('size', 0))}.")
        if facts.get("skipped"):
            notes.append(f"Not stopped (no container in app.yaml): {', '.join(facts['skipped'])}.")
        return notes

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        state = {"stopped": [], "safety": None, "restored": False, "running": None}
        total = len(plan.steps)
        for index, step in enumerate(plan.steps, 1):
            kind = step["step"]
            await ctx.progress(f"step {index}/{total}: {STEP_NAMES[kind]}")
            try:
                result = await getattr(self, f"_{kind}")(ctx, spec, plan, step, state, report)
            except Exception as exc:  # anything unexpected is still a failure at this step, said plainly
                result = StepResult(STEP_NAMES[kind], False, f"{STEP_NAMES[kind]}: {exc.__class__.__name__}: {str(exc)[:200]}")
            if not result.ok:
                where = _where_things_stand(plan, step, state)
                result.summary = f"Restore failed at step {index} ({STEP_NAMES[kind]}): {result.summary}. {where}"
                await ctx.audit_step("failed", result.summary)
                report.steps.append(result)
                return report
            await ctx.audit_step(kind, result.summary)
            report.steps.append(result)
        return report

    # ---------------------------------------------------------------- steps

    def max_runtime(self, spec, plan: Plan) -> float:
        # The safety backup and the restore each run under the action's timeout; stopping, starting
        # and the dependents' health checks take minutes at most.
        return 2 * spec.timeout + (plan.verify["deadline"] if plan.verify else 0.0) + 600

    async def _safety_backup(self, ctx, spec, plan, step, state, report) -> StepResult:
        restore_step = next(s for s in plan.steps if s["step"] == "restore")
        try:
            source = pg.connection(ctx.config, restore_step["source"])
        except BackupError as exc:
            return StepResult("safety backup", False, str(exc).rstrip("."))
        conn = source if step["dbname"] == source.dbname else source.with_dbname(step["dbname"], step["database"])

        async def progress(size: int, elapsed: float) -> None:
            await ctx.progress(views.progress_line(f"safety backup of {step['dbname']}", size, elapsed))

        try:
            backup = await backups.make_backup(
                ctx.bot,
                step["database"],
                made_by=ctx.requested_by,
                label=f"safety before restoring #{plan.params['backup']}"[:200],
                progress=progress,
                timeout=getattr(spec, "timeout", None),
                conn=conn,
            )
        except StillRunning as exc:
            state["running"] = exc.container
            return StepResult("safety backup", False, str(exc).rstrip("."))
        except BackupError as exc:
            return StepResult("safety backup", False, str(exc).rstrip("."))
        if not backup.verified:
            return StepResult("safety backup", False, f"safety backup #{backup.id} did not verify ({backup.verify_error})")
        state["safety"] = backup.id
        return StepResult("safety backup", True, f"Safety backup #{backup.id} of {step['dbname']}: {backup.file_name}, {views.human_size(backup.size)}, verified.")

    async def _stop(self, ctx, spec, plan, step, state, report) -> StepResult:
        # Retention (/backup retention) may have deleted the backup while the safety backup ran: then
        # stop nothing, rather than leave the dependents stopped with nothing to restore.
        restore_step = next(s for s in plan.steps if s["step"] == "restore")
        backup = await backups.get_backup(ctx.bot.db, restore_step["backup"])
        if backup.deleted_at is not None:
            return StepResult("stop dependents", False, f"backup #{backup.id}'s file was deleted by retention meanwhile, so nothing was stopped")
        hidden = backups.unseen(ctx.config, backup)
        if hidden:
            return StepResult("stop dependents", False, f"backup #{backup.id}: {hidden}, so nothing was stopped")
        docker = ctx.bot.checks.docker
        for service in step["services"]:
            try:
                await docker.stop(step["containers"][service], step["timeout"])
            except DockerUnavailable as exc:
                return StepResult("stop dependents", False, f"stopping {service} failed ({exc})")
            state["stopped"].append(service)
        return StepResult("stop dependents", True, f"Stopped {', '.join(step['services'])}.")

    async def _restore(self, ctx, spec, plan, step, state, report) -> StepResult:
        backup = await backups.get_backup(ctx.bot.db, step["backup"])
        started = time.perf_counter()

        async def progress(size: int, elapsed: float) -> None:
            await ctx.progress(f"restoring backup #{backup.id} into {step['into']}: {elapsed:.0f} s")

        try:
            await restore_backup(
                ctx.bot,
                backup,
                into=step["into"] if step["scratch"] else None,
                create=step["create"],
                progress=progress,
                timeout=getattr(spec, "timeout", None),
            )
        except StillRunning as exc:
            state["running"] = exc.container
            return StepResult("restore", False, str(exc).rstrip("."))
        except BackupError as exc:
            return StepResult("restore", False, str(exc).rstrip("."))
        except ValueError as exc:
            return StepResult("restore", False, str(exc))
        state["restored"] = True
        took = time.perf_counter() - started
        return StepResult("restore", True, f"Restored backup #{backup.id} ({backup.file_name}) into {step['into']} in {took:.1f} s.")

    async def _start(self, ctx, spec, plan, step, state, report) -> StepResult:
        docker = ctx.bot.checks.docker
        for service in step["services"]:
            try:
                await docker.start(step["containers"][service])
            except DockerUnavailable as exc:
                return StepResult("start dependents", False, f"starting {service} failed ({exc})")
            state["stopped"].remove(service)
        return StepResult("start dependents", True, f"Started {', '.join(step['services'])}.")

    async def _health(self, ctx, spec, plan, step, state, report) -> StepResult:
        from bot.check.service import record_run

        verify = plan.verify or {"deadline": 60.0, "interval": 2.0}
        deadline = time.monotonic() + verify["deadline"]
        started = time.perf_counter()
        while True:
            results = await ctx.bot.checks.run(ctx.config, step["services"], metrics=False)
            failing = [r for r in results if r.status != "ok"]
            if not failing or time.monotonic() >= deadline:
                await record_run(ctx.bot.db, results, (time.perf_counter() - started) * 1000, trigger="verify", user=ctx.requested_by, channel=ctx.channel)
                break
            await asyncio.sleep(verify["interval"])
        took = time.perf_counter() - started
        if failing:
            detail = "; ".join(f"{r.service}/{r.check}: {r.detail}" for r in failing[:5])
            return StepResult("health of dependents", False, f"not healthy after {took:.0f} s: {detail}")
        return StepResult("health of dependents", True, f"{', '.join(step['services'])} healthy after {took:.1f} s ({len(results)} checks pass).")

    async def _report(self, ctx, spec, plan, step, state, report) -> StepResult:
        restore_step = next(s for s in plan.steps if s["step"] == "restore")
        safety = f" Safety backup #{state['safety']} holds the state before." if state["safety"] else ""
        return StepResult("report", True, f"Restore of backup #{restore_step['backup']} into {restore_step['into']} done.{safety}")


def _where_things_stand(plan: Plan, failed: dict, state: dict) -> str:
    parts = []
    restore_step = next(s for s in plan.steps if s["step"] == "restore")
    if state["restored"]:
        parts.append(f"database {restore_step['into']} holds backup #{restore_step['backup']}")
    elif state.get("running") and failed["step"] == "restore":
        parts.append(
            f"database {restore_step['into']} may still change: pg_restore may still be running in {state['running']}, check there by hand"
        )
    elif state.get("running"):
        parts.append(f"database {restore_step['into']} was not restored into; the safety pg_dump may still be running in {state['running']}")
    elif failed["step"] == "restore":
        parts.append(f"database {restore_step['into']} is unchanged (pg_restore runs in one transaction)")
    else:
        parts.append(f"database {restore_step['into']} was not touched")
    if state["stopped"]:
        parts.append(f"dependents {', '.join(state['stopped'])} are STOPPED")
    if state["safety"]:
        parts.append(f"safety backup #{state['safety']} holds the state before")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


KIND = PgRestore()
