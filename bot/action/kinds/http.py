"""http: a declared request (a deploy-rollback hook, a cache warm-up); typed parameters go in a JSON body."""
from __future__ import annotations

import time

import aiohttp

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, RunContext, StepResult, Target
from bot.action.kinds.docker_health import wait_healthy
from bot.action.kinds.docker_exec import param_targets
from bot.action.params import ParamType, from_config
from bot.config.types import MissingEnvironment, expand_env
from bot.redaction import redact, redact_cut

MAX_BODY_SHOWN = 500
MAX_BODY_READ = 64 * 1024


class HttpRequest(ActionKind):
    name = "http"
    verb = "call the hook of"

    def params(self, spec) -> dict[str, ParamType]:
        return {name: from_config(declared) for name, declared in spec.params.items()}

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        # The URL as written (${VAR} unexpanded): the plan never holds a secret the environment supplies.
        step = {
            "service": spec.service, "method": spec.method, "url": spec.url, "body": params or None,
            "expect": list(spec.expect_status), "timeout": spec.timeout,
        }
        # Verification waits for the service's container to run and its checks to pass.
        verify = spec.verify.model_dump() if spec.verify and ctx.config.services[spec.service].container else None
        return Plan(action, self.name, spec.service, params, [step], [Target("service", spec.service), *param_targets(spec, params)], verify=verify)

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        body = f" with JSON body {', '.join(f'{k}={v}' for k, v in step['body'].items())}" if step["body"] else ""
        then = f", then run {step['service']}'s checks until they pass (up to {plan.verify['deadline']:g} s)" if plan.verify else ""
        return [f"{step['service']}: {step['method']} {redact(step['url'])}{body}, expecting {', '.join(map(str, step['expect']))}{then}"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step = plan.steps[0]
        service = step["service"]
        try:
            url = expand_env(step["url"])
            headers = {k: expand_env(v) for k, v in spec.headers.items()}
        except MissingEnvironment as exc:
            return ExecutionReport([StepResult(service, False, f"{service}: {exc}; set it in the bot's environment.")])
        started = time.perf_counter()
        try:
            timeout = aiohttp.ClientTimeout(total=step["timeout"])
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.request(step["method"], url, json=step["body"], headers=headers, allow_redirects=False) as response:
                    status = response.status
                    body = (await response.content.read(MAX_BODY_READ)).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ExecutionReport([StepResult(service, False, f"{service}: {step['method']} failed ({exc.__class__.__name__})")])
        took = time.perf_counter() - started
        shown = redact_cut(body.strip(), MAX_BODY_SHOWN)
        done = f"{step['method']} answered {status} in {took:.1f} s"
        if status not in step["expect"]:
            return ExecutionReport([StepResult(service, False, f"{service}: {done}, expected {', '.join(map(str, step['expect']))}", shown)])
        if plan.verify:
            return ExecutionReport([await wait_healthy(ctx, service, ctx.config.services[service].container, plan.verify, done)])
        return ExecutionReport([StepResult(service, True, f"{service}: {done}", shown if not plan.verify else "")])


KIND = HttpRequest()
