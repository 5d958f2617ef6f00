"""Backup cost: the bot's backup (pg_dump -Fc streamed, hashed, written, then verified) against a
plain `pg_dump -Fc -f FILE` of the same database, and the bot process's memory while it runs.

Real: a fresh PostgreSQL database on the test server (created here, dropped at the end) with one
table of wide text rows made by generate_series until it holds at least --size-mb megabytes
(pg_database_size); the local pg_dump/pg_restore; the bot's own code path
(`bot.backup.service.make_backup`: the dump streamed through this process in 1 MiB chunks into
`<name>.partial` while SHA-256 is computed, renamed, then PGDMP header, size and
`pg_restore --list` checked, and the row recorded in a migrated SQLite database).

The two are run alternately (--runs times each, plain first) so both see the same caches; the
ratio is of the medians. Memory: this process's VmRSS sampled every 20 ms during the bot's
backup, minus VmRSS just before it (idle): the peak above idle. Targets: ratio <= 1.1x,
peak above idle < 50 MB.

With --s3 the bot's backup goes to backups.storage kind s3 (multipart upload of 8 MiB parts while
pg_dump runs, SHA-256 on the way, then pg_restore --list of the object streamed back) and the
baseline is `pg_dump -Fc | upload`: the same dump read from a pipe by this process and sent as a
plain aiobotocore multipart upload of 8 MiB parts, no hashing, no verification. The store is a
moto_server started here on a free port (--endpoint for another S3-compatible server, with
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set).

    .venv/bin/python bench/backup.py [--size-mb 500] [--runs 2] [--keep] [--s3 [--endpoint URL]]

No assert: it prints figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import yaml  # noqa: E402

from bot.backup import s3  # noqa: E402
from bot.backup import service as backups  # noqa: E402
from bot.config.loader import parse_config  # noqa: E402
from bot.migrate import upgrade_async  # noqa: E402
from bot.schedule.clock import SystemClock  # noqa: E402
from bot.storage import Database  # noqa: E402

PG_USER = os.environ.get("PGUSER", "postgres")
ADMIN_DSN = os.environ.get("OPSBOT_TEST_POSTGRES_DSN", f"postgresql://{PG_USER}@127.0.0.1:5432/test")
ROW_HASHES = 24  # md5 hex strings per row: ~790 bytes of text that compresses about 2:1, like real data


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakSampler:
    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def dsn(name: str) -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def make_database(name: str, size_mb: int) -> tuple[int, int]:
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(dsn(name), command_timeout=None)
    await conn.execute("CREATE TABLE wide (id bigint PRIMARY KEY, payload text NOT NULL)")
    parts = " || ".join(f"md5((g * {ROW_HASHES} + {i})::text)" for i in range(ROW_HASHES))
    batch, start = 100_000, 1
    while True:
        await conn.execute(f"INSERT INTO wide SELECT g, {parts} FROM generate_series($1::bigint, $2::bigint) g", start, start + batch - 1)
        start += batch
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        if size >= size_mb * 1024 * 1024:
            break
    await conn.execute("VACUUM ANALYZE wide")
    rows = await conn.fetchval("SELECT count(*) FROM wide")
    size = await conn.fetchval("SELECT pg_database_size(current_database())")
    await conn.close()
    return rows, size


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def plain_dump(name: str, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["pg_dump", "-Fc", "-f", str(path), f"--dbname={dsn(name)}"], check=True)
    return time.perf_counter() - started


PART = 8 << 20


async def plain_upload(name: str, storage, key: str) -> float:
    """pg_dump -Fc | a plain aiobotocore multipart upload (8 MiB parts, one at a time): the S3 baseline."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec("pg_dump", "-Fc", f"--dbname={dsn(name)}", stdout=asyncio.subprocess.PIPE)
    async with s3.client(storage) as client:
        upload = (await client.create_multipart_upload(Bucket=storage.bucket, Key=key))["UploadId"]
        parts, buffer = [], bytearray()

        async def send(body: bytes) -> None:
            answer = await client.upload_part(Bucket=storage.bucket, Key=key, UploadId=upload, PartNumber=len(parts) + 1, Body=body)
            parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})

        while block := await process.stdout.read(1 << 20):
            buffer += block
            if len(buffer) >= PART:
                await send(bytes(buffer[:PART]))
                del buffer[:PART]
        if buffer or not parts:
            await send(bytes(buffer))
        assert await process.wait() == 0
        await client.complete_multipart_upload(Bucket=storage.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
        await client.delete_object(Bucket=storage.bucket, Key=key)
    return time.perf_counter() - started


class MotoServer:
    """moto_server on 127.0.0.1:<free port> (the test extra's S3-compatible server)."""

    def __enter__(self):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        program = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen([str(program), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(10)


async def main(size_mb: int, runs: int, keep: bool, use_s3: bool = False, endpoint: str | None = None) -> None:
    if use_s3 and endpoint is None:
        with MotoServer() as server:
            return await main(size_mb, runs, keep, True, server.url)
    name = f"opsbot_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="opsbot-bench-backup-"))
    print(f"creating {name} (>= {size_mb} MB of wide text rows)...", flush=True)
    started = time.perf_counter()
    rows, size = await make_database(name, size_mb)
    print(f"  {rows:,} rows, pg_database_size {size / 2**20:,.0f} MiB, made in {time.perf_counter() - started:.0f} s", flush=True)
    db_url = f"sqlite+aiosqlite:///{work / 'opsbot.db'}"
    await upgrade_async(db_url)
    settings = {"directory": str(work / "backups")}
    if use_s3:
        bucket = f"opsbot-bench-{uuid.uuid4().hex[:8]}"
        settings["storage"] = {"kind": "s3", "bucket": bucket, "prefix": "bench/", "endpoint_url": endpoint, "region": "us-east-1", "addressing_style": "path"}
    config = parse_config(yaml.safe_dump({"version": 1, "databases": {"bench": {"dsn": dsn(name)}}, "backups": settings}))
    storage = config.backups.storage
    if use_s3:
        async with s3.client(storage) as client:
            await client.create_bucket(Bucket=storage.bucket)
    baseline = "pg_dump -Fc | plain multipart upload" if use_s3 else "plain pg_dump -Fc -f"
    db = Database(db_url)
    bot = SimpleNamespace(config=config, db=db, checks=SimpleNamespace(docker=None), clock=SystemClock())
    plain_times, bot_times, peaks, plain_peaks, sizes = [], [], [], [], {}
    try:
        for run in range(1, runs + 1):
            if use_s3:
                idle = rss_bytes()
                with PeakSampler() as sampler:
                    took = await plain_upload(name, storage, f"plain_{run}.dump")
                plain_peaks.append(sampler.peak - idle)
            else:
                path = work / f"plain_{run}.dump"
                took = plain_dump(name, path)
                path.unlink()
            plain_times.append(took)
            print(f"run {run}: {baseline}: {took:.2f} s", flush=True)

            idle = rss_bytes()
            t0 = time.perf_counter()
            with PeakSampler() as sampler:
                row = await backups.make_backup(bot, "bench", made_by="bench")
            took = time.perf_counter() - t0
            bot_times.append(took)
            peaks.append(sampler.peak - idle)
            sizes["bot"] = row.size
            assert row.verified, row.verify_error
            print(
                f"run {run}: bot backup (dump {row.duration:.2f} s + verify): {took:.2f} s ({row.size / 2**20:,.0f} MiB, verified), "
                f"RSS idle {idle / 2**20:.1f} MiB, peak above idle {(sampler.peak - idle) / 2**20:.1f} MiB",
                flush=True,
            )
            await backups.store_for(config).delete(row)
    finally:
        await db.close()
        if not keep:
            await drop_database(name)
            for leftover in sorted(work.rglob("*"), reverse=True):
                leftover.unlink() if leftover.is_file() else leftover.rmdir()
            work.rmdir()
    plain, ours = statistics.median(plain_times), statistics.median(bot_times)
    print()
    print(f"database: {rows:,} rows, {size / 2**20:,.0f} MiB; dump {sizes['bot'] / 2**20:,.0f} MiB")
    print(f"storage: {'s3 (' + endpoint + ')' if use_s3 else 'local'}")
    print(f"{baseline} (median of {runs}): {plain:.2f} s")
    print(f"bot backup, dump + verify (median of {runs}): {ours:.2f} s")
    print(f"ratio bot/baseline: {ours / plain:.3f}x (target <= 1.1x)")
    if plain_peaks:
        print(f"baseline peak RSS above idle: {max(plain_peaks) / 2**20:.1f} MiB")
    print(f"bot process peak RSS above idle during the backup: {max(peaks) / 2**20:.1f} MiB (target < 50 MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the database and files (for a second look)")
    parser.add_argument("--s3", action="store_true", help="backups.storage kind s3, against pg_dump -Fc | plain multipart upload")
    parser.add_argument("--endpoint", help="an S3-compatible server's URL (default: a moto_server started here)")
    args = parser.parse_args()
    asyncio.run(main(args.size_mb, args.runs, args.keep, args.s3, args.endpoint))
