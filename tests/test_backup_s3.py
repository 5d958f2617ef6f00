"""Backups in object storage (backups.storage kind s3) against a real S3-compatible server.

moto's standalone server (moto_server, from the test extra) is started once for this module on a
free port of 127.0.0.1; each test makes its own bucket. PostgreSQL is the real server at
127.0.0.1:5432 (tests/test_backup.py's databases). The dump streams through a multipart upload;
verify and restore stream the object back into pg_restore; retention deletes through its one
decision; two replicas share one database and one bucket. No mocks.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
import yaml
from conftest import fleet, free_port
from drivers import drive  # noqa: F401 (fixture)
from sqlalchemy import select

from action_helpers import state_of
from bot.backup import dump as pg
from bot.backup import s3
from bot.backup import service as backups
from bot.backup.models import Backup
from bot.backup.restore import restore_backup
from bot.backup.retention import plan_retention
from bot.config.loader import parse_config
from bot.migrate import upgrade_async
from bot.schedule.clock import ManualClock
from test_backup import ROWS, config_yaml, day, dsn_of, fetch, one_sentence, pg_databases  # noqa: F401 (fixture)

KEY_ENV, SECRET_ENV = "OPSBOT_TEST_S3_KEY_ID", "OPSBOT_TEST_S3_SECRET"  # named in app.yaml, set only in the environment


@pytest_asyncio.fixture(scope="module")
async def s3_server():
    """moto_server on 127.0.0.1:<free port>, stopped after the module; the endpoint URL."""
    program = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    process = subprocess.Popen([program, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in (KEY_ENV, SECRET_ENV)}
    os.environ[KEY_ENV], os.environ[SECRET_ENV] = "testing-key-id", "testing-secret"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                assert process.poll() is None, "moto_server exited"
                try:
                    async with http.get(url + "/moto-api/data.json") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("moto_server did not answer within 20 s")
        yield url
    finally:
        process.terminate()
        process.wait(10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest_asyncio.fixture
async def bucket(s3_server):
    name = f"opsbot-{uuid.uuid4().hex[:12]}"
    storage = storage_of(s3_server, name)
    async with s3.client(storage) as client:
        await client.create_bucket(Bucket=name)
    return name


def storage_spec(endpoint: str, bucket: str, **extra) -> dict:
    return {
        "kind": "s3",
        "bucket": bucket,
        "prefix": "nightly/",
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "addressing_style": "path",
        "access_key_id_env": KEY_ENV,
        "secret_access_key_env": SECRET_ENV,
        **extra,
    }


def storage_of(endpoint: str, bucket: str, **extra):
    from bot.config.data_models import S3Storage

    return S3Storage(**storage_spec(endpoint, bucket, **extra))


def s3_config(
    source: str, endpoint: str, bucket: str, tmp_path: Path, *, actions: dict | None = None, retention: dict | None = None, container: str | None = None, **extra
) -> str:
    database = {"dsn": dsn_of(source), **({"container": container} if container else {})}
    body = yaml.safe_load(config_yaml({"app": database}, tmp_path / "unused", actions=actions, retention=retention))
    body["backups"]["storage"] = storage_spec(endpoint, bucket, **extra)
    return yaml.safe_dump(body, sort_keys=False)


async def object_bytes(bot, key: str) -> bytes:
    async with s3.client(bot.config.backups.storage) as client:
        answer = await client.get_object(Bucket=bot.config.backups.storage.bucket, Key=key)
        async with answer["Body"] as body:
            return await body.read()


async def keys(storage) -> list[str]:
    async with s3.client(storage) as client:
        listed = await client.list_objects_v2(Bucket=storage.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def open_uploads(storage) -> list:
    async with s3.client(storage) as client:
        return (await client.list_multipart_uploads(Bucket=storage.bucket)).get("Uploads", [])


async def put_object(storage, key: str, data: bytes) -> None:
    async with s3.client(storage) as client:
        await client.put_object(Bucket=storage.bucket, Key=key, Body=data)


# --------------------------------------------------------------------------- backup, verify, corruption


async def test_backup_streams_to_the_bucket_with_its_sha256_and_verifies(make_bot, pg_databases, s3_server, bucket, tmp_path):
    source = await pg_databases.create()
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path))
    row = await backups.make_backup(bot, "app", made_by="UOPS1", label="before the migration")
    assert row.verified, row.verify_error
    assert row.storage == "s3" and re.fullmatch(r"nightly/app_\d{8}_\d{6}_[0-9a-f]{6}\.dump", row.file), row.file
    data = await object_bytes(bot, row.file)
    assert data[:5] == b"PGDMP" and len(data) == row.size and hashlib.sha256(data).hexdigest() == row.sha256
    assert await open_uploads(bot.config.backups.storage) == []
    assert not (tmp_path / "unused").exists()  # nothing written to the local directory

    checked = await backups.verify_backup(bot, row.id)
    assert checked.ok and checked.backup.verified, (checked.problem, checked.unchecked)

    # A second backup in the same second gets its own key.
    again = await backups.make_backup(bot, "app", made_by="UOPS1")
    assert again.file != row.file and again.verified
    assert await keys(bot.config.backups.storage) == sorted([row.file, again.file])


async def test_a_corrupted_or_missing_object_fails_verify(make_bot, pg_databases, s3_server, bucket, tmp_path):
    source = await pg_databases.create()
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path))
    row = await backups.make_backup(bot, "app", made_by="UOPS1")
    storage = bot.config.backups.storage
    data = bytearray(await object_bytes(bot, row.file))
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    await put_object(storage, row.file, bytes(data))

    checked = await backups.verify_backup(bot, row.id)
    assert checked.problem and "SHA-256 does not match" in checked.problem, checked.problem
    async with bot.db.sessions() as session:
        stored = await session.get(Backup, row.id)
    assert stored.verified is False and "SHA-256" in stored.verify_error

    # Restoring it is refused before pg_restore runs.
    with pytest.raises(pg.BackupError, match="cannot be restored: its SHA-256 does not match"):
        await restore_backup(bot, stored, into=pg_databases.name("opsbot_s3_scratch"))

    # Truncated: the size says so.
    await put_object(storage, row.file, bytes(data[:1000]))
    checked = await backups.verify_backup(bot, row.id)
    assert "holds 1000 bytes" in checked.problem, checked.problem

    # Gone from the bucket: the store's answer, and the flag left as it was (that says nothing of the dump).
    async with s3.client(storage) as client:
        await client.delete_object(Bucket=storage.bucket, Key=row.file)
    checked = await backups.verify_backup(bot, row.id)
    assert checked.unchecked and "could not be read (NoSuchKey" in checked.unchecked, checked.unchecked


# --------------------------------------------------------------------------- restore


async def test_restore_from_the_bucket_into_a_scratch_database_round_trips_rows(make_bot, pg_databases, s3_server, bucket, tmp_path):
    source = await pg_databases.create()
    scratch = pg_databases.name("opsbot_s3_scratch")
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path))
    row = await backups.make_backup(bot, "app", made_by="UOPS1")
    await restore_backup(bot, row, into=scratch)
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS
    assert await fetch(scratch, "SELECT customer FROM orders WHERE id = 42") == "customer 42"

    # Over the original (--clean), after rows went missing.
    conn = await asyncpg.connect(dsn_of(source), timeout=5)
    try:
        await conn.execute("DELETE FROM orders WHERE id > 10")
    finally:
        await conn.close()
    await restore_backup(bot, row)
    assert await fetch(source, "SELECT count(*) FROM orders") == ROWS

    # The restore reads the version its check hashed (If-Match on the ETag): another version is refused.
    storage = bot.config.backups.storage
    seen = await s3.read_through(storage, row.file)
    assert seen.etag and seen.sha256 == row.sha256 and seen.complete
    other = await s3.read_through(storage, row.file, if_match='"0123456789abcdef0123456789abcdef"')
    assert other.error and "PreconditionFailed" in other.error, other.error


async def test_in_the_database_container_the_dump_uploads_and_the_restore_streams_in(make_bot, pg_databases, s3_server, bucket, tmp_path):
    container = fleet().get("OPSBOT_FLEET_PGCLIENT")
    if not container:
        pytest.fail("tests/.fleet.env has no OPSBOT_FLEET_PGCLIENT: run scripts/test-env.sh (make test does).")
    source = await pg_databases.create()
    scratch = pg_databases.name("opsbot_s3_scratch")
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path, container=container))
    row = await backups.make_backup(bot, "app", made_by="UOPS1")
    assert row.verified, row.verify_error
    assert hashlib.sha256(await object_bytes(bot, row.file)).hexdigest() == row.sha256
    await restore_backup(bot, row, into=scratch)  # the object streamed into the container's pg_restore (exec stdin)
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS


# --------------------------------------------------------------------------- retention


async def test_retention_deletes_objects_through_the_one_decision(make_bot, pg_databases, s3_server, bucket, tmp_path):
    source = await pg_databases.create(rows=10)
    clock = ManualClock(day(0, 1))
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path, retention={"daily_days": 1, "weekly_weeks": 0}), clock=clock)
    made = []
    for when in (day(0, 1), day(0, 2), day(2, 1), day(2, 3)):
        clock.advance(when - clock.now())
        made.append(await backups.make_backup(bot, "app", made_by="UOPS1"))
    async with bot.db.sessions() as session:
        rows = list((await session.execute(select(Backup).where(Backup.database == "app"))).scalars())
    decided = plan_retention(rows, bot.config.backups.retention, clock.now(), set())
    expected = sorted(b.id for b in decided.delete)
    assert expected, "the decision should let something go"

    plan = await backups.apply_retention(bot, "app")
    assert sorted(b.id for b in plan.delete) == expected
    gone = {b.file for b in made if b.id in expected}
    assert set(await keys(bot.config.backups.storage)) == {b.file for b in made} - gone
    for backup in made:
        if backup.id in expected:
            checked = await backups.verify_backup(bot, backup.id)
            assert "deleted by retention" in checked.problem


async def test_two_backups_started_in_the_same_second_get_their_own_keys(make_bot, pg_databases, s3_server, bucket, tmp_path):
    # A schedule and a deploy's backup_first at one instant: no key is shared, so retention of one never takes the other.
    source = await pg_databases.create(rows=10)
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path), clock=ManualClock(day(0, 1)))
    first, second = await asyncio.gather(
        backups.make_backup(bot, "app", made_by="schedule:nightly"), backups.make_backup(bot, "app", made_by="UOPS1")
    )
    assert first.created_at == second.created_at and first.file != second.file, (first.file, second.file)
    assert first.file.rsplit("_", 1)[0] == second.file.rsplit("_", 1)[0] == "nightly/app_20260101_010000"
    assert await keys(bot.config.backups.storage) == sorted([first.file, second.file])
    for row in (first, second):
        assert row.verified, row.verify_error
        data = await object_bytes(bot, row.file)
        assert len(data) == row.size and hashlib.sha256(data).hexdigest() == row.sha256
        checked = await backups.verify_backup(bot, row.id)
        assert checked.ok, (checked.problem, checked.unchecked)


# --------------------------------------------------------------------------- part sizes


def test_ten_thousand_parts_hold_s3s_largest_object_from_any_allowed_part_size():
    mib = 1 << 20
    assert [s3.part_size(n, 5 * mib) for n in (1, 900, 901, 1800, 1801, 2701)] == [5 * mib, 5 * mib, 10 * mib, 10 * mib, 20 * mib, 40 * mib]
    assert s3.part_size(10_000, 512 * mib) == 5 << 30  # never over S3's largest part
    for first_mb in (5, 8, 64, 512):  # backups.storage.part_size_mb's least, default, and largest
        sizes = [s3.part_size(n, first_mb * mib) for n in range(1, 10_001)]
        assert sum(sizes) >= 5 << 40, first_mb  # 10,000 parts reach 5 TiB
        assert min(sizes) >= 5 * mib and max(sizes) <= 5 << 30 and sizes == sorted(sizes)


async def test_a_real_upload_cuts_growing_parts_and_completes(s3_server, bucket):
    # The least part size config allows, doubling every 2 parts (the real schedule doubles every 900): 5, 5, 10, 10, then the rest.
    storage = storage_of(s3_server, bucket, part_size_mb=5)
    data = os.urandom(37 << 20)
    upload = s3.MultipartUpload(storage, "nightly/growing.dump", parts_per_size=2)
    await upload.open()
    try:
        for start in range(0, len(data), 1 << 20):
            await asyncio.to_thread(upload.write, data[start : start + (1 << 20)])  # write may wait on a part: off the loop
        await upload.finish()
        async with s3.client(storage) as client:
            listed = await client.list_parts(Bucket=bucket, Key=upload.key, UploadId=upload.upload_id)
        assert [part["Size"] >> 20 for part in listed["Parts"]] == [5, 5, 10, 10, 7]
    except BaseException:
        await upload.discard()
        raise
    await upload.commit()
    async with s3.client(storage) as client:
        answer = await client.get_object(Bucket=bucket, Key=upload.key)
        async with answer["Body"] as body:
            assert await body.read() == data
    assert await open_uploads(storage) == []


# --------------------------------------------------------------------------- an interrupted upload


async def big_database(pg_databases) -> str:
    """About 20 MB of dump (hex text compresses about 2:1): several 5 MiB parts."""
    name = await pg_databases.create(rows=10)
    conn = await asyncpg.connect(dsn_of(name), timeout=5)
    try:
        await conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, body text NOT NULL)")
        await conn.execute(
            "INSERT INTO blobs SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 40) i) "
            "FROM generate_series(1, 25000) g"
        )
    finally:
        await conn.close()
    return name


async def test_an_interrupted_upload_leaves_no_multipart_upload(make_bot, pg_databases, s3_server, bucket, tmp_path, monkeypatch):
    source = await big_database(pg_databases)
    bot = await make_bot(s3_config(source, s3_server, bucket, tmp_path, part_size_mb=5))
    storage = bot.config.backups.storage
    monkeypatch.setattr(pg, "PROGRESS_EVERY", 0.001)
    parts_seen = asyncio.Event()

    async def progress(size: int, elapsed: float) -> None:
        if size > 11 << 20 and not parts_seen.is_set():  # two parts cut: one uploaded, one in flight or queued
            parts_seen.set()

    task = asyncio.create_task(backups.make_backup(bot, "app", made_by="UOPS1", progress=progress))
    await asyncio.wait_for(parts_seen.wait(), 60)
    assert not task.done()
    [upload] = await open_uploads(storage)  # the upload is open while pg_dump runs
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await open_uploads(storage) == []
    assert await keys(storage) == []
    async with bot.db.sessions() as session:
        assert (await session.execute(select(Backup))).first() is None

    # pg_dump failing (no such database) aborts its upload too.
    bad = await make_bot(
        s3_config(source, s3_server, bucket, tmp_path).replace(dsn_of(source), dsn_of("opsbot_s3_no_such_db"))
    )
    with pytest.raises(pg.BackupError, match="pg_dump of app failed"):
        await backups.make_backup(bad, "app", made_by="UOPS1")
    assert await open_uploads(storage) == [] and await keys(storage) == []


# --------------------------------------------------------------------------- through the three transports


async def test_backup_and_restore_through_each_transport(drive, pg_databases, s3_server, bucket, tmp_path):
    source = await pg_databases.create()
    scratch = pg_databases.name("opsbot_s3_scratch")
    actions = {"restore": {"kind": "pg_restore", "approval": {"approvals": 1}}}  # one approver, nothing typed
    d = await drive(s3_config(source, s3_server, bucket, tmp_path, actions=actions))

    seen = await d.command("UOPS1", "/backup", "app")
    # The requester's line (the console prints the plan's message above it).
    assert re.search(r"^Request #\d+ succeeded\.$", seen.words, re.M), seen.words
    async with d.bot.db.sessions() as session:
        [row] = list((await session.execute(select(Backup))).scalars())
    assert row.storage == "s3" and row.verified
    assert hashlib.sha256(await object_bytes(d.bot, row.file)).hexdigest() == row.sha256

    seen = await d.command("UOPS2", "/backup", f"verify {row.id}")
    assert "verified: SHA-256 matches, pg_restore lists and reads every block." in seen.words, seen.words

    seen = await d.command("UOPS1", "/restore", f"{row.id} --into {scratch}")
    posted = re.search(r"^Request #(\d+) is posted and waits for approval\.$", seen.words, re.M)
    assert posted, seen.words
    request_id = int(posted.group(1))
    seen = await d.click("UOPS2", "action.approve", str(request_id))
    assert re.search(rf"^Request #{request_id} succeeded\.$", seen.words, re.M), seen.words
    assert await state_of(d.bot, request_id) == "succeeded"
    assert await fetch(scratch, "SELECT count(*) FROM orders") == ROWS


# --------------------------------------------------------------------------- two replicas


async def test_two_replicas_see_each_others_backups(make_bot, pg_databases, s3_server, bucket, tmp_path):
    source = await pg_databases.create(rows=10)
    scratch = pg_databases.name("opsbot_s3_scratch")
    shared = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    await upgrade_async(shared)
    text = s3_config(source, s3_server, bucket, tmp_path, retention={"daily_days": 1, "weekly_weeks": 0})
    clock_a, clock_b = ManualClock(day(0, 1)), ManualClock(day(2, 3))
    replica_a = await make_bot(text, shared, clock=clock_a)
    replica_b = await make_bot(text, shared, clock=clock_b)
    first = await backups.make_backup(replica_a, "app", made_by="UOPS1")
    clock_a.advance(day(0, 2) - clock_a.now())
    second = await backups.make_backup(replica_a, "app", made_by="UOPS1")

    # B lists, verifies and restores what A made; nothing of it lies on B's disk.
    assert [b.id for b in await backups.list_backups(replica_b.db, "app")] == [second.id, first.id]
    checked = await backups.verify_backup(replica_b, second.id)
    assert checked.ok, (checked.problem, checked.unchecked)
    await restore_backup(replica_b, checked.backup, into=scratch)
    assert await fetch(scratch, "SELECT count(*) FROM orders") == 10

    # B's retention deletes A's object (both older than a day on B's clock; the newest verified stays).
    plan = await backups.apply_retention(replica_b, "app")
    assert [b.id for b in plan.delete] == [first.id] and plan.unseen == []
    assert await keys(replica_a.config.backups.storage) == [second.file]

    # A replica still on local storage cannot see an s3 row, and says so instead of touching it.
    local = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "local"), shared)
    checked = await backups.verify_backup(local, second.id)
    assert checked.unchecked == "it is in s3 storage, and this replica's backups.storage is local", checked.unchecked


async def test_a_missing_bucket_is_one_sentence_and_records_nothing(make_bot, pg_databases, s3_server, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(s3_config(source, s3_server, "opsbot-no-such-bucket", tmp_path))
    with pytest.raises(pg.BackupError) as raised:
        await backups.make_backup(bot, "app", made_by="UOPS1")
    one_sentence(str(raised.value))
    assert "NoSuchBucket" in str(raised.value) and str(raised.value).endswith("no backup was made."), str(raised.value)
    async with bot.db.sessions() as session:
        assert (await session.execute(select(Backup))).first() is None


def test_credentials_are_named_never_written():
    base = {"version": 1, "services": {}, "roles": {}, "backups": {"storage": {"kind": "s3", "bucket": "backups-1"}}}
    config = parse_config(yaml.safe_dump(base))
    storage = config.backups.storage
    assert (storage.access_key_id_env, storage.secret_access_key_env, storage.session_token_env) == (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    )
    for bad in ({"aws_secret_access_key": "abc"}, {"endpoint_url": "https://key:secret@minio.internal"}, {"secret_access_key_env": "not a name"}):
        body = {**base, "backups": {"storage": {**base["backups"]["storage"], **bad}}}
        with pytest.raises(Exception):
            parse_config(yaml.safe_dump(body))
