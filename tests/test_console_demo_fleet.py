"""The demo fleet behaves like a real service: its web containers stop on SIGTERM, and a missing
demo container is answered with how to start it (`make fleet`).

The SIGTERM test runs a copy of each web container scripts/test-env.sh started (same image, same
command, read from the Engine) on a bridge network of its own, so the shared fleet keeps serving
other tests and the copy's port is free. A stop that SIGTERM ended exits 0 (the script traps it);
one that had to wait out the grace period ends in SIGKILL, exit 137.
"""
from __future__ import annotations

import io
import uuid

import docker
import pytest

from conftest import fleet
from bot.demo_fleet import DEMO_CONTAINERS, missing_hint
from bot.transport.console import Console

HINT = " (a demo container: run `make fleet` to start the demo fleet)"
SHOWN = HINT.replace("`", "")  # the console prints code spans as plain text


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env()
    yield client
    client.close()


@pytest.mark.parametrize("which", ["OPSBOT_FLEET_WEB", "OPSBOT_FLEET_WEB500"])
def test_the_fleet_web_containers_stop_on_sigterm_with_a_clean_exit(engine, which):
    values = fleet()
    original = engine.containers.get(values[which])
    config = original.attrs["Config"]
    prefix_key, _, prefix = values["OPSBOT_FLEET_PREFIX_LABEL"].partition("=")
    label_key, _, label_value = values["OPSBOT_FLEET_LABEL"].partition("=")
    name = f"{values['OPSBOT_FLEET_PREFIX']}sigterm-{uuid.uuid4().hex[:8]}"
    copy = engine.containers.run(
        config["Image"], config["Cmd"], entrypoint=config.get("Entrypoint"), name=name, detach=True,
        labels={label_key: label_value, prefix_key: prefix},  # scripts/test-env-down.sh removes it if this test dies
    )
    try:
        for _ in range(100):  # serving: the script has reached its last line (httpd in the background, wait)
            copy.reload()
            if copy.status == "running" and "listening on" in copy.logs().decode():
                break
        assert copy.status == "running", copy.logs().decode()
        copy.stop(timeout=30)
        copy.reload()
        state = copy.attrs["State"]
        assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False), (
            f"{values[which]}'s command ignored SIGTERM (exit {state['ExitCode']}; 137 is the SIGKILL after the grace period)"
        )
    finally:
        copy.remove(force=True)


def test_only_the_demo_fleets_names_get_the_make_fleet_hint():
    assert DEMO_CONTAINERS >= {"opsbot-test-web", "opsbot-test-web500"}
    assert {missing_hint(name) for name in DEMO_CONTAINERS} == {HINT}
    per_checkout = fleet()["OPSBOT_FLEET_WEB"]  # opsbot-test-<hash>-web: started by `make test`, not `make fleet`
    for name in (per_checkout, "opsbot-test-webb", "web", None):
        assert missing_hint(name) == ""


async def test_a_missing_demo_container_is_answered_with_make_fleet(make_bot, engine):
    """Through the console, as a newcomer meets it: /health and /restart on the bundled app.yaml's
    container before `make fleet` ran. Where it has run (its containers exist), the same names get no such answer."""
    demo = sorted(DEMO_CONTAINERS)
    present = {c.name for c in engine.containers.list(all=True, filters={"name": "opsbot-test-"})}
    other = f"{fleet()['OPSBOT_FLEET_PREFIX']}gone-{uuid.uuid4().hex[:6]}"  # missing, but not the demo's
    services = "".join(
        f"  s{i}:\n    container: {name}\n    owners: [ops]\n    checks:\n      - kind: container\n" for i, name in enumerate([*demo, other])
    )
    bot = await make_bot(f"version: 1\nservices:\n{services}roles:\n  ops: {{users: [UOPS1]}}\n")
    out = io.StringIO()
    console = Console(bot, "UOPS1", io.StringIO(), out)
    for i, name in enumerate(demo):
        start = len(out.getvalue())
        await console.handle_line(f"/health s{i}")
        health = out.getvalue()[start:]
        if name in present:
            assert "does not exist" not in health and "make fleet" not in health
            continue
        assert f"container {name} does not exist{SHOWN}" in health, health
        start = len(out.getvalue())
        await console.handle_line(f"/restart s{i}")
        assert out.getvalue()[start:] == (
            f"Container {name} of s{i} does not exist on the Docker Engine{SHOWN}; nothing was requested.\n"
        )
    start = len(out.getvalue())
    await console.handle_line(f"/restart s{len(demo)}")
    assert out.getvalue()[start:] == f"Container {other} of s{len(demo)} does not exist on the Docker Engine; nothing was requested.\n"
