"""alertmanager_silence: /incident silence <N> <duration>, an Alertmanager silence (API v2) on the incident's alerts.

The plan is one silence per integration the incident's alerts came from, matching exactly the labels
those alerts share (bot.alerts.silences); its targets are the incident's services, whose owners request
and approve it like any action. The silence runs from when it is executed for `duration`, and is
expired in Alertmanager when the incident resolves. Each silence goes on the incident's timeline.
"""
from __future__ import annotations

from datetime import timedelta

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.alerts import silences
from bot.config.types import format_duration
from bot.incident import service as incidents
from bot.incident.models import IncidentState


class AlertmanagerSilence(ActionKind):
    name = "alertmanager_silence"
    verb = "silence the alerts of"
    thing = "silence"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "incident": ParamType("int", "The incident whose alerts are silenced.", min=1, max=999_999_999),
            "duration": ParamType("duration", "How long the silence lasts at most.", max_duration=spec.max_duration),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        try:
            incident = await incidents.get(ctx.bot.db, params["incident"])
        except incidents.NoSuchIncident:
            raise PlanError(f"INC-{params['incident']} does not exist.") from None
        if incident.state is IncidentState.resolved:
            raise PlanError(f"{incident.ref} is resolved; its alerts need no silence.")
        if not incident.services:
            raise PlanError(f"{incident.ref} names no service, so nobody owns a silence of its alerts; give its route a service: in app.yaml.")
        by_integration = await silences.matchers_by_integration(ctx.bot.db, incident.id)
        if not by_integration:
            raise PlanError(f"{incident.ref} has no alerts to silence: it was not opened by an alert.")
        steps = []
        for integration, matchers in sorted(by_integration.items()):
            if silences.where_of(ctx.config, integration) is None:
                raise PlanError(f"alerts.integrations.{integration} has no alertmanager_url, so opsbot cannot silence its alerts.")
            if not matchers:
                raise PlanError(f"{incident.ref}'s alerts from {integration} share no label, so a silence would match every alert.")
            steps.append({"integration": integration, "matchers": matchers})
        params = {"incident": incident.id, "duration": params["duration"]}
        return Plan(action, self.name, incident.ref, params, steps, [Target("service", s) for s in incident.services],
                    facts={"title": incident.title})

    def describe(self, plan: Plan) -> list[str]:
        length = format_duration(plan.params["duration"])
        return [f"{s['integration']}: silence {silences.matchers_text(s['matchers'])} for {length} in Alertmanager, "
                f"expired when {plan.subject} resolves" for s in plan.steps]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        report = ExecutionReport()
        bot, incident_id = ctx.bot, plan.params["incident"]
        now = bot.clock.now()
        ends = now + timedelta(seconds=plan.params["duration"])
        comment = f"{plan.subject}: {plan.facts.get('title', '')} (opsbot request #{ctx.request_id}, requested by {ctx.requested_by})"
        for step in plan.steps:
            name, matchers = step["integration"], step["matchers"]
            where = silences.where_of(ctx.config, name)
            if where is None:
                report.steps.append(StepResult(name, False, f"{name}: its alertmanager_url is no longer in app.yaml; nothing was silenced."))
                break
            try:
                silence_id = await silences.create(where, matchers, now, ends, ctx.requested_by, comment[:1000], spec.timeout)
            except silences.SilenceFailed as exc:
                report.steps.append(StepResult(name, False, f"{name}: {exc}; nothing was silenced there."))
                break
            await silences.record(bot.db, incident_id=incident_id, integration=name, silence_id=silence_id, matchers=matchers,
                                  created_by=ctx.requested_by, now=now, ends=ends)
            text = f"Alertmanager silence {silence_id} on {silences.matchers_text(matchers)} until {ends:%Y-%m-%d %H:%M %Z}"
            await incidents.add_entry(bot.db, incident_id, incidents.Entry("silence", ctx.requested_by, text,
                                                                           {"silence": silence_id, "integration": name},
                                                                           key=f"silence:{silence_id}"), now)
            report.steps.append(StepResult(name, True, f"{name}: {text}."))
        return report


KIND = AlertmanagerSilence()
