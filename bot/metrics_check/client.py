"""A small Prometheus HTTP API client (GET /api/v1/query and /api/v1/query_range) on aiohttp.

Everything that goes wrong is a PrometheusError whose text is one plain sentence fit for
/health: the server refused the query (its own parse error), nothing answers at the URL,
no answer within the timeout, or a result that is not exactly one number.
"""
from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

MAX_BODY = 8 * 1024 * 1024  # an answer this big is thousands of series, never one number
MAX_ERROR = 300
MAX_LABELS = 120


class PrometheusError(Exception):
    """One sentence saying why the query gave no number."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value); one point for an instant query


class PrometheusClient:
    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float):
        self.session = session
        self.base = url.rstrip("/")
        self.timeout = timeout
        parts = urlsplit(self.base)
        # Named by host:port only: a user:password@ in the URL never reaches a reply.
        self.where = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the configured URL"

    async def instant(self, query: str, at: float) -> float:
        """The query's one number at `at` (unix time)."""
        data = await self._get("/api/v1/query", {"query": query, "time": _ts(at)})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return _number(result)
        if kind == "vector":
            series = _one_series(result)
            if series is None:
                raise PrometheusError("the query returned no series, so there is no number to grade (is the metric scraped under that name?)")
            value = _number(series.get("value"))
            if math.isnan(value):
                raise PrometheusError("the query returned NaN, not a number to grade (for example a rate divided by no traffic)")
            return value
        if kind == "matrix":
            raise PrometheusError("the query returns a range vector, not one number: wrap it, e.g. in rate() or max_over_time()")
        raise PrometheusError(f"the query returns a {kind or 'malformed'} result, not one number")

    async def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        """The query's points from start to end every step (empty when the series was absent throughout)."""
        params = {"query": query, "start": _ts(start), "end": _ts(end), "step": f"{step:g}"}
        data = await self._get("/api/v1/query_range", params)
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"the range query returned a {data.get('resultType') or 'malformed'} result instead of a matrix")
        series = _one_series(data.get("result"))
        if series is None:
            return []
        try:
            return [(float(t), float(v)) for t, v in series.get("values") or []]
        except (TypeError, ValueError):
            raise PrometheusError("Prometheus answered the range query with points that are not numbers") from None

    async def _get(self, path: str, params: dict[str, str]) -> dict:
        params = {**params, "timeout": f"{self.timeout:g}s"}  # the server gives up too, not only this client
        try:
            async with self.session.get(self.base + path, params=params, timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                status = response.status
                body = await _read_capped(response)
        except (TimeoutError, asyncio.TimeoutError):
            raise PrometheusError(f"Prometheus at {self.where} did not answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise PrometheusError(f"Prometheus at {self.where} is unreachable ({_connect_reason(exc)})") from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(f"Prometheus at {self.where} broke off the answer ({exc.__class__.__name__})") from None
        if len(body) > MAX_BODY:
            raise PrometheusError(f"Prometheus's answer is over {MAX_BODY // (1024 * 1024)} MB, so the query returns far more than one number")
        try:
            document = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{self.where} answered HTTP {status} with something that is not the Prometheus API (is prometheus.url right?)") from None
        if not isinstance(document, dict) or document.get("status") not in ("success", "error"):
            raise PrometheusError(f"{self.where} answered HTTP {status} with something that is not the Prometheus API (is prometheus.url right?)")
        if document["status"] == "error":
            raise PrometheusError(_server_error(document))
        data = document.get("data")
        if not isinstance(data, dict):
            raise PrometheusError("Prometheus answered without data")
        return data


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(chunks)


def _ts(value: float) -> str:
    return f"{value:.3f}"


def _number(sample) -> float:
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError):
        raise PrometheusError("Prometheus answered with a value that is not a number") from None


def _one_series(result) -> dict | None:
    """The only series of a vector or matrix; None when there is none; several are an error."""
    if not isinstance(result, list):
        raise PrometheusError("Prometheus answered with a malformed result")
    if not result:
        return None
    if len(result) > 1:
        labels = [item.get("metric") or {} for item in result]
        # Only the labels that tell the series apart: {code="200"}, {code="500"}.
        differ = {key for key in set().union(*labels) if len({str(each.get(key)) for each in labels}) > 1}
        shown = ", ".join(_labels({k: v for k, v in each.items() if k in differ or not differ}) for each in labels[:2])
        more = ", …" if len(result) > 2 else ""
        raise PrometheusError(
            f"the query returned {len(result)} series ({shown}{more}) where one number is needed: aggregate them, e.g. with sum() or max()"
        )
    return result[0]


def _labels(labels: dict) -> str:
    text = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return text if len(text) <= MAX_LABELS else text[: MAX_LABELS - 2] + "…}"


_KINDS = {
    "bad_data": "Prometheus rejected the query",
    "execution": "Prometheus could not run the query",
    "timeout": "Prometheus gave up on the query",
    "canceled": "Prometheus canceled the query",
    "internal": "Prometheus failed on the query",
    "unavailable": "Prometheus is not ready to answer",
}


_QUERY_PARAMETER = re.compile(r'^invalid parameter "query": ')


def _server_error(document: dict) -> str:
    """The server's error as one sentence: 'Prometheus rejected the query: 1:5: parse error: unexpected identifier "bar"'."""
    kind = str(document.get("errorType") or "")
    message = " ".join(str(document.get("error") or "no reason given").split()).rstrip(".")
    message = _QUERY_PARAMETER.sub("", message, count=1)  # 'invalid parameter "query": 1:5: parse error: ...'
    if len(message) > MAX_ERROR:
        message = message[: MAX_ERROR - 1] + "…"
    return f"{_KINDS.get(kind, 'Prometheus refused the query')}: {message}"


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return exc.__class__.__name__
