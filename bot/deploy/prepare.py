"""The steps before anything changes (runbook 002): the backup, the image pull, the migration job.

Each is planned into a step dict (the plan hashes it) and run into a StepResult. A failure here
stops the deploy with nothing on the service changed; the sentence says so.
"""
from __future__ import annotations

from bot.action.kinds.base import RunContext, StepResult
from bot.backup import service as backups
from bot.backup import views as backup_views
from bot.backup.errors import BackupError
from bot.deploy import migration

UNCHANGED = "nothing on the service was changed"


def backup_step(database: str) -> dict:
    return {"step": "backup", "database": database}


def pull_step(image: str, timeout: float, image_id: str | None) -> dict:
    """The run-time pull; with `image_id` (pulled when planning, for the migration's dry run) the tag must still be that image."""
    step = {"step": "pull", "image": image, "timeout": timeout}
    return {**step, "image_id": image_id} if image_id else step


def describe(step: dict) -> str | None:
    if step["step"] == "backup":
        return f"back up database {step['database']} (pg_dump, verified); a failed backup stops the deploy before anything changes"
    if step["step"] == "migrate":
        return migration.describe(step)
    if step["step"] == "pull":
        same = f" (it must still be image {step['image_id'][7:19]}, the one approved)" if step.get("image_id") else ""
        return f"pull {step['image']} from its registry{same}"
    return None


async def run(ctx: RunContext, step: dict, images, deployment: int) -> tuple[StepResult, str | None]:
    """One preparing step; (its result, the pulled image's id for a pull)."""
    if step["step"] == "backup":
        return await _backup(ctx, step["database"]), None
    if step["step"] == "migrate":
        return await migration.run(ctx, step, deployment, UNCHANGED), None
    from bot.docker_engine import DockerUnavailable

    try:
        image_id = await images.pull(step["image"], step["timeout"])
    except DockerUnavailable as exc:
        return StepResult(step["image"], False, f"{exc}; {UNCHANGED}."), None
    if step.get("image_id") and image_id != step["image_id"]:
        return StepResult(step["image"], False, f"{step['image']} is now image {image_id[7:19]}, not the {step['image_id'][7:19]} that was approved "
                                                f"(the tag was pushed again); {UNCHANGED}."), None
    return StepResult(step["image"], True, f"pulled {step['image']} ({image_id[7:19]})"), image_id


async def _backup(ctx: RunContext, database: str) -> StepResult:
    try:
        backup = await backups.make_backup(ctx.bot, database, made_by=ctx.requested_by, label="before a deploy")
    except BackupError as exc:
        await ctx.audit_step("failed", f"{database}: backup before the deploy: {exc}")
        return StepResult(database, False, f"{database}: the backup failed ({str(exc).rstrip('.')}); {UNCHANGED}.")
    except Exception as exc:  # a full disk, a lost engine: said, not raised into the flow
        await ctx.audit_step("failed", f"{database}: backup before the deploy: {exc.__class__.__name__}")
        return StepResult(database, False, f"{database}: the backup failed ({exc.__class__.__name__}); {UNCHANGED}.")
    if not backup.verified:
        await ctx.audit_step("failed", f"{database}: backup #{backup.id} did not verify: {backup.verify_error}")
        return StepResult(database, False, f"{backup_views.done_line(backup)}; {UNCHANGED}.")
    await ctx.audit_step("verified", f"{database}: backup #{backup.id} before the deploy")
    return StepResult(database, True, backup_views.done_line(backup))

