"""Kept images are pruned: after a successful deploy only the newest `deploy.keep_images` earlier
versions keep their images (bot/deploy/pruning.py): an older one loses its opsbot-kept/<service> tag
and its tags in the deploy repository, so the Engine frees it. On the real Engine and registry.

Each test builds releases of its own from the registry's v1 app image (only APP_VERSION differs, so
each is an image of its own that /version names), pushes them to this checkout's test registry
(tests/deploy/registry.sh) under versions no other test uses, and deploys them to its own app
container (tests/test_deploy.py's App) under a service name of its own, so its opsbot-kept/<service>
tags are its alone. Everything it made goes at teardown: containers, tags, images, and the
releases' manifests in the registry.
"""
from __future__ import annotations

import io
import random
import string
import urllib.request

import docker.errors
import pytest
import yaml

from conftest import fleet
from drivers import drive  # noqa: F401 (fixture)
from test_deploy import REPOSITORY, App, app, approve, deploy_config, one_sentence, request  # noqa: F401 (app: fixture)

from bot.deploy import service as record

pytestmark = pytest.mark.parametrize("drive", ["console"], indirect=True)  # what is pruned does not depend on the transport

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def letters(n: int) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


class Releases:
    """Images of this test: REPOSITORY:v6N-<letters>, built from v1 with their own APP_VERSION and pushed."""

    def __init__(self, app: App):
        self.app, self.client, self.suffix = app, app.client, letters(8)
        self.service = f"prune-{self.suffix}"
        self.versions: list[str] = []
        self.ids: dict[str, str] = {}
        self.extra_tags: list[str] = []

    def build(self, count: int) -> list[str]:
        self.client.images.pull(REPOSITORY, tag="v1")  # another test may have untagged it
        label = fleet()["OPSBOT_FLEET_LABEL"].split("=", 1)
        for n in range(count):
            version = f"v6{n}-{self.suffix}"
            dockerfile = f"FROM {REPOSITORY}:v1\nENV APP_VERSION={version}\nLABEL {label[0]}={label[1]} opsbot.test.prune={self.suffix}\n"
            image, _ = self.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{REPOSITORY}:{version}", rm=True)
            self.versions.append(version)
            self.ids[version] = image.id
            for line in self.client.api.push(REPOSITORY, tag=version, stream=True, decode=True):
                assert "error" not in line, line
        return self.versions

    def short(self, version: str) -> str:
        return self.ids[version][7:19]

    def kept(self) -> set[str]:
        """The versions whose image carries an opsbot-kept/<service> tag now."""
        repository = f"opsbot-kept/{self.service}:"
        tags = {tag[len(repository):] for image in self.client.api.images(name=repository[:-1]) for tag in image["RepoTags"] or []
                if tag.startswith(repository)}
        return {version for version, image_id in self.ids.items() if image_id[7:19] in tags}

    def on_engine(self, version: str) -> bool:
        try:
            self.client.api.inspect_image(self.ids[version])
        except docker.errors.ImageNotFound:
            return False
        return True

    def tag(self, version: str, reference: str) -> None:
        repository, _, tag = reference.rpartition(":")
        self.client.api.tag(self.ids[version], repository, tag)
        self.extra_tags.append(reference)

    def untag_versions(self) -> None:
        """The releases' version tags off the Engine: what stays is what opsbot's kept tags or a container hold."""
        for version in self.versions:
            try:
                self.client.api.remove_image(f"{REPOSITORY}:{version}")
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                assert exc.status_code == 409, exc  # the running container's image keeps its one name

    def cleanup(self) -> None:
        self.app.cleanup()  # the containers first: an image a container uses cannot go
        for image in self.client.api.images(name=f"opsbot-kept/{self.service}"):
            for tag in image["RepoTags"] or []:
                if tag.startswith(f"opsbot-kept/{self.service}:"):
                    self.extra_tags.append(tag)
        for reference in [*self.extra_tags, *(f"{REPOSITORY}:{v}" for v in self.versions), *self.ids.values()]:
            try:
                self.client.api.remove_image(reference)
            except docker.errors.NotFound:
                pass
        host, _, name = REPOSITORY.partition("/")
        for version in self.versions:
            head = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{version}", method="HEAD", headers={"Accept": MANIFEST})
            try:
                with urllib.request.urlopen(head, timeout=5) as response:
                    digest = response.headers["Docker-Content-Digest"]
                urllib.request.urlopen(urllib.request.Request(f"http://{host}/v2/{name}/manifests/{digest}", method="DELETE"), timeout=5).close()
            except OSError:
                pass  # never pushed: the build failed first


@pytest.fixture
def releases(app):
    made = Releases(app)
    yield made
    made.cleanup()


def config(app: App, releases: Releases, keep_images: int) -> str:
    """tests/test_deploy.py's config, the service named as this test's own (its kept tags are this test's alone)."""
    body = yaml.safe_load(deploy_config(app, deploy={"keep_images": keep_images}))
    body["services"] = {releases.service: body["services"]["app"]}
    return yaml.safe_dump(body, sort_keys=False)


async def deploy(d, service: str, version: str) -> str:
    request_id, _ = await request(d, f"{service} {version}")
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen, done
    return done


async def test_after_n_plus_2_deploys_the_newest_n_kept_images_remain_and_rollback_reaches_only_them(drive, app, releases):
    r = releases.build(5)
    svc = releases.service
    app.start(r[0])
    d = await drive(config(app, releases, keep_images=2))

    expected = [{r[0]}, {r[0], r[1]}, {r[1], r[2]}, {r[2], r[3]}]  # after deploying r1, r2, r3, r4
    for n, version in enumerate(r[1:]):
        done = await deploy(d, svc, version)
        assert app.version() == version
        assert releases.kept() == expected[n], (version, done)
        if n < 2:
            assert "pruned" not in done, done
        else:
            assert f"{svc}: {version} started in" in done and "; pruned 1 old image" in done, done
            newest = (await record.history(d.bot.db, svc))[0]
            assert newest.state == "success" and "; pruned 1 old image" in newest.detail  # what the timeline's summary carries
    assert len(await record.history(d.bot.db, svc)) == 4

    # The pruned releases left the Engine with their version tags (what /deploy pulled); without theirs,
    # the kept ones and the running one stay.
    assert [releases.on_engine(v) for v in r[:2]] == [False, False]
    releases.untag_versions()
    assert [releases.on_engine(v) for v in r] == [False, False, True, True, True]

    # A kept version: its image, with no pull (the Engine has it only under opsbot's tag).
    request_id, plan = await request(d, f"{svc} {r[3]}", command="/rollback")
    assert f"from {r[3]} (kept image {releases.short(r[3])})" in plan and "pull" not in plan, plan
    seen, done = await approve(d, request_id)
    assert f"Request #{request_id} succeeded." in seen, done
    assert app.version() == r[3] and app.inspect()["Image"] == releases.ids[r[3]]
    assert "pruned" not in done and releases.kept() == {r[2], r[3], r[4]}  # r3 runs now; r4 and r2 are the two before it

    # A pruned version: one sentence, nothing requested.
    seen = await d.command("UOPS1", "/rollback", f"{svc} {r[0]}")
    one_sentence(d, seen, f"The image of {svc} {r[0]} ({releases.short(r[0])}) is no longer on the Docker Engine; "
                          f"deploy it again with /deploy {svc} {r[0]}.")
    assert len(await record.history(d.bot.db, svc)) == 5


async def test_an_image_a_container_uses_and_tags_opsbot_does_not_own_are_never_removed(drive, app, releases):
    r = releases.build(5)
    svc = releases.service
    # r4 never runs here: its kept tag is another opsbot's (same Engine, same service name), not in this record.
    foreign = f"opsbot-kept/{svc}:{releases.short(r[4])}"
    releases.tag(r[4], foreign)
    app.start(r[0])
    d = await drive(config(app, releases, keep_images=1))
    await deploy(d, svc, r[1])
    assert releases.kept() == {r[0], r[4]}

    # Another container runs r0's image (a worker of the same release, say): its kept tag must stay.
    bystander = app.client.containers.run(releases.ids[r[0]], ["sleep", "600"], name=f"{app.name}-bystander", detach=True,
                                          network_mode="host", labels={"opsbot.test": "1", "opsbot.test.deploy": app.tag})
    # Tags opsbot does not own, on r1's image: a neighbouring service's kept repository, another repository.
    neighbour, other = f"opsbot-kept/{svc}-worker:{releases.short(r[1])}", f"opsbot-test/prune-{releases.suffix}:{svc}"
    releases.tag(r[1], neighbour)
    releases.tag(r[1], other)

    done = await deploy(d, svc, r[2])
    assert "pruned" not in done and releases.kept() == {r[0], r[1], r[4]}, done  # r0 is in use, r1 is the one before

    done = await deploy(d, svc, r[3])
    assert "; pruned 1 old image" in done and releases.kept() == {r[0], r[2], r[4]}, done  # r1's kept and version tags went...
    for reference in (neighbour, other):  # ...and nothing else of it: the image stays, named by them
        assert app.client.api.inspect_image(reference)["Id"] == releases.ids[r[1]], reference
    assert set(app.client.api.inspect_image(releases.ids[r[1]])["RepoTags"]) == {neighbour, other}
    assert bystander.reload() is None and bystander.status == "running"

    # Once nothing uses r0's image, the next deploy prunes it (and r2's: keep_images is 1).
    bystander.remove(force=True)
    done = await deploy(d, svc, r[1])
    assert "; pruned 2 old images" in done and releases.kept() == {r[3], r[4]}, done  # r4 was never this record's
    assert not releases.on_engine(r[0])  # its kept and version tags went, and nothing else named it
