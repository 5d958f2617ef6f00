"""The test rig itself: the Docker test fleet is named after a per-checkout prefix, so two
checkouts (two CI jobs) on one host never share container names or ports.

`scripts/test-env.sh --plan` prints what a run would use without touching Docker, so
"another checkout" is a copy of the scripts in a temporary directory, planned, not started.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest
from conftest import ROOT, fleet

FLEET = fleet()
PREFIX = FLEET["OPSBOT_FLEET_PREFIX"]
NAMES = {
    "OPSBOT_FLEET_WEB": "web",
    "OPSBOT_FLEET_WEB500": "web500",
    "OPSBOT_FLEET_EXITED": "exited",
    "OPSBOT_FLEET_RESTARTING": "restarting",
    "OPSBOT_FLEET_OOM_CONTAINER": "oom",
    "OPSBOT_FLEET_PGCLIENT": "pgclient",  # has pg_dump and pg_restore: backups through Docker exec
}
PORTS = {"OPSBOT_FLEET_WEB_PORT": "OPSBOT_FLEET_WEB", "OPSBOT_FLEET_WEB500_PORT": "OPSBOT_FLEET_WEB500"}


def plan(root: Path, prefix: str | None = None) -> dict[str, str]:
    """KEY=VALUE lines of `<root>/scripts/test-env.sh --plan`, with OPSBOT_TEST_PREFIX set to `prefix` or unset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSBOT_TEST_")}
    if prefix is not None:
        env["OPSBOT_TEST_PREFIX"] = prefix
    result = subprocess.run(
        ["bash", str(root / "scripts" / "test-env.sh"), "--plan"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


@pytest.fixture
def other_checkout(tmp_path) -> Path:
    """A second checkout of the rig: the two scripts copied to another path."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tests").mkdir()
    for script in ("test-env.sh", "test-env-down.sh"):
        shutil.copy2(ROOT / "scripts" / script, tmp_path / "scripts" / script)
    for part in ("supervisor", "deploy"):  # test-env-down.sh stops that checkout's supervisord and registry too
        (tmp_path / "tests" / part).mkdir()
        shutil.copy2(ROOT / "tests" / part / "down.sh", tmp_path / "tests" / part / "down.sh")
    return tmp_path


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_recorded_names_carry_the_prefix_and_the_containers_its_label():
    explicit = os.environ.get("OPSBOT_TEST_PREFIX")
    if explicit:
        assert PREFIX == explicit, f"tests/.fleet.env describes fleet {PREFIX}, not {explicit}: run scripts/test-env.sh"
    else:
        assert re.fullmatch(r"opsbot-test-[0-9a-f]{8}-", PREFIX), (
            f"tests/.fleet.env describes fleet {PREFIX!r}, not this checkout's derived one: run scripts/test-env.sh"
        )
    for key, role in NAMES.items():
        assert FLEET[key] == f"{PREFIX}{role}"
    for key, name_key in PORTS.items():
        assert urlsplit(FLEET[f"{name_key}_URL"]).port == int(FLEET[key])
    client = docker.from_env(timeout=30)
    try:
        for key in NAMES:
            labels = client.api.inspect_container(FLEET[key])["Config"]["Labels"]
            assert labels.get("opsbot.test") == "1"
            assert labels.get("opsbot.test.prefix") == PREFIX
        for key, name_key in PORTS.items():
            assert client.api.inspect_container(FLEET[name_key])["Config"]["Labels"].get("opsbot.test.port") == FLEET[key]
        labelled = {c.name for c in client.containers.list(all=True, filters={"label": f"opsbot.test.prefix={PREFIX}"})}
        # The test systemd (tests/systemd/up.sh) carries the fleet's label too, so it goes with the fleet.
        assert labelled - {f"{PREFIX}systemd"} == {FLEET[key] for key in NAMES}
    finally:
        client.close()


def test_a_second_run_in_this_checkout_reuses_the_recorded_fleet():
    planned = plan(ROOT, os.environ.get("OPSBOT_TEST_PREFIX"))
    for key in ["OPSBOT_FLEET_PREFIX", *NAMES, *PORTS, "OPSBOT_FLEET_WEB_URL", "OPSBOT_FLEET_WEB500_URL"]:
        assert planned[key] == FLEET[key], key


def test_another_checkout_gets_other_names_and_ports(other_checkout):
    derived = plan(other_checkout)
    chosen = plan(other_checkout, f"opsbot-rig-{uuid.uuid4().hex[:8]}-")
    for planned in (derived, chosen):
        assert planned["OPSBOT_FLEET_PREFIX"] != PREFIX
        for key, role in NAMES.items():
            assert planned[key] == planned["OPSBOT_FLEET_PREFIX"] + role
            assert planned[key] != FLEET[key]
        ports = {int(planned[key]) for key in PORTS}
        assert len(ports) == 2
        assert not ports & {int(FLEET[key]) for key in PORTS}
        assert not any(listening(port) for port in ports), ports
    assert derived["OPSBOT_FLEET_PREFIX"].startswith("opsbot-test-")
    assert chosen["OPSBOT_FLEET_PREFIX"].startswith("opsbot-rig-")
    # Same checkout, same answer: the prefix is derived from the path, not random.
    assert plan(other_checkout)["OPSBOT_FLEET_PREFIX"] == derived["OPSBOT_FLEET_PREFIX"]


def test_tearing_down_another_checkout_leaves_this_fleet(other_checkout):
    result = subprocess.run(
        ["bash", str(other_checkout / "scripts" / "test-env-down.sh")],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSBOT_TEST_")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "No opsbot-test-" in result.stdout, result.stdout
    client = docker.from_env(timeout=30)
    try:
        for key in NAMES:
            client.api.inspect_container(FLEET[key])  # still there
    finally:
        client.close()
