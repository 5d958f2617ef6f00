"""Blue-green deploys (runbook 000 section 2.2) keep answering: a client polling every 100 ms through the
switch sees no failure, through a deploy that succeeds and one whose new color never gets healthy.

The Engine here has no bridge, so both colors use the host network on two ports; traffic goes
through a small proxy of this test (the service's front), which the declared switch action (an
http action) points at one port or the other.
"""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from conftest import free_port
from drivers import drive  # noqa: F401 (fixture)
from test_deploy import REPOSITORY, app, approve, deploy_config, kept_properties, request  # noqa: F401 (app: fixture)

from bot.deploy import service as record


class Front:
    """A reverse proxy to 127.0.0.1:<backend>; POST /switch {"port": N} moves it (what the switch action calls)."""

    def __init__(self, backend: int):
        self.backend, self.port, self.switches = backend, free_port(), []

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/switch", self._switch)
        app.router.add_get("/{path:.*}", self._forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))

    async def stop(self) -> None:
        await self.http.close()
        await self.runner.cleanup()

    async def _switch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.backend = int(body["port"])
        self.switches.append((body["port"], body.get("color")))
        return web.json_response({"upstream": self.backend})

    async def _forward(self, request: web.Request) -> web.Response:
        async with self.http.get(f"http://127.0.0.1:{self.backend}/{request.match_info['path']}") as upstream:
            return web.Response(status=upstream.status, body=await upstream.read())


class Poller:
    """GET /version through the front every 100 ms; every answer that is not a 200 is a failure."""

    def __init__(self, url: str):
        self.url, self.seen, self.failures = url, [], []

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while not stop.is_set():
                try:
                    async with http.get(self.url) as response:
                        text = (await response.text()).strip()
                        if response.status != 200:
                            self.failures.append(f"HTTP {response.status}")
                        elif not self.seen or self.seen[-1] != text:
                            self.seen.append(text)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    self.failures.append(exc.__class__.__name__)
                await asyncio.sleep(0.1)


@pytest.fixture
async def front():
    made = Front(0)
    await made.start()
    yield made
    await made.stop()


async def test_blue_green_keeps_answering_through_a_deploy_and_a_failed_one(drive, app, front):
    blue, green = app.port, free_port()
    front.backend = blue
    app.start("v1")
    before = app.inspect()
    switch = {"kind": "http", "service": "app", "url": f"http://127.0.0.1:{front.port}/switch", "approval": {"approvals": 0},
              "params": {"port": {"type": "int", "min": 1, "max": 65535}, "color": {"type": "enum", "values": ["blue", "green"]}}}
    bg = {"blue_green": {"ports": {"blue": blue, "green": green}, "health_url": "http://127.0.0.1:{port}/cgi-bin/health", "switch": "switch"}}
    d = await drive(deploy_config(app, deploy=bg, actions={"switch": switch}, checks_url=f"http://127.0.0.1:{front.port}/cgi-bin/health"))
    poller, stop = Poller(f"http://127.0.0.1:{front.port}/version"), asyncio.Event()
    polling = asyncio.create_task(poller.run(stop))
    try:
        request_id, plan = await request(d, "app v2")
        assert f"app: start {app.name}-green from {REPOSITORY}:v2 (green, PORT={green}) next to {app.name}" in plan
        assert "then run /switch to switch traffic to green" in plan
        seen, done = await approve(d, request_id)
        assert f"Request #{request_id} succeeded." in seen, done
        assert f"blue stopped, green is now {app.name}" in done
        after = app.inspect()
        assert after["Id"] != before["Id"] and app.version(green) == "v2" and front.backend == green
        env = dict(e.split("=", 1) for e in after["Config"]["Env"])
        assert env["PORT"] == str(green)
        assert {k: v for k, v in kept_properties(after).items() if k != "env"} == {k: v for k, v in kept_properties(before).items() if k != "env"}
        assert front.switches == [(green, "green")]

        request_id, _ = await request(d, "app v3-broken")
        seen, done = await approve(d, request_id)
        assert f"Request #{request_id} failed." in seen, done
        assert "app: blue (v3-broken) did not answer: HTTP 500" in done
        assert "nothing was switched, green (v2) kept serving" in done
        assert front.switches == [(green, "green")] and app.inspect()["Id"] == after["Id"]
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await polling
    assert poller.failures == [], poller.failures
    assert poller.seen == ["v1", "v2"]
    assert [(r.to_version, r.state) for r in await record.history(d.bot.db, "app")] == [("v3-broken", "rolled_back"), ("v2", "success")]


def test_a_color_made_next_to_the_old_container_takes_none_of_its_published_ports_or_aliases(app):
    """On a bridge network, the new color copied the old one's -p (its start fails "port is already allocated" on an
    Engine that publishes ports; this one runs with --iptables=false and publishes none, so the test reads what the
    color was made with) and its --network-alias (DNS sent the old one's traffic to it before the switch)."""
    from bot.docker_images import create_arguments

    api, host_port = app.client.api, free_port()
    app.client.images.pull(REPOSITORY, tag="v2")  # another test may have untagged it
    network = app.client.networks.create(f"opsbot-test-bg-{app.tag}", driver="bridge")
    try:
        old = api.create_container(
            f"{REPOSITORY}:v2", ["sh", "-c", "exec /bin/serve"], name=app.name, environment={"PORT": "8080"}, ports=[8080],
            labels={"opsbot.test": "1", "opsbot.test.deploy": app.tag},
            host_config=api.create_host_config(port_bindings={8080: ("127.0.0.1", host_port)}, network_mode=network.name),
            networking_config=api.create_networking_config({network.name: api.create_endpoint_config(aliases=["web"])}))["Id"]
        api.start(old)
        info = api.inspect_container(old)
        assert info["HostConfig"]["PortBindings"] and "web" in info["NetworkSettings"]["Networks"][network.name]["Aliases"]
        image_info = api.inspect_image(info["Image"])

        replace = create_arguments(info, image_info, f"{REPOSITORY}:v2", app.name)  # the old one is stopped first: it keeps them
        assert replace["host_config"]["PortBindings"] == info["HostConfig"]["PortBindings"]
        assert "web" in replace["networking_config"]["EndpointsConfig"][network.name]["Aliases"]

        color = create_arguments(info, image_info, f"{REPOSITORY}:v2", f"{app.name}-green", {"PORT": "8081"}, next_to_old=True)
        assert "PortBindings" not in color["host_config"] and color["host_config"]["NetworkMode"] == network.name
        assert color["networking_config"]["EndpointsConfig"] == {network.name: {"IPAMConfig": None, "Links": None}}
        new = api.create_container(**color)["Id"]
        api.start(new)
        made = api.inspect_container(new)
        assert made["State"]["Running"] and not made["HostConfig"]["PortBindings"]
        assert "web" not in (made["NetworkSettings"]["Networks"][network.name]["Aliases"] or [])
        assert api.inspect_container(old)["State"]["Running"]
    finally:
        app.cleanup()
        network.remove()
