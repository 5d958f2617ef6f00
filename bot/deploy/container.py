"""A container's deploy or rollback: replace it with one like it from another image, or blue-green.

Replace (runbook 000 section 2.1): the old container is stopped and parked under another name,
the new one is made with everything the old one had (bot/docker_images.py) and verified; on
failure the new one goes and the parked one is started again, so the auto-rollback needs no
registry. Blue-green (section 2.2): the new container starts on the other color's port next to
the old one, is verified there, the switch action moves traffic, the service's checks pass, and
only then the old one stops; on failure before the stop, traffic is switched back and the new
container goes.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp

from bot.action.kinds.base import Plan, PlanContext, PlanError, RunContext, StepResult
from bot.action.kinds.docker_health import container_logs, wait_healthy
from bot.action.params import BadParameter, parse_params
from bot.deploy import pruning
from bot.deploy import service as record
from bot.docker_engine import DockerUnavailable
from bot.docker_images import ImageGateway
from bot.redaction import redact

HEALTH_TIMEOUT = 2.0  # seconds per request to a new color's health_url


async def current(ctx: PlanContext, service: str) -> tuple[str, dict]:
    """The service's container name and inspect document; PlanError unless it exists."""
    container = ctx.config.services[service].container
    try:
        info = await ctx.bot.checks.docker.inspect(container)
    except DockerUnavailable as exc:
        raise PlanError(f"{exc}; nothing was requested.") from None
    if info is None:
        raise PlanError(f"Container {container} of {service} does not exist on the Docker Engine; nothing was requested.")
    return container, info


def tag_of(reference: str, repository: str) -> str | None:
    """`v2` of `registry/app:v2` when it is the declared repository's; None for an image id or another repository."""
    if reference.startswith(repository + ":"):
        return reference[len(repository) + 1:]
    return None


async def version_running(ctx: PlanContext, service: str, info: dict, repository: str) -> str:
    """The version the container runs: its image's tag, or (created from an image id, as deploys do) the
    version of the newest successful deploy that put that image on; else the image's short id."""
    tag = tag_of(info["Config"]["Image"], repository)
    if tag is not None:
        return tag
    last = await record.current(ctx.bot.db, service)
    return last.to_version if last is not None and last.to_image == info["Image"] else f"image {info['Image'][7:19]}"


async def change_step(ctx: PlanContext, service: str, deploy, grace: float, image: str, version: str,
                      from_version: str, container: str, info: dict) -> dict:
    """The step that changes the service: replace, or blue_green when the service declares it."""
    step = {"step": "replace", "service": service, "container": container, "container_id": info["Id"], "from_image": info["Image"],
            "from_version": from_version, "image": image, "version": version, "grace": grace}
    if deploy.blue_green is None:
        return step
    bg = deploy.blue_green
    env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
    ports = {color: port for color, port in bg.ports.items()}
    from_color = next((color for color, port in ports.items() if env.get(bg.port_env) == str(port)), None)
    if from_color is None:
        raise PlanError(f"{container} has {bg.port_env}={env.get(bg.port_env, 'unset')}, neither blue's {ports['blue']} nor green's {ports['green']}, "
                        "so its color is unknown; nothing was requested.")
    color = "green" if from_color == "blue" else "blue"
    name = f"{container}-{color}"
    if await ctx.bot.checks.docker.inspect(name) is not None:
        raise PlanError(f"A container named {name} exists already (a deploy left it?); remove it first. Nothing was requested.")
    switch_to, switch_back = await _switch_plans(ctx, bg.switch, color, ports[color], from_color, ports[from_color])
    return {**step, "step": "blue_green", "port_env": bg.port_env, "from_color": from_color, "color": color, "port": ports[color],
            "from_port": ports[from_color], "new_name": name, "health_url": bg.health_url.replace("{port}", str(ports[color])),
            "switch": {"action": bg.switch, "to": switch_to, "back": switch_back}}


async def _switch_plans(ctx: PlanContext, action: str, color: str, port: int, from_color: str, from_port: int) -> tuple[dict, dict]:
    """The switch action planned both ways: to the new color, and back (used when verification fails)."""
    from bot.action.kinds import kind_of

    spec = ctx.config.actions[action]
    kind = kind_of(spec)
    accepted = kind.params(spec)

    async def plan_for(c: str, p: int) -> dict:
        given = {name: str(value) for name, value in (("color", c), ("port", p)) if name in accepted}
        try:
            values = parse_params(accepted, given, ctx.config)  # the switch action's own declared types
        except BadParameter as exc:
            raise PlanError(f"/{action} cannot switch to {c}: {str(exc).rstrip('.')}; nothing was requested.") from None
        return (await kind.plan(ctx, action, spec, values)).to_json()

    return await plan_for(color, port), await plan_for(from_color, from_port)


def describe(step: dict, verify: dict | None) -> list[str]:
    checks = f"run {step['service']}'s checks until they pass (up to {verify['deadline']:g} s)" if verify else "wait until it runs"
    short = step["container_id"][:12]
    if step["step"] == "replace":
        return [
            f"{step['service']}: stop {step['container']} ({short}, {step['from_version']}) with {step['grace']:g} s grace and keep it aside; "
            f"create {step['container']} from {_shown(step)} with everything the old one had, start it, {checks}",
            f"{step['service']}: if that fails, remove the new container and start the old one again ({_old(step)}: no registry "
            f"needed), then say why with its last log lines",
        ]
    action = step["switch"]["action"]
    return [
        f"{step['service']}: start {step['new_name']} from {_shown(step)} ({step['color']}, {step['port_env']}={step['port']}) next to "
        f"{step['container']} ({short}, {step['from_color']}, {step['from_version']}), with everything the old one had",
        f"{step['service']}: poll {redact(step['health_url'])} until it answers 2xx, then run /{action} to switch traffic to {step['color']}",
        f"{step['service']}: {checks}; then stop {step['container']} ({step['from_color']}) with {step['grace']:g} s grace and give "
        f"{step['new_name']} the name {step['container']}",
        f"{step['service']}: if anything fails before that, /{action} switches back to {step['from_color']} and the new container goes",
    ]


def _shown(step: dict) -> str:
    image = step["image"]
    if not image.startswith("sha256:"):
        return image
    # A version opsbot never recorded is already "image <id>": the id is not said twice.
    return step["version"] if step["version"] == f"image {image[7:19]}" else f"{step['version']} (kept image {image[7:19]})"


def _old(step: dict) -> str:
    """The old version and its image, once: "v1, image 6f8c6e225058", or "image 6f8c6e225058" when that is all opsbot knows."""
    image = f"image {step['from_image'][7:19]}"
    return image if step["from_version"] == image else f"{step['from_version']}, {image}"


async def apply(ctx: RunContext, plan: Plan, step: dict, image: str, journal) -> tuple[list[StepResult], str, str | None]:
    """Run the change; (results, the deployment's end state, the new image's id). `journal.phase` is
    written before each stretch recovery would have to undo (bot/deploy/recovery.py)."""
    if step["step"] == "blue_green":
        return await _blue_green(ctx, plan, step, image, journal)
    return await _replace(ctx, plan, step, image, journal)


async def _same(ctx: RunContext, step: dict) -> dict:
    info = await ctx.bot.checks.docker.inspect(step["container_id"])
    if info is None or info["Name"].lstrip("/") != step["container"]:
        raise DockerUnavailable(f"container {step['container']} was replaced or removed since the plan was made; nothing was changed")
    return info


def parked_name(step: dict) -> str:
    return f"{step['container']}-previous-{step['container_id'][:12]}"


async def _replace(ctx: RunContext, plan: Plan, step: dict, image: str, journal) -> tuple[list[StepResult], str, str | None]:
    docker, images = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker)
    service, name, old = step["service"], step["container"], step["container_id"]
    parked = parked_name(step)
    started = time.perf_counter()
    try:
        info = await _same(ctx, step)
    except DockerUnavailable as exc:
        return [StepResult(service, False, f"{service}: {exc}")], "failure", None
    await journal.phase("change")
    try:
        await docker.stop(old, step["grace"])
        await images.rename(old, parked)
    except DockerUnavailable as exc:
        back = await _restart_in_place(docker, old)
        return [StepResult(service, False, f"{service}: {exc}; {back}")], "failure", None
    try:
        new_id = await images.create_like(info, image, name)
        await docker.start(new_id)
    except DockerUnavailable as exc:
        await journal.confirm()
        back = await unpark(ctx, step, parked, None)
        return [StepResult(service, False, f"{service}: {exc}; {back}")], "failure", None
    done = f"{step['version']} started in {time.perf_counter() - started:.1f} s"
    result = await wait_healthy(ctx, service, name, plan.verify, done)
    new_image = (await docker.inspect(new_id) or {}).get("Image")
    if result.ok:
        await journal.phase("verified")
        await images.remove(old)
        await keep(images, step, result, ctx)
        return [result], "success", new_image
    await journal.confirm()  # a run that lost its hold must not remove what recovery put back
    back = await unpark(ctx, step, parked, new_id)
    settled = await wait_healthy(ctx, service, name, plan.verify, f"rolled back to {step['from_version']} automatically ({back})")
    return [result, settled], "rolled_back" if settled.ok else "failure", new_image


async def _restart_in_place(docker, container_id: str) -> str:
    try:
        await docker.start(container_id)
    except DockerUnavailable as exc:
        return f"and starting the old container again failed too ({exc})"
    return "the old container is running again"


async def unpark(ctx: RunContext, step: dict, parked: str, new_id: str | None) -> str:
    """The parked old container back under its name and started; what happened, as a phrase."""
    docker, images = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker)
    try:
        if new_id is not None:
            await images.remove(new_id)
        else:
            await images.remove(step["container"])  # a half-made new container, if any
        await images.rename(step["container_id"], step["container"])
        await docker.start(step["container_id"])
    except DockerUnavailable as exc:
        return f"and putting the old container back failed ({exc}): it is stopped as {parked}"
    return f"the old container {step['container_id'][:12]} is running again"


async def _blue_green(ctx: RunContext, plan: Plan, step: dict, image: str, journal) -> tuple[list[StepResult], str, str | None]:
    docker, images = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker)
    service, new_name = step["service"], step["new_name"]
    deadline = plan.verify["deadline"] if plan.verify else 30.0
    interval = plan.verify["interval"] if plan.verify else 1.0
    await journal.phase("change")
    try:
        info = await _same(ctx, step)
        new_id = await images.create_like(info, image, new_name, env={step["port_env"]: str(step["port"])}, next_to_old=True)
        await docker.start(new_id)
    except DockerUnavailable as exc:
        await journal.confirm()
        await images.remove(new_name)
        return [StepResult(service, False, f"{service}: {exc}; the old container kept serving")], "failure", None
    new_image = (await docker.inspect(new_id) or {}).get("Image")
    problem = await _answers(step["health_url"], deadline, interval)
    if problem is not None:
        await journal.confirm()
        logs = await container_logs(docker, new_id)
        await images.remove(new_id)
        failed = StepResult(service, False, f"{service}: {step['color']} ({step['version']}) did not answer: {problem}", logs)
        kept = StepResult(service, True, f"{service}: rolled back automatically: nothing was switched, {step['from_color']} ({step['from_version']}) kept serving")
        return [failed, kept], "rolled_back", new_image
    await journal.phase("switching")
    switched = await switch(ctx, step, "to")
    if not switched.ok:
        await journal.confirm()
        back = await switch(ctx, step, "back")
        await images.remove(new_id)
        return [switched, back], "rolled_back" if back.ok else "failure", new_image
    result = await wait_healthy(ctx, service, new_name, plan.verify, f"{step['version']} on {step['color']} and switched")
    if not result.ok:
        await journal.confirm()
        back = await switch(ctx, step, "back")
        await images.remove(new_id)
        back.summary = f"{service}: rolled back automatically: {back.summary}"
        return [result, back], "rolled_back" if back.ok else "failure", new_image
    await journal.phase("verified")
    try:
        await retire(ctx, step, new_id)
    except DockerUnavailable as exc:
        return [result, StepResult(service, False, f"{service}: switched to {step['color']}, but retiring {step['from_color']} failed: {exc}")], "failure", new_image
    result.summary += f"; {step['from_color']} stopped, {step['color']} is now {step['container']}"
    await keep(images, step, result, ctx)
    return [result], "success", new_image


async def retire(ctx: RunContext, step: dict, new: str) -> None:
    """Blue-green's last stretch, after verification: the old color stops and goes, the new one takes its name."""
    docker, images = ctx.bot.checks.docker, ImageGateway(ctx.bot.checks.docker)
    if await docker.inspect(step["container_id"]) is not None:
        await docker.stop(step["container_id"], step["grace"])
        await images.remove(step["container_id"])
    await images.rename(new, step["container"])


async def keep(images: ImageGateway, step: dict, result: StepResult, ctx: RunContext) -> None:
    """The replaced version's image stays on the Engine under a tag of opsbot's own: /rollback needs no registry.
    The kept images beyond the service's keep_images then go (bot/deploy/pruning.py)."""
    try:
        await images.keep(step["from_image"], step["service"])
    except DockerUnavailable as exc:
        result.summary += f"; the old image could not be kept ({exc}): a rollback may need the registry"
    await pruning.prune(ctx, images, step, result)


async def switch(ctx: RunContext, step: dict, way: str) -> StepResult:
    """The declared switch action's planned run, to the new color or back."""
    from bot.action.kinds import kind_of

    action = step["switch"]["action"]
    spec = ctx.config.actions.get(action)
    if spec is None:
        return StepResult(step["service"], False, f"{step['service']}: app.yaml no longer declares /{action}, so traffic was not switched")
    report = await kind_of(spec).execute(ctx, spec, Plan.from_json(step["switch"][way]))
    color = step["color"] if way == "to" else step["from_color"]
    said = report.summary().replace("\n", "; ")
    return StepResult(step["service"], report.succeeded, f"{step['service']}: switch to {color} (/{action}): {said}", report.logs)


async def _answers(url: str, deadline: float, interval: float) -> str | None:
    """None once `url` answers 2xx within `deadline` seconds, else the last problem."""
    problem = "no answer yet"
    until = time.monotonic() + deadline
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT)) as session:
        while True:
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if 200 <= response.status < 300:
                        return None
                    problem = f"HTTP {response.status} from {redact(url)}"
            except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
                problem = f"{exc.__class__.__name__} from {redact(url)}"
            if time.monotonic() >= until:
                return problem
            await asyncio.sleep(interval)
