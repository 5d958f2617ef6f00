"""Engine calls for deploys: pull an image, inspect one, and make a container like another from a new image.

Like bot/docker_engine.py, every SDK call runs on the gateway's worker threads. A container made
"like" another keeps everything that was set on the old container (environment, mounts, networks,
labels, restart policy, healthcheck, command, entrypoint, user, ports or the host network) and takes
from the new image only what the old container had from its own image: an image's ENV, labels, CMD
or healthcheck that the container did not override follow the new image, as they would with
`docker run` of the new tag. What was the old image's default is told apart from what was set
on the container by comparing with the old image's inspect document.
"""
from __future__ import annotations

import asyncio
import time

from bot.docker_engine import EXEC_OUTPUT_KEPT, DockerGateway, DockerUnavailable, ExecResult, _reason
from bot.output_tail import OutputTail

PULL_PROGRESS_KEPT = 20  # status lines of a failed pull kept for its sentence


def _sdk():
    from bot import docker_engine

    return docker_engine._sdk()


def _own(container: dict, image: dict) -> dict:
    """The container's Config less what it inherited from `image` (the image's inspect document)."""
    config, defaults = dict(container["Config"]), (image or {}).get("Config") or {}
    image_env = set(defaults.get("Env") or [])
    config["Env"] = [entry for entry in config.get("Env") or [] if entry not in image_env]
    image_labels = defaults.get("Labels") or {}
    config["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items() if image_labels.get(k) != v}
    for key in ("Cmd", "Entrypoint", "Healthcheck", "WorkingDir", "User", "StopSignal"):
        if config.get(key) == defaults.get(key):
            config[key] = None
    image_ports = set((defaults.get("ExposedPorts") or {}).keys())
    config["ExposedPorts"] = {p: {} for p in (config.get("ExposedPorts") or {}) if p not in image_ports}
    image_volumes = set((defaults.get("Volumes") or {}).keys())
    config["Volumes"] = {v: {} for v in (config.get("Volumes") or {}) if v not in image_volumes}
    return config


def create_arguments(info: dict, image_info: dict | None, image: str, name: str, env: dict[str, str] | None = None,
                     *, next_to_old: bool = False) -> dict:
    """create_container's arguments for a container like `info` (inspect) from `image`, named `name`.

    `image_info` is the old image's inspect document (None: everything counts as set on the
    container, as compose's --force-recreate of the same image). `env` overrides variables.
    `next_to_old`: the new container runs while the old one still serves (a blue-green color), so
    it publishes none of the old one's host ports (the Engine would refuse its start: "port is
    already allocated") and takes none of its network aliases (DNS would send the old one's
    traffic to it before the switch); traffic reaches it through the switch, at its color's port.
    """
    config = _own(info, image_info) if image_info is not None else dict(info["Config"])
    host_config = dict(info["HostConfig"])
    if next_to_old:
        host_config.pop("PortBindings", None)
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    kept_endpoint = ("IPAMConfig", "Links") if next_to_old else ("Aliases", "IPAMConfig", "Links")
    endpoints = {
        net: {k: v for k, v in (ep or {}).items() if k in kept_endpoint}
        for net, ep in networks.items()
        if net not in ("host", "none", "bridge")
    }
    # Like compose: the new container keeps the old one's anonymous volumes (a database's data).
    # A mount point is declared by Binds (-v) or by HostConfig.Mounts (--mount, Compose v2); one
    # declared twice makes the Engine refuse the create ("Duplicate mount point").
    volume_names = {m["Destination"]: m["Name"] for m in info.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")}
    mounts = [dict(m) for m in host_config.get("Mounts") or []]
    for mount in mounts:
        if mount.get("Type") == "volume" and not mount.get("Source") and mount.get("Target") in volume_names:
            mount["Source"] = volume_names[mount["Target"]]  # an anonymous --mount volume: the same one, not a fresh empty one
    if mounts:
        host_config["Mounts"] = mounts
    declared = {b.split(":")[1] for b in host_config.get("Binds") or [] if ":" in b} | {m.get("Target") for m in mounts}
    kept = [
        f"{m['Name']}:{m['Destination']}{'' if m.get('RW', True) else ':ro'}"
        for m in info.get("Mounts") or []
        if m.get("Type") == "volume" and m.get("Name") and m["Destination"] not in declared
    ]
    host_config["Binds"] = list(host_config.get("Binds") or []) + kept
    network_mode = host_config.get("NetworkMode") or ""
    shares_network = network_mode == "host" or network_mode.startswith("container:")
    environment = list(config.get("Env") or [])
    if env:
        environment = [e for e in environment if e.split("=", 1)[0] not in env] + [f"{k}={v}" for k, v in env.items()]
    return dict(
        image=image,
        command=config.get("Cmd"),
        entrypoint=config.get("Entrypoint"),
        environment=environment,
        labels=config.get("Labels"),
        working_dir=config.get("WorkingDir") or None,
        user=config.get("User") or None,
        # A host- or container-network container takes its hostname from there; setting one is an error.
        hostname=None if shares_network else config.get("Hostname") or None,
        domainname=None if shares_network else config.get("Domainname") or None,
        stop_signal=config.get("StopSignal"),
        tty=bool(config.get("Tty")),
        stdin_open=bool(config.get("OpenStdin")),
        ports=list((config.get("ExposedPorts") or {}).keys()) or None,
        volumes=list((config.get("Volumes") or {}).keys()) or None,
        healthcheck=config.get("Healthcheck"),
        name=name,
        host_config=host_config,
        networking_config={"EndpointsConfig": endpoints} if endpoints else None,
    )


def one_off_arguments(info: dict, image_info: dict | None, image: str, name: str, argv: list[str], labels: dict[str, str]) -> dict:
    """A one-off container (`docker compose run --rm`) like the service's `info`, from `image`, running `argv`.

    It keeps what the command needs (environment, mounts, networks, user, working directory) and
    drops what would make it serve: published ports, network aliases and the service's labels (a
    proxy routes by them), the restart policy and the healthcheck. `argv` is the entrypoint, so
    neither a shell nor the image's own entrypoint or command reads it.
    """
    arguments = create_arguments(info, image_info, image, name)
    host_config = {k: v for k, v in arguments["host_config"].items() if k not in ("PortBindings", "PublishAllPorts", "AutoRemove")}
    host_config["RestartPolicy"] = {"Name": "no"}
    networking = arguments["networking_config"]
    if networking:
        networking = {"EndpointsConfig": {net: {k: v for k, v in ep.items() if k != "Aliases"} for net, ep in networking["EndpointsConfig"].items()}}
    arguments.update(entrypoint=list(argv), command=None, labels=labels, healthcheck={"Test": ["NONE"]}, ports=None, tty=False,
                     stdin_open=False, host_config=host_config, networking_config=networking)
    return arguments


class ImageGateway:
    """Deploy-side Engine calls, on the same SDK client and threads as the DockerGateway they extend."""

    def __init__(self, docker: DockerGateway):
        self.docker = docker

    async def pull(self, reference: str, timeout: float) -> str:
        """`docker pull repository:tag`; the pulled image's id (sha256:...)."""
        repository, _, tag = reference.rpartition(":")

        def call():
            api = self.docker._docker().api
            errors = _sdk().errors
            try:
                lines = api.pull(repository, tag=tag, stream=True, decode=True)
                last = []
                for line in lines:
                    if "error" in line:
                        raise DockerUnavailable(f"pulling {reference} failed ({str(line['error']).splitlines()[0][:300]})")
                    last = (last + [line.get("status", "")])[-PULL_PROGRESS_KEPT:]
                return api.inspect_image(reference)["Id"]
            except errors.NotFound:
                raise DockerUnavailable(f"{reference} is not in its registry") from None
            except errors.APIError as exc:
                raise DockerUnavailable(f"pulling {reference} failed ({_reason(exc)})") from None

        import asyncio

        try:
            return await asyncio.wait_for(self.docker._run(call), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            raise DockerUnavailable(f"pulling {reference} took longer than {timeout:g} s") from None

    async def image(self, reference: str) -> dict | None:
        """An image's inspect document (by reference or id), or None when the Engine has no such image."""

        def call():
            errors = _sdk().errors
            try:
                return self.docker._docker().api.inspect_image(reference)
            except errors.NotFound:
                return None
            except errors.APIError as exc:
                raise DockerUnavailable(f"the Docker Engine refused to inspect image {reference} ({_reason(exc)})") from None

        return await self.docker._run(call)

    async def create_like(self, info: dict, image: str, name: str, env: dict[str, str] | None = None,
                          *, next_to_old: bool = False) -> str:
        """Create (not start) a container like `info` from `image` under `name`; its id (`next_to_old`: see create_arguments)."""

        def call():
            api, errors = self.docker._docker().api, _sdk().errors
            try:
                old_image = api.inspect_image(info["Image"])
            except errors.NotFound:
                old_image = None  # the old image is gone: keep everything the container had
            try:
                return api.create_container(**create_arguments(info, old_image, image, name, env, next_to_old=next_to_old))["Id"]
            except errors.APIError as exc:
                raise DockerUnavailable(f"creating {name} from {image} failed ({_reason(exc)})") from None

        return await self.docker._run(call)

    async def keep(self, image_id: str, service: str) -> str:
        """Tag an image the service ran before as opsbot-kept/<service>:<short id>, so removing its
        version's tag (or a prune of unused images) cannot take away what a rollback needs."""
        repository, tag = f"opsbot-kept/{service}", image_id.removeprefix("sha256:")[:12]

        def call():
            errors = _sdk().errors
            try:
                self.docker._docker().api.tag(image_id, repository, tag=tag)
            except errors.APIError as exc:
                raise DockerUnavailable(f"keeping image {tag} failed ({_reason(exc)})") from None

        await self.docker._run(call)
        return f"{repository}:{tag}"

    async def prune_kept(self, service: str, pulled_from: str, candidates: set[str], wanted: set[str], at_most: int,
                         timeout: float) -> tuple[int, list[str]]:
        """Untag the images kept as opsbot-kept/<service> that this service's own record names
        (`candidates`, image ids: another opsbot's or checkout's kept images on the same Engine are not
        ours to judge), that are not in `wanted` and that no container uses (running or not: a stopped
        one may be started again), at most `at_most` images: their kept tag and their references in
        `pulled_from` (the deploy repository /deploy pulled them from: tags and digests), so the Engine
        frees them unless another repository names them; (how many went, what went wrong)."""
        repository = f"opsbot-kept/{service}"
        pulled = _as_engine_names(pulled_from)
        ours = (repository + ":", pulled + ":", pulled + "@")
        deadline = time.monotonic() + timeout

        def call():
            api, errors = self.docker._docker().api, _sdk().errors
            used = {c.get("ImageID") for c in api.containers(all=True)}
            removed, problems = 0, []
            for image in api.images(name=repository):
                if removed + len(problems) >= at_most or time.monotonic() > deadline:
                    break  # the rest waits for the next deploy
                if image["Id"] not in candidates or image["Id"] in wanted or image["Id"] in used:
                    continue
                try:
                    problem = _untag(api, errors, image["Id"], ours)
                except Exception as exc:  # one image's trouble (a timeout, a refusal) is not the others'
                    problem = f"{image['Id'][7:19]}: {_reason(exc) if isinstance(exc, errors.APIError) else exc.__class__.__name__}"
                if problem is None:
                    removed += 1
                elif problem:
                    problems.append(problem)
            return removed, problems

        return await self.docker._run(call)

    async def rename(self, container: str, name: str) -> None:
        def call():
            errors = _sdk().errors
            try:
                self.docker._docker().api.rename(container, name)
            except errors.APIError as exc:
                raise DockerUnavailable(f"renaming {container[:12]} to {name} failed ({_reason(exc)})") from None

        await self.docker._run(call)

    async def remove(self, container: str) -> None:
        """Remove a container (forced: it may still run); one already gone is fine."""

        def call():
            errors = _sdk().errors
            try:
                self.docker._docker().api.remove_container(container, force=True)
            except errors.NotFound:
                pass
            except errors.APIError as exc:
                raise DockerUnavailable(f"removing {container[:12]} failed ({_reason(exc)})") from None

        await self.docker._run(call)


    async def run_once(self, info: dict, image: str, argv: list[str], name: str, labels: dict[str, str], timeout: float,
                       *, keep: int = EXEC_OUTPUT_KEPT) -> tuple[ExecResult, bool]:
        """Run `argv` in a one-off container like `info` from `image`, wait up to `timeout` s, and remove it.

        (its exit code and the last `keep` bytes of its output, True when it ran over and was killed).
        The container goes whatever happens; its output is read as a stream into a bounded tail."""
        import requests.exceptions

        def call():
            api, errors = self.docker._docker().api, _sdk().errors
            try:
                old_image = api.inspect_image(info["Image"])
            except errors.NotFound:
                old_image = None
            try:
                created = api.create_container(**one_off_arguments(info, old_image, image, name, argv, labels))["Id"]
            except errors.APIError as exc:
                raise DockerUnavailable(f"creating {name} from {image[:19]} failed ({_reason(exc)})") from None
            try:
                api.start(created)
                killed = False
                try:
                    code = api.wait(created, timeout=timeout)["StatusCode"]
                except requests.exceptions.RequestException:
                    if not api.inspect_container(created)["State"]["Running"]:
                        raise
                    api.kill(created)  # unlike an exec, a container can be stopped: say it was
                    killed, code = True, -1
                tail = OutputTail(keep)
                for chunk in api.logs(created, stdout=True, stderr=True, stream=True, follow=False):
                    tail.add(chunk)
                return ExecResult(code, *tail.finish()), killed
            except errors.APIError as exc:
                raise DockerUnavailable(f"running {name} failed ({_reason(exc)})") from None
            finally:
                try:
                    api.remove_container(created, force=True)
                except errors.APIError:
                    pass  # recovery removes what carries the label

        return await self.docker._run(call)

    async def remove_labelled(self, label: str, value: str) -> int:
        """Remove every container labelled `label=value` (one-off containers a stopped process left); how many."""

        def call():
            api, errors = self.docker._docker().api, _sdk().errors
            found = api.containers(all=True, quiet=True, filters={"label": f"{label}={value}"})
            for container in found:
                try:
                    api.remove_container(container["Id"], force=True)
                except errors.NotFound:
                    pass
                except errors.APIError as exc:
                    raise DockerUnavailable(f"removing {container['Id'][:12]} failed ({_reason(exc)})") from None
            return len(found)

        return await self.docker._run(call)


def _as_engine_names(repository: str) -> str:
    """A repository as the Engine lists it: Docker Hub's names short (docker.io/library/x is x)."""
    for prefix in ("docker.io/", "index.docker.io/"):
        if repository.startswith(prefix):
            repository = repository[len(prefix):]
            return repository.removeprefix("library/")
    return repository


def _untag(api, errors, image_id: str, ours: tuple[str, ...]) -> str | None:
    """Remove an image's references that start with one of `ours`: None when they went, "" when a
    container made since uses it (it stays), else what went wrong."""
    try:  # every reference: a list filtered by repository names only that repository's
        info = api.inspect_image(image_id)
    except errors.NotFound:
        return None  # gone meanwhile
    references = [r for r in (info.get("RepoTags") or []) + (info.get("RepoDigests") or []) if r.startswith(ours)]
    for reference in sorted(references):
        try:
            api.remove_image(reference, noprune=False)
        except errors.NotFound:
            pass  # gone meanwhile
        except errors.APIError as exc:
            if exc.status_code == 409:  # a container made since uses it: it stays, with what is left of its names
                return ""
            return f"{reference}: {_reason(exc)}"
    return None
