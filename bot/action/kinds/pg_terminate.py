"""pg_terminate: terminate the idle connections the plan lists, and only those (runbooks 000 and 003).

The plan names each backend by pid and backend_start, as found when planning. Approval can
take minutes, in which connections come and go, so recheck() does not plan again: execute()
checks each listed backend in the statement that terminates it (still the same connection,
still idle long enough) and reports, one line each, which died and why the others were skipped.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.config.types import format_duration
from bot.database import DatabaseError
from bot.database.backends import MAX_BACKENDS, idle_backends, terminate
from bot.database.display import age

MAX_OLDER_THAN = 30 * 86400.0


def _what(params: dict) -> str:
    """'idle for over 1h' / 'idle in transaction for over 10m'."""
    state = "idle in transaction" if params.get("idle_in_transaction") else "idle"
    return f"{state} for over {format_duration(params['older_than'])}"


class PgTerminate(ActionKind):
    name = "pg_terminate"
    verb = "terminate connections of"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "database": ParamType("database", "The database whose idle connections are terminated."),
            "older_than": ParamType(
                "duration", "Only connections idle at least this long.", max_duration=MAX_OLDER_THAN, default="1h", required=False
            ),
            "idle_in_transaction": ParamType(
                "bool", "Connections idle inside an open transaction instead of plain idle ones.", default=False, required=False
            ),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        name = params["database"]
        database = ctx.config.databases.get(name)
        if database is None:
            raise PlanError(f"Database {name} is not in app.yaml; nothing was requested.")
        older_than, in_transaction = float(params["older_than"]), bool(params.get("idle_in_transaction"))
        typed = {"database": name, "older_than": older_than, "idle_in_transaction": in_transaction}
        try:
            backends, matching = await idle_backends(name, database, older_than, in_transaction)
        except DatabaseError as exc:
            raise PlanError(f"{str(exc).rstrip('.')}; nothing was requested.") from None
        if not backends:
            raise PlanError(f"No idle connections match in {name} ({_what(typed)}, not opsbot's own); nothing was requested.")
        return Plan(
            action=action,
            kind=self.name,
            subject=name,
            params=typed,
            steps=[backend.as_step() for backend in backends],
            targets=[Target("database", name)],
            facts={"matching": matching, "listed": len(backends)},
        )

    def describe(self, plan: Plan) -> list[str]:
        return [
            f"terminate pid {step['pid']} ({step['user'] or '?'}, {step['application'] or 'no application name'}), "
            f"{step['state']} for {age(step['age_seconds'])}, connected since {step['backend_start'][:19].replace('T', ' ')} UTC"
            for step in plan.steps
        ]

    def notes(self, plan: Plan) -> list[str]:
        notes = [
            f"Only these {len(plan.steps)} connections of {plan.subject}: each is terminated only if it is still the same "
            f"connection and still {_what(plan.params)} when this runs."
        ]
        if plan.facts.get("matching", 0) > plan.facts.get("listed", 0):
            notes.append(f"{plan.facts['matching']} match; the {MAX_BACKENDS} idle longest are listed. Request it again for the rest.")
        return notes

    async def recheck(self, ctx: PlanContext, spec, plan: Plan) -> str | None:
        if plan.params.get("database") not in ctx.config.databases:
            return f"database {plan.params.get('database')} is no longer in app.yaml; request it again."
        return None  # connections come and go: execute() checks each listed one

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        name = plan.params["database"]
        report = ExecutionReport()
        database = ctx.config.databases.get(name)
        if database is None:
            report.steps.append(StepResult(name, False, f"Database {name} is no longer in app.yaml; nothing was terminated."))
            return report
        try:
            outcomes = await terminate(name, database, plan.steps, float(plan.params["older_than"]), bool(plan.params.get("idle_in_transaction")))
        except DatabaseError as exc:
            report.steps.append(StepResult(name, False, str(exc)))
            return report
        for outcome in outcomes:
            # A connection that went away or got busy was rightly left alone: skipping it is not a failure.
            report.steps.append(StepResult(f"pid {outcome.pid}", outcome.result != "failed", outcome.sentence))
        return report


KIND = PgTerminate()
