"""After a successful container deploy or rollback, the kept images /rollback no longer reaches go.

keep() (bot/deploy/container.py) tags each replaced image opsbot-kept/<service>:<short id>, so a
rollback needs no registry; without this step every deploy would leave one more image on the
Engine's disk for good. The service's `deploy.keep_images` newest earlier versions keep their
images, found in the deployment record as /rollback finds them (record.image_of), and so do the
image the service runs now, the one this deploy replaced (a plain /rollback's target) and any image
a container uses. Only images this service's own record names are judged: another opsbot (or a test
run) on the same Engine may keep images under the same service name. Of an image that goes, its
opsbot-kept/<service> tag and its tags and digests in the service's deploy repository (which /deploy
pulled) are removed, so the Engine frees it; an image another repository still names stays.
"""
from __future__ import annotations

from bot.action.kinds.base import RunContext, StepResult
from bot.deploy import service as record
from bot.docker_engine import DockerUnavailable
from bot.docker_images import ImageGateway

HISTORY_ROWS = 1000  # the newest deployment rows read for the service's versions
AT_MOST = 25  # images freed after one deploy: a backlog (a first deploy with pruning) goes over a few
TIMEOUT = 30.0  # seconds of removals, checked between images; the deploy has succeeded and must not hang on its cleanup


async def judged_images(db, service: str, step: dict, running: str, keep: int) -> tuple[set[str], set[str]] | None:
    """(the image ids this service's record names, those of them whose images stay); None when the
    record read is too short to tell (nothing goes)."""
    ran, cut = await record.versions_ran(db, service, HISTORY_ROWS)
    earlier: list[str] = []
    for version, _ in ran:
        if version != step["version"] and version not in earlier:  # the version it runs now is not a rollback's
            earlier.append(version)
    if len(earlier) < keep and cut:
        return None
    wanted = {running, step["from_image"]}
    for version in earlier[:keep]:
        image = await record.image_of(db, service, version)
        if image:
            wanted.add(image)
    return {image for _, image in ran}, wanted


async def prune(ctx: RunContext, images: ImageGateway, step: dict, result: StepResult) -> None:
    """Remove the service's kept tags beyond keep_images; said in `result`'s summary, never failing it."""
    service = step["service"]
    declared = ctx.config.services.get(service)
    deploy = declared.deploy if declared is not None else None
    if deploy is None:
        return  # no longer declared: nothing says how many to keep
    try:
        running = (await ctx.bot.checks.docker.inspect(step["container"]) or {}).get("Image")
        if not running:
            return  # what runs now is unknown: everything stays
        judged = await judged_images(ctx.bot.db, service, step, running, deploy.keep_images)
        if judged is None:
            return
        recorded, wanted = judged
        removed, problems = await images.prune_kept(service, deploy.image, recorded, wanted, AT_MOST, TIMEOUT)
    except DockerUnavailable as exc:
        result.summary += f"; old images were not pruned ({exc})"
        return
    except Exception as exc:  # the record unreadable (a database blip): the deploy stands, the next one prunes
        result.summary += f"; old images were not pruned ({exc.__class__.__name__})"
        return
    if removed:
        result.summary += f"; pruned {removed} old image{'' if removed == 1 else 's'}"
    if problems:
        result.summary += f"; {len(problems)} old image{'' if len(problems) == 1 else 's'} could not be pruned ({'; '.join(problems[:2])})"
