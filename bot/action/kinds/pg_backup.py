"""pg_backup: dump a database (custom format), verify the file, apply retention (service.apply_retention).

One plan covers one database, or every database app.yaml declares when none is named
(/backup with no argument): three steps per database, in order: dump, verify, retention.
A database whose dump or verification fails gets no retention (nothing is deleted on a
failed run) and the next database is still backed up; the report lists each.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.backup import service as backups
from bot.backup import views
from bot.backup.dump import BackupError
from bot.config.types import format_duration

MAX_LABEL = 200


class PgBackup(ActionKind):
    name = "pg_backup"
    verb = "back up"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "database": ParamType("database", "The database to dump; every declared database when omitted.", required=False),
            "label": ParamType("text", "A note kept with the backup (\"before migration 42\").", required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        config = ctx.config
        database, label = params.get("database"), params.get("label")
        if label is not None and len(label) > MAX_LABEL:
            raise PlanError(f"The label is too long (at most {MAX_LABEL} characters).")
        if database is not None and database not in config.databases:
            raise PlanError(f"Unknown database '{database[:60]}'. Known: {', '.join(sorted(config.databases)) or 'none'}.")
        names = [database] if database is not None else sorted(config.databases)
        if not names:
            raise PlanError("app.yaml declares no databases, so there is nothing to back up.")
        retention = config.backups.retention
        folder = backups.destination(config)
        steps: list[dict] = []
        for name in names:
            container = config.databases[name].container
            steps.append({"step": "dump", "database": name, "via": f"container {container}" if container else "local client", "directory": folder})
            steps.append({"step": "verify", "database": name})
            steps.append(
                {
                    "step": "retention",
                    "database": name,
                    "daily_days": retention.daily_days,
                    "weekly_weeks": retention.weekly_weeks,
                    "max_age_days": retention.max_age_days,
                    "min_age": retention.min_age,
                }
            )
        return Plan(
            action=action,
            kind=self.name,
            subject=database or "all databases",
            params={"database": database, "label": label},
            steps=steps,
            targets=[Target("database", name) for name in names],
        )

    def describe(self, plan: Plan) -> list[str]:
        lines = []
        for step in plan.steps:
            db = step["database"]
            if step["step"] == "dump":
                lines.append(f"{db}: pg_dump --format=custom ({step['via']}) to {step['directory']}/{db}_<UTC time>_<6 hex>.dump, streamed and hashed (SHA-256)")
            elif step["step"] == "verify":
                lines.append(f"{db}: verify the file: pg_dump exit 0, PGDMP header, size, pg_restore --list")
            else:
                lines.append(
                    f"{db}: retention: keep the newest of each day for {step['daily_days']} days and of each week for "
                    f"{step['weekly_weeks']} weeks, delete anything older than {step['max_age_days']} days; never a backup an open "
                    f"/restore request names, the newest verified backup, or one younger than {format_duration(step.get('min_age', 86400.0))}"
                )
        return lines

    def notes(self, plan: Plan) -> list[str]:
        return [f"Label: {plan.params['label']}"] if plan.params.get("label") else []

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        names = [step["database"] for step in plan.steps if step["step"] == "dump"]
        for name in names:
            report.steps.append(await self._one(ctx, spec, plan, name))
        return report

    def max_runtime(self, spec, plan: Plan) -> float:
        # Each database's dump (verification and retention included) runs under the action's timeout.
        return spec.timeout * max(1, sum(1 for step in plan.steps if step["step"] == "dump"))

    async def _one(self, ctx: RunContext, spec, plan: Plan, name: str) -> StepResult:
        async def progress(size: int, elapsed: float) -> None:
            await ctx.progress(views.progress_line(name, size, elapsed))

        try:
            backup = await backups.make_backup(
                ctx.bot,
                name,
                made_by=ctx.requested_by,
                label=plan.params.get("label"),
                progress=progress,
                timeout=getattr(spec, "timeout", None),
            )
        except BackupError as exc:
            await ctx.audit_step("failed", f"{name}: dump: {exc}")
            return StepResult(name, False, f"{name}: {exc}")
        except Exception as exc:  # a full disk, a lost engine: said, not raised into the flow
            await ctx.audit_step("failed", f"{name}: dump: {exc.__class__.__name__}: {str(exc)[:200]}")
            return StepResult(name, False, f"{name}: the dump failed ({exc.__class__.__name__}: {str(exc)[:200]}); no backup was kept.")
        await ctx.audit_step("dumped", f"{name}: backup #{backup.id} {backup.file_name}, {backup.size} bytes, sha256 {backup.sha256}")
        if not backup.verified:
            await ctx.audit_step("failed", f"{name}: backup #{backup.id} did not verify: {backup.verify_error}")
            return StepResult(name, False, views.done_line(backup) + "; retention skipped")
        await ctx.audit_step("verified", f"{name}: backup #{backup.id}")
        try:
            kept = await backups.apply_retention(ctx.bot, name)
        except Exception as exc:
            await ctx.audit_step("failed", f"{name}: retention: {exc.__class__.__name__}: {str(exc)[:200]}")
            return StepResult(name, False, views.done_line(backup) + f"; retention failed ({exc.__class__.__name__})")
        deleted = ", ".join(f"#{b.id}" for b in kept.delete)
        await ctx.audit_step("retention", f"{name}: kept {len(kept.keep)}, deleted {len(kept.delete)}{': ' + deleted if deleted else ''}")
        tail = f"; retention deleted {len(kept.delete)} ({deleted})" if kept.delete else "; retention deleted nothing"
        if kept.unseen:
            tail += f", and left {len(kept.unseen)} whose file this replica cannot see"
        return StepResult(name, True, views.done_line(backup) + tail)


KIND = PgBackup()
