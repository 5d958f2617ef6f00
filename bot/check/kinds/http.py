"""http: status code, JSON expectations, /ready-style nested checks (runbook 001), latency."""
from __future__ import annotations

import json
import time

import aiohttp

from bot.check.result import Finding, worst
from bot.config.models import HttpCheck
from bot.config.types import expand_env

_HEALTHY = {"healthy", "ok", "up", "pass", "passing", "green", "ready"}
_DEGRADED = {"degraded", "warn", "warning", "yellow"}


async def run(check: HttpCheck, ctx) -> list[Finding]:
    url = expand_env(check.url)
    headers = {k: expand_env(v) for k, v in check.headers.items()}
    started = time.perf_counter()
    try:
        async with ctx.http.request(check.method, url, headers=headers, allow_redirects=False) as response:
            body = await response.read()
            status_code = response.status
    except aiohttp.ClientConnectorError as exc:
        return [Finding("critical", f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or 'refused'})")]
    except aiohttp.ClientError as exc:
        return [Finding("critical", f"request failed: {exc.__class__.__name__}")]
    elapsed = time.perf_counter() - started

    problems: list[tuple[str, str]] = []
    if status_code not in check.expect_status:
        expected = " or ".join(str(s) for s in check.expect_status)
        problems.append(("critical", f"HTTP {status_code}, expected {expected}"))

    nested: list[Finding] = []
    if check.expect_json or check.nested_checks:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
            problems.append(("critical", "the response is not JSON"))
        if document is not None:
            for path, expected in check.expect_json.items():
                found = _lookup(document, path)
                if found != expected:
                    problems.append(("critical", f"{path} is {found!r}, expected {expected!r}"))
            if check.nested_checks:
                nested = _nested(_lookup(document, check.nested_checks), check.nested_checks)

    grade = check.latency.grade(elapsed)
    if grade != "ok":
        limit = check.latency.critical if grade == "critical" else check.latency.warn
        problems.append((grade, f"slow: {elapsed * 1000:.0f} ms (limit {limit * 1000:.0f} ms)"))

    if problems:
        main = Finding(worst(s for s, _ in problems), "; ".join(d for _, d in problems))
    else:
        main = Finding("ok", f"HTTP {status_code}")
    return [main] + nested


def _lookup(document, dotted: str):
    node = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _nested(checks, field: str) -> list[Finding]:
    if not isinstance(checks, dict):
        return [Finding("critical", f"no '{field}' object in the response", sub_label=field)]
    findings = []
    for name, entry in checks.items():
        entry = entry if isinstance(entry, dict) else {"status": entry}
        raw = str(entry.get("status", "")).lower()
        status = "ok" if raw in _HEALTHY else "warning" if raw in _DEGRADED else "critical"
        parts = [raw or "no status"]
        for key in ("message", "latency", "error"):
            if entry.get(key):
                parts.append(str(entry[key]))
        findings.append(Finding(status, ", ".join(parts), sub_label=str(name)))
    return findings
