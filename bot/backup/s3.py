"""Dumps as objects in S3 or an S3-compatible store (MinIO, R2, B2), through aiobotocore.

aiobotocore is botocore (AWS's own signing, retries, endpoint and credential handling) on aiohttp,
which the bot already runs on; aioboto3 only wraps it, and s3fs/obstore bring a filesystem layer
or a Rust runtime we do not need.

MultipartUpload  the target of a dump: parts (sized by part_size()) are cut on the runner's writer thread
                 and uploaded one at a time while the next fills (so at most two parts are held); a
                 dump that does not finish aborts the upload, leaving no parts behind.
ObjectStream     an object read back in 1 MiB chunks into a FIFO the client reads as its standard input,
                 hashed on the way; `drain` reads on to the end when the client stops early, so the
                 SHA-256 always covers every byte.
Credentials come from the environment variables backups.storage names, read when a client is made.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import threading
import time
from contextlib import AsyncExitStack, asynccontextmanager

from bot.backup.errors import BackupError
from bot.backup.runners import CHUNK
from bot.config.types import expand_env
from bot.redaction import redact_cut

MAGIC = b"PGDMP"
MAX_PART_SIZE = 5 << 30  # S3's largest part, 5 GiB
PARTS_PER_SIZE = 900  # parts cut at one size before it doubles


def part_size(number: int, first: int, per_size: int = PARTS_PER_SIZE) -> int:
    """The size of part `number` (from 1) of an upload whose first parts are `first` bytes.

    S3 allows 10,000 parts of differing sizes (each but the last at least 5 MiB), and learns the
    object's size only at the end: a fixed 8 MiB part fails a dump over 78 GiB at part 10,001, after
    uploading all of it. Doubling every 900 parts (up to 5 GiB) makes 10,000 parts hold over 5 TiB,
    S3's largest object, even from 5 MiB, the least backups.storage.part_size_mb allows; the memory
    held grows with the dump (about twice the current part).
    """
    return min(first << ((number - 1) // per_size), MAX_PART_SIZE)


@functools.cache
def _session():
    """One botocore session per process: it loads S3's service model once, not for every client."""
    from aiobotocore.session import get_session

    return get_session()


def client(storage):
    """An async S3 client context for backups.storage (kind s3)."""
    from aiobotocore.config import AioConfig

    env = os.environ
    credentials = {}
    if env.get(storage.access_key_id_env):
        credentials = {
            "aws_access_key_id": env[storage.access_key_id_env],
            "aws_secret_access_key": env.get(storage.secret_access_key_env, ""),
            "aws_session_token": env.get(storage.session_token_env) or None,
        }
    config = AioConfig(
        s3={"addressing_style": storage.addressing_style},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        # CRCs only where the API requires them: several S3-compatible stores reject the newer default headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    endpoint = expand_env(storage.endpoint_url) if storage.endpoint_url else None
    return _session().create_client("s3", endpoint_url=endpoint, region_name=storage.region, config=config, **credentials)


def failure(exc: BaseException) -> str:
    """A store error as a sentence fragment: the S3 error code and message, redacted and cut."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        return redact_cut(f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": "), 200)
    return redact_cut(f"{exc.__class__.__name__}: {exc}", 200)


def missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str(((response or {}).get("Error") or {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in ("404", "NoSuchKey", "NotFound")


class MultipartUpload:
    """A dump target (see bot.backup.dump.dump): write() runs on the runner's writer thread and blocks
    while the previous part is still uploading, which holds pg_dump back instead of growing memory."""

    def __init__(self, storage, key: str, *, parts_per_size: int = PARTS_PER_SIZE):
        self.storage, self.key = storage, key
        self.first_part_size = storage.part_size_mb << 20
        self.parts_per_size = parts_per_size  # smaller only in tests, to see parts grow within a few
        self.buffer = bytearray()
        self.parts: list[dict] = []
        self.upload_id: str | None = None
        self.in_flight = None  # concurrent.futures.Future of the part being uploaded
        self.lock = threading.Lock()
        self.closed = False
        self.stack = AsyncExitStack()

    async def open(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.s3 = await self.stack.enter_async_context(client(self.storage))
        try:
            created = await self.s3.create_multipart_upload(Bucket=self.storage.bucket, Key=self.key)
        except Exception as exc:
            await self.stack.aclose()
            raise BackupError(f"the upload to s3://{self.storage.bucket}/{self.key} could not start ({failure(exc)}); no backup was made.") from None
        self.upload_id = created["UploadId"]

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= (size := part_size(len(self.parts) + 1, self.first_part_size, self.parts_per_size)):
            part = bytes(self.buffer[:size])
            del self.buffer[:size]
            self._send(part)

    def _send(self, part: bytes) -> None:
        previous = self.in_flight
        if previous is not None:
            previous.result()  # raises the previous part's failure here, which stops the dump
        with self.lock:
            if self.closed:
                raise BackupError("the upload was aborted")
            self.parts.append({"PartNumber": len(self.parts) + 1})
            self.in_flight = asyncio.run_coroutine_threadsafe(self._upload(len(self.parts), part), self.loop)

    async def _upload(self, number: int, body: bytes) -> None:
        try:
            answer = await self.s3.upload_part(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
            )
        except Exception as exc:
            raise BackupError(f"uploading part {number} to s3://{self.storage.bucket}/{self.key} failed ({failure(exc)})") from None
        self.parts[number - 1]["ETag"] = answer["ETag"]

    async def finish(self) -> None:
        if self.buffer or not self.parts:
            rest, self.buffer = bytes(self.buffer), bytearray()
            await asyncio.to_thread(self._send, rest)  # _send may wait on a part: not on the event loop
        if self.in_flight is not None:
            await asyncio.wrap_future(self.in_flight)

    async def commit(self) -> None:
        try:
            await self.s3.complete_multipart_upload(
                Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
            )
        except Exception as exc:
            raise BackupError(f"completing the upload of s3://{self.storage.bucket}/{self.key} failed ({failure(exc)}); no backup was kept.") from None
        finally:
            self.closed = True
        await self.stack.aclose()

    async def discard(self) -> None:
        """Abort the upload: its parts are deleted (after the one in flight lands, so none is left behind)."""
        with self.lock:
            self.closed = True
            last = self.in_flight
        if last is not None:
            try:
                await asyncio.wrap_future(last)
            except BaseException:
                pass
        try:
            if self.upload_id is not None:
                await self.s3.abort_multipart_upload(Bucket=self.storage.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:
            pass  # the store's lifecycle rule for incomplete uploads is the backstop (docs/deploying.md)
        finally:
            await self.stack.aclose()


class ObjectStream:
    """An object streamed into a FIFO (`path`), hashed on the way. After the `stream` context:
    size, sha256, head (first bytes), etag, complete (read to its end), error (a store failure)."""

    def __init__(self, path: str):
        self.path = path
        self.size = 0
        self.hash = hashlib.sha256()
        self.head = b""
        self.etag: str | None = None
        self.complete = False
        self.error: str | None = None
        self.broken = False  # the reader closed its end
        self.stop = threading.Event()

    @property
    def sha256(self) -> str:
        return self.hash.hexdigest()

    def _open_writer(self):
        """The FIFO's write end once a reader opens it; None when the stream stopped first."""
        while not self.stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(0.01)
                continue
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            return os.fdopen(fd, "wb")
        return None

    def _take(self, block: bytes, out) -> None:
        """Hash the block and hand it to the reader (on a thread: the write waits for the reader)."""
        if len(self.head) < len(MAGIC):
            self.head += block[: len(MAGIC) - len(self.head)]
        self.hash.update(block)
        self.size += len(block)
        if out is not None and not self.broken:
            try:
                out.write(block)
            except (BrokenPipeError, ValueError):
                self.broken = True


@asynccontextmanager
async def stream(storage, key: str, *, drain: bool, fifo: bool = True, if_match: str | None = None):
    """Stream s3://bucket/key into a FIFO at ObjectStream.path (fifo=False: only hash it). With `drain` the
    object is read to its end even after the reader stops; without, reading stops with the reader."""
    folder = tempfile.mkdtemp(prefix="opsbot-s3-")  # mode 0700
    path = os.path.join(folder, "archive")
    os.mkfifo(path, 0o600)
    seen = ObjectStream(path)

    async def pump():
        out = None
        try:
            async with client(storage) as s3:
                extra = {"IfMatch": if_match} if if_match else {}
                answer = await s3.get_object(Bucket=storage.bucket, Key=key, **extra)
                seen.etag = answer.get("ETag")
                body = answer["Body"]
                try:
                    if fifo:
                        out = await asyncio.to_thread(seen._open_writer)
                    while not (seen.stop.is_set() and not drain):
                        block = await body.read(CHUNK)
                        if not block:
                            seen.complete = True
                            break
                        await asyncio.to_thread(seen._take, block, out)
                        if seen.broken and not drain:
                            break
                finally:
                    body.close()
        except Exception as exc:
            seen.error = failure(exc)
        finally:
            if fifo and out is None:
                # A reader may be waiting to open the FIFO: it gets an end of file instead (never a hang).
                out = await asyncio.to_thread(seen._open_writer)
            if out is not None:
                try:
                    await asyncio.to_thread(out.close)
                except (BrokenPipeError, OSError):
                    pass

    task = asyncio.create_task(pump())
    try:
        yield seen
    finally:
        seen.stop.set()  # a writer still waiting for a reader gives up; without drain, reading stops
        try:
            await asyncio.shield(task)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def read_through(storage, key: str, *, if_match: str | None = None) -> ObjectStream:
    """Hash the whole object (no reader): size, SHA-256, header."""
    async with stream(storage, key, drain=True, fifo=False, if_match=if_match) as seen:
        pass
    return seen
