"""The connection to one Kubernetes API server, and its errors as one plain sentence.

The client is kubernetes-asyncio: the API's own generated client (every path, query parameter
and patch Content-Type as the OpenAPI document says), over aiohttp, which the bot already runs
on, so it adds no second HTTP stack (lightkube would bring httpx; kr8s is sync-first underneath).
It reads a kubeconfig (targets.kubernetes.kubeconfig, optionally a context) or, without one, the
pod's service account (in-cluster). The ApiClient is made on first use, not at config load, so a
bot whose cluster is unreachable still starts and says so per command.

Every call is bounded by CALL_TIMEOUT and turns the library's exceptions into TargetError with a
sentence naming what was refused, never the response body (it may echo a token or an object).
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from bot.redaction import redact_cut
from bot.targets.base import TargetError

CALL_TIMEOUT = 15.0  # seconds for one API call (a log stream has its own byte bound)
MAX_ANSWER = 32 * 1024 * 1024  # bytes of one answer read: a list of a few thousand pods, with room
MAX_STATUS = 64 * 1024  # bytes of a refusal's Status parsed for its message


class Cluster:
    """Lazily connected API groups for one `targets.kubernetes` connection."""

    def __init__(self, connection):
        self.connection = connection
        self._api: client.ApiClient | None = None
        self._lock = asyncio.Lock()

    async def _client(self) -> client.ApiClient:
        async with self._lock:
            if self._api is None:
                try:
                    if self.connection.kubeconfig:
                        self._api = await config.new_client_from_config(config_file=self.connection.kubeconfig, context=self.connection.context)
                    else:
                        configuration = client.Configuration()
                        config.load_incluster_config(client_configuration=configuration)
                        self._api = client.ApiClient(configuration)
                except (ConfigException, OSError, ValueError) as exc:
                    where = self.connection.kubeconfig or "the in-cluster service account"
                    raise TargetError(f"cannot load the Kubernetes credentials from {where} ({type(exc).__name__})") from None
            return self._api

    async def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(await self._client())

    async def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(await self._client())

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None


async def call(what: str, request):
    """Await one API request (`what`: "read deployment shop/web"), its errors as TargetError."""
    try:
        return await asyncio.wait_for(request, CALL_TIMEOUT)
    except client.ApiException as exc:
        raise TargetError(refusal(what, exc.status, _message(exc.body))) from None
    except (asyncio.TimeoutError, TimeoutError):
        raise TargetError(f"the Kubernetes API did not answer within {CALL_TIMEOUT:g} s to {what}") from None
    except aiohttp.ClientError as exc:
        raise TargetError(f"the Kubernetes API is unreachable ({type(exc).__name__}) to {what}") from None


async def call_model(what: str, request, api_client, response_type: str | None):
    """A request made with _preload_content=False: its body read up to MAX_ANSWER bytes within
    CALL_TIMEOUT (a hostile or broken API server cannot fill the bot's memory), and its models built
    in a worker thread (a list of hundreds of pods takes the generated client tens of milliseconds).
    response_type None: only the status matters (a patch), and the body is not parsed."""
    response = await call(what, request)
    try:
        body = await asyncio.wait_for(read_bounded(response.content, MAX_ANSWER + 1), CALL_TIMEOUT)
    except (asyncio.TimeoutError, TimeoutError):
        raise TargetError(f"the Kubernetes API did not answer within {CALL_TIMEOUT:g} s to {what}") from None
    except aiohttp.ClientError as exc:
        raise TargetError(f"the Kubernetes API is unreachable ({type(exc).__name__}) to {what}") from None
    finally:
        response.release()
    if len(body) > MAX_ANSWER:
        raise TargetError(f"the Kubernetes API sent more than {MAX_ANSWER // (1024 * 1024)} MB to {what}, which opsbot does not read")
    if not 200 <= response.status <= 299:
        # A Status is small: a larger body is not parsed on the event loop for the sake of a message.
        raise TargetError(refusal(what, response.status, _message(body) if len(body) <= MAX_STATUS else ""))
    if response_type is None:
        return None
    try:
        return await asyncio.to_thread(api_client.deserialize, _Body(body), response_type)
    except (ValueError, TypeError, AttributeError):  # not JSON, or not the shape the schema says
        raise TargetError(f"the Kubernetes API sent an answer that is not a {response_type} to {what}") from None


async def read_bounded(stream, limit: int) -> bytes:
    """The body up to `limit` bytes (read() may return any part of it)."""
    chunks, size = [], 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class _Body:
    """What ApiClient.deserialize reads: the response's bytes as `data`."""

    def __init__(self, data: bytes):
        self.data = data


def refusal(what: str, status: int, message: str = "") -> str:
    if status == 401:
        return f"the Kubernetes API refused opsbot's credentials (401) to {what}"
    if status == 403:
        return f"opsbot's Kubernetes role does not allow it to {what} (403)"
    if status == 404:
        return f"cannot {what}: it does not exist (404)"
    if status == 409:
        return f"cannot {what}: it changed at the same time (409 Conflict); nothing was changed"
    said = f": {message}" if message else ""
    return f"the Kubernetes API refused to {what} ({status}){said}"


def _message(body) -> str:
    """A Status object's own message, cut short; the body is otherwise not repeated."""
    try:
        status = json.loads(body) if isinstance(body, (str, bytes)) else {}
    except ValueError:
        return ""
    message = status.get("message", "") if isinstance(status, dict) else ""
    # The server's words (an admission webhook's, an echoed object's): redacted before they are cut or shown.
    return redact_cut(message, 200) if isinstance(message, str) else ""
