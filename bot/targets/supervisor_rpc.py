"""supervisord's XML-RPC interface, spoken over aiohttp.

Why this way: the bot already runs on aiohttp, which gives per-call timeouts, basic auth and
unix-socket URLs (UnixConnector) without blocking the event loop; the stdlib's xmlrpc.client
(maintained with Python) does the marshalling both ways (dumps/loads). The async XML-RPC
packages on PyPI add a second HTTP client (aioxmlrpc: httpx) or are unmaintained
(aiohttp-xmlrpc, last release 2022), and xmlrpc.client's own ServerProxy blocks a thread per call
and has no unix sockets. Responses are read up to a cap, and large ones are parsed off the loop.
Expat (>= 2.4.1 in every supported Python) refuses entity-expansion bombs.
"""
from __future__ import annotations

import asyncio
import base64
import os
import xmlrpc.client
from xml.parsers.expat import ExpatError

import aiohttp

from bot.config.types import register_env_value
from bot.redaction import redact_cut
from bot.targets.base import TargetError

MAX_RESPONSE = 8 * 1024 * 1024  # bytes of XML read from supervisord; a log tail is the largest answer
PARSE_ON_LOOP = 64 * 1024  # answers smaller than this are parsed on the event loop

# supervisor.xmlrpc.Faults codes the adapter tells apart.
UNKNOWN_METHOD = 1
BAD_NAME = 10
NO_FILE = 20
ABNORMAL_TERMINATION = 40
SPAWN_ERROR = 50
ALREADY_STARTED = 60
NOT_RUNNING = 70


class SupervisorFault(TargetError):
    """supervisord answered with an XML-RPC fault (a name it does not know, a process that would not start)."""

    def __init__(self, code: int, text: str):
        self.code = code
        super().__init__(f"supervisord said {text}")


class SupervisorRPC:
    def __init__(self, connection):
        self.connection = connection  # bot.config.target_models.SupervisorConnection
        self._session: aiohttp.ClientSession | None = None
        if connection.url.startswith("unix://"):
            self._socket: str | None = connection.url[len("unix://") :]
            self._endpoint = "http://localhost/RPC2"  # the host is ignored on a unix socket
        else:
            self._socket, self._endpoint = None, connection.url

    @property
    def where(self) -> str:
        return f"supervisord at {self.connection.url}"

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A new connection per call: on a kept-alive one supervisord's HTTP server answers ~40 ms
            # late (bench/supervisor_rpc.py: p50 44 ms kept alive, 2 ms closed).
            if self._socket:
                connector = aiohttp.UnixConnector(path=self._socket, force_close=True)
            else:
                connector = aiohttp.TCPConnector(limit=8, force_close=True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _headers(self) -> dict[str, str]:
        """Content type, and HTTP basic auth when credentials are configured (RFC 7617, built here:
        aiohttp's BasicAuth is deprecated and its replacement is not in every aiohttp we allow)."""
        names = (self.connection.username_env, self.connection.password_env)
        headers = {"Content-Type": "text/xml"}
        if names[0] is None or names[1] is None:
            return headers
        missing = [name for name in names if name not in os.environ]
        if missing:
            raise TargetError(f"environment variable {', '.join(missing)} is not set, so opsbot cannot log in to supervisord")
        password = os.environ[names[1]]
        register_env_value(password, credential=True)  # masked wherever it could be echoed
        token = base64.b64encode(f"{os.environ[names[0]]}:{password}".encode()).decode()
        return {**headers, "Authorization": f"Basic {token}"}

    async def call(self, method: str, *params, extra_time: float = 0.0):
        """One call, under the connection's timeout (plus `extra_time` for calls that wait, like a stop)."""
        body = xmlrpc.client.dumps(params, method, allow_none=False).encode()
        timeout = aiohttp.ClientTimeout(total=self.connection.timeout + extra_time)
        try:
            async with self._session_now().post(
                self._endpoint, data=body, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status == 401:
                    raise TargetError(f"{self.where} refused opsbot's credentials (HTTP 401)")
                if response.status != 200:
                    raise TargetError(f"{self.where} answered HTTP {response.status}")
                raw = await _read_capped(response.content)
        except (asyncio.TimeoutError, TimeoutError):
            raise TargetError(f"{self.where} did not answer within {self.connection.timeout + extra_time:g} s") from None
        except aiohttp.ClientError as exc:
            raise TargetError(f"{self.where} is not reachable ({exc.__class__.__name__})") from None
        if len(raw) > MAX_RESPONSE:
            raise TargetError(f"{self.where} sent more than {MAX_RESPONSE // (1024 * 1024)} MB for {method}")
        return await (_parse(raw) if len(raw) <= PARSE_ON_LOOP else asyncio.to_thread(_parse_now, raw))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _read_capped(stream) -> bytes:
    """The body, stopping one byte past MAX_RESPONSE (read() may return any part of it)."""
    chunks, size = [], 0
    while size <= MAX_RESPONSE:
        chunk = await stream.read(MAX_RESPONSE + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _parse(raw: bytes):
    return _parse_now(raw)


def _parse_now(raw: bytes):
    try:
        (result,), _ = xmlrpc.client.loads(raw, use_builtin_types=True)
    except xmlrpc.client.Fault as fault:
        # supervisord's words (a spawn error may quote a command line): redacted before cut or shown.
        text = redact_cut(str(fault.faultString)[:4096].splitlines()[0], 300) if fault.faultString else str(fault.faultCode)
        raise SupervisorFault(int(fault.faultCode), text) from None
    except (ExpatError, xmlrpc.client.ResponseError, ValueError):
        raise TargetError("supervisord sent an answer that is not XML-RPC") from None
    return result
