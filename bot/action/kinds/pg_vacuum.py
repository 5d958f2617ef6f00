"""pg_vacuum: VACUUM ANALYZE a database or one of its tables (runbook 001).

The table typed is checked twice before anything runs: by the `identifier` parameter type
(letters, digits, _ and one dot: no quotes, no ';'), then in the database, with a bound
parameter, which also says what it really is called. Only that name, quoted, reaches SQL.
"""
from __future__ import annotations

from bot.action.kinds.base import ActionKind, ExecutionReport, Plan, PlanContext, PlanError, RunContext, StepResult, Target
from bot.action.params import ParamType
from bot.config.types import format_duration
from bot.database import DatabaseError
from bot.database.names import NoSuchTable, Table, find_table
from bot.database.vacuum import vacuum


class PgVacuum(ActionKind):
    name = "pg_vacuum"
    verb = "vacuum"

    def params(self, spec) -> dict[str, ParamType]:
        return {
            "database": ParamType("database", "The database to vacuum."),
            "table": ParamType("identifier", "One table (or schema.table); the whole database when left out.", required=False),
        }

    async def plan(self, ctx: PlanContext, action: str, spec, params: dict) -> Plan:
        name, typed_table = params["database"], params.get("table")
        database = ctx.config.databases.get(name)
        if database is None:
            raise PlanError(f"Database {name} is not in app.yaml; nothing was requested.")
        step = {"database": name, "schema": None, "table": None, "timeout": spec.timeout}
        facts = {}
        if typed_table:
            table = await _table(name, database, typed_table)
            step.update(schema=table.schema, table=table.name)
            facts = {"size": table.size, "relkind": table.kind}
        return Plan(
            action=action,
            kind=self.name,
            subject=name,
            params={"database": name, "table": typed_table},
            steps=[step],
            targets=[Target("database", name)],
            facts=facts,
        )

    def describe(self, plan: Plan) -> list[str]:
        step = plan.steps[0]
        where = f"table {step['schema']}.{step['table']} of {step['database']}" if step["table"] else f"every table of {step['database']}"
        size = f" ({plan.facts['size']})" if plan.facts.get("size") else ""
        return [f"VACUUM ANALYZE {where}{size}, stopped after {format_duration(step['timeout'])}"]

    async def execute(self, ctx: RunContext, spec, plan: Plan) -> ExecutionReport:
        step = plan.steps[0]
        name = step["database"]
        report = ExecutionReport()
        database = ctx.config.databases.get(name)
        if database is None:
            report.steps.append(StepResult(name, False, f"Database {name} is no longer in app.yaml; nothing was vacuumed."))
            return report
        what = f"{step['schema']}.{step['table']}" if step["table"] else name
        try:
            table = None
            if step["table"]:
                # Looked up again: the approved name must still be that table, not something made since.
                table = await find_table(name, database, plan.params["table"])
                if (table.schema, table.name) != (step["schema"], step["table"]):
                    raise NoSuchTable(f"{plan.params['table']} names {table.shown} now, not the approved {what}; nothing was vacuumed")
            seconds = await vacuum(name, database, table, float(step["timeout"]))
        except DatabaseError as exc:
            report.steps.append(StepResult(what, False, f"VACUUM ANALYZE {what}: {str(exc).rstrip('.')}."))
            return report
        report.steps.append(StepResult(what, True, f"VACUUM ANALYZE {what} done in {seconds:.1f} s."))
        return report


async def _table(name: str, database, typed: str) -> Table:
    try:
        return await find_table(name, database, typed)
    except DatabaseError as exc:
        raise PlanError(f"{str(exc).rstrip('.')}; nothing was requested.") from None


KIND = PgVacuum()
