"""The opsbot image, built once per test run and shared by tests/test_image.py and tests/test_compose.py.

The image is built from the local Debian base (scripts/base-image.sh: Docker Hub is not reachable
here) with the legacy builder on the host network (`DOCKER_BUILDKIT=0 docker build --network host`;
the Engine runs with --bridge=none). It is tagged and labelled with a hash of the build context, so
a run whose source matches an image already built reuses it; images this checkout built from older
sources are removed after a new build.

`docker()` runs the docker CLI with an argument list; secrets go in `env` and reach a container
as `-e NAME` (no value on the command line, where `ps` would show it). `signed_command()` is
Slack posting a slash command to a bot in a container, and the answer it got back.
"""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from conftest import SIGNING_SECRET
from slack_signing import sign, slash_command_body

ROOT = Path(__file__).resolve().parent.parent
IMAGE_REPO = "opsbot-test/opsbot"
CONTEXT_LABEL = "opsbot.context.hash"
CHECKOUT_LABEL = "opsbot.test.checkout"
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
SKIPPED_IN_CONTEXT = ("__pycache__",)
SKIPPED_SUFFIXES = (".pyc",)


@dataclass(frozen=True)
class Image:
    tag: str
    base: str
    context_hash: str
    built_seconds: float | None  # None: an image of the same source was reused
    size_bytes: int


def docker(*args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """The docker CLI with an argument list (never a shell); stderr in the failure's message."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {args[0]} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return done


def context_paths() -> list[str]:
    """What .dockerignore lets into the build context: its `!path` lines (it ignores everything else)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line[1:].strip() for line in lines if line.startswith("!")]


def context_hash(base_id: str) -> str:
    """sha256 over the base image and every file of the build context, by path and content."""
    digest = hashlib.sha256(base_id.encode())
    files: list[Path] = [ROOT / ".dockerignore"]
    for entry in context_paths():
        path = ROOT / entry
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    for path in files:
        rel = path.relative_to(ROOT)
        if any(part in SKIPPED_IN_CONTEXT for part in rel.parts) or path.suffix in SKIPPED_SUFFIXES:
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def base_image() -> str:
    """The local base image's name (scripts/base-image.sh builds it when missing or stale)."""
    done = subprocess.run([str(ROOT / "scripts" / "base-image.sh")], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"scripts/base-image.sh could not make the base image: {done.stderr.strip()[-1500:]}")
    return done.stdout.strip().splitlines()[-1]


def build(base: str, tag: str, labels: dict[str, str], *, no_cache: bool = False, context: Path = ROOT) -> float:
    """Build the Dockerfile in `context` (the repository root) into `tag`; the seconds it took."""
    args = ["build", "--network", "host", "--build-arg", f"BASE={base}", "-t", tag, "-q"]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    if no_cache:
        args.append("--no-cache")
    started = time.perf_counter()
    docker(*args, str(context), env={"DOCKER_BUILDKIT": "0"}, timeout=1200)
    return time.perf_counter() - started


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())


@functools.cache
def opsbot_image_built() -> Image:
    """The image for this checkout's source: reused when one with the same context hash exists."""
    base = base_image()
    base_id = docker("image", "inspect", "-f", "{{.Id}}", base).stdout.strip()
    digest = context_hash(base_id)
    tag = f"{IMAGE_REPO}:{digest[:16]}"
    found = docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{CONTEXT_LABEL}"}}}}', tag, check=False)
    if found.returncode == 0 and found.stdout.strip() == digest:
        return Image(tag, base, digest, None, image_size(tag))
    seconds = build(base, tag, {CONTEXT_LABEL: digest, CHECKOUT_LABEL: CHECKOUT})
    _remove_older_builds(tag)
    return Image(tag, base, digest, seconds, image_size(tag))


def _remove_older_builds(keep: str) -> None:
    """This checkout's images of older sources (another checkout's stay); one still in use stays too."""
    listed = docker("image", "ls", "--filter", f"label={CHECKOUT_LABEL}={CHECKOUT}", "--format", "{{.Repository}}:{{.Tag}}")
    for tag in listed.stdout.split():
        if tag != keep and tag.startswith(IMAGE_REPO + ":"):
            docker("image", "rm", tag, check=False)


@pytest.fixture(scope="session")
def opsbot_image() -> Image:
    """The opsbot image built from this checkout (once per run; see opsbot_image_built)."""
    return opsbot_image_built()


async def signed_command(slack, bot_url: str, command: str, text: str = "", *, user: str = "UOPS1", channel: str = "C1") -> str:
    """A slash command signed as Slack signs it, POSTed to the bot at `bot_url`; the text of the
    bot's answer on its response_url (the Slack double), which must have accepted its Block Kit."""
    url = slack.new_response_url()
    body = slash_command_body(command, text, user_id=user, channel_id=channel, response_url=url)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SIGNING_SECRET, body)}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{bot_url}/slack/events", data=body.encode(), headers=headers) as response:
            assert response.status == 200, await response.text()
    await slack._wait(lambda: slack.response_posts(url), 60, f"the answer to {command} {text}")
    [post] = slack.response_posts(url)
    assert post.status == 200, post
    return post.text or ""
