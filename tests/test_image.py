"""The image as an operator runs it: `config check`, `migrate` and `serve` in a container (host
network), a non-root user writing backups where the bundled app.yaml puts them, and a signed
slash command answered through the Slack double. The image is built once per run (image_build)."""
from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

from conftest import BOT_TOKEN, PG_USER, REDIS_URL, SIGNING_SECRET, free_port, wait_until
from image_build import CHECKOUT, Image, docker, opsbot_image, signed_command  # noqa: F401  (opsbot_image: the session fixture)
from test_readiness import scratch_pg  # noqa: F401  (a fresh PostgreSQL database, dropped after)


def pg_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"


async def run_in_image(image: Image, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`docker run --rm --network host IMAGE ARGS...`: exit code and output (stdout, then stderr)."""
    env = env or {}
    flags = [flag for name in env for flag in ("-e", name)]
    done = await asyncio.to_thread(docker, "run", "--rm", "--network", "host", *flags, image.tag, *args, env=env, check=False)
    return done.returncode, done.stdout + done.stderr


class Served:
    """`opsbot serve` in a container of the image, on the host network at `port`."""

    def __init__(self, image: Image, env: dict[str, str]):
        self.image, self.env = image, env
        self.port = int(env["PORT"])
        self.name = f"opsbot-test-{CHECKOUT}-image-{uuid.uuid4().hex[:8]}"
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        flags = [flag for name in self.env for flag in ("-e", name)]
        await asyncio.to_thread(
            docker, "run", "-d", "--name", self.name, "--label", "opsbot.test=1", "--network", "host", *flags, self.image.tag, "serve", env=self.env
        )

    async def logs(self) -> str:
        done = await asyncio.to_thread(docker, "logs", "--tail", "40", self.name, check=False)
        return done.stdout + done.stderr

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.url + path, timeout=aiohttp.ClientTimeout(total=5)) as response:
                return response.status, await response.text()

    async def answers(self, path: str) -> bool:
        try:
            return (await self.get(path))[0] == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def remove(self) -> None:
        await asyncio.to_thread(docker, "rm", "-f", self.name, check=False)


async def test_config_check_accepts_the_bundled_app_yaml(opsbot_image):  # noqa: F811
    code, output = await run_in_image(opsbot_image, "config", "check")
    assert code == 0, output
    assert "/app/app.yaml is valid" in output


async def test_runs_as_a_non_root_user_that_writes_only_its_data_directory(opsbot_image):  # noqa: F811
    script = "import os; print(os.getuid(), os.getcwd(), os.access('/data/backups', os.W_OK), os.access('/app', os.W_OK))"
    done = await asyncio.to_thread(
        docker, "run", "--rm", "--network", "host", "--entrypoint", "python3", opsbot_image.tag, "-c", script, check=False
    )
    assert done.returncode == 0, done.stderr
    uid, cwd, backups_writable, app_writable = done.stdout.split()
    assert uid != "0" and cwd == "/data"
    assert (backups_writable, app_writable) == ("True", "False")


async def test_migrate_then_serve_answers_probes_and_signed_commands(opsbot_image, slack, scratch_pg):  # noqa: F811
    database_url = pg_url(await scratch_pg())
    code, output = await run_in_image(opsbot_image, "migrate", env={"DATABASE_URL": database_url})
    assert code == 0, output
    assert "Database is at the newest schema." in output

    served = Served(opsbot_image, {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SLACK_API_URL": slack.api_url,  # the double, on this machine: the container shares its network
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "PORT": str(free_port()),
    })
    await served.start()
    try:
        try:
            await wait_until(lambda: served.answers("/healthz"), timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(f"/healthz never answered 200:\n{await served.logs()}") from None
        status, body = await served.get("/readyz")
        assert status == 200, body
        checks = json.loads(body)["checks"]  # migrated by the image's own `opsbot migrate` above
        assert checks["migrations"]["status"] == checks["audit_log"]["status"] == "healthy", checks

        answer = await signed_command(slack, served.url, "/health", user="UOPS2")
        assert "Health:" in answer, answer

        # The bundled app.yaml's relative `backups: directory: backups` is /data/backups here,
        # which the non-root user writes: a real pg_dump through the image's own client.
        answer = await signed_command(slack, served.url, "/backup", "test", user="UOPS2")
        assert "succeeded" in answer, answer
        listed = await asyncio.to_thread(docker, "exec", served.name, "ls", "/data/backups")
        assert any(name.startswith("test_") and name.endswith(".dump") for name in listed.stdout.split()), listed.stdout

        # SIGTERM drains and exits 0 (what compose's stop_grace_period and Kubernetes' grace wait for).
        await asyncio.to_thread(docker, "stop", "-t", "30", served.name, timeout=60)
        exited = await asyncio.to_thread(docker, "inspect", "-f", "{{.State.ExitCode}}", served.name)
        assert exited.stdout.strip() == "0", await served.logs()
    finally:
        await served.remove()
