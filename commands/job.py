"""/job NAME --dry-run, then /job NAME: a runbook job whose real run needs your own recent dry run.

Runbook 000 section 5: `enforce_data_retention --dry-run` first, then the real run. The dry
run needs the job's request role and no approval (it changes nothing, by the job's own
contract); the real run is a guarded action whose plan shows the dry run's output.
"""
from __future__ import annotations

from bot.action import policy
from bot.action.flow import request_action
from bot.audit import service as audit
from bot.config.types import format_duration
from bot.job.service import JobUnavailable, run_dry
from bot.pipeline.commands import ANY_ROLE, CommandSpec, Invocation
from bot.pipeline.parse import Grammar, Option
from bot.pipeline.reply import Context, Header, Outcome, Preformatted, Reply, Section

GRAMMAR = Grammar(usage="/job [NAME] [--dry-run]", rest="name", max_rest=1, options=(Option("--dry-run"),))


def _listing(config) -> Reply:
    if not config.jobs:
        return Reply(text="app.yaml declares no jobs.")
    lines = [
        f"{name}: {job.description or ' '.join(job.command)} (dry run: {' '.join(job.dry_run)}; valid {format_duration(job.dry_run_valid_for)})"
        for name, job in sorted(config.jobs.items())
    ]
    text = "\n".join(lines)
    # Preformatted: a command is shown as written (a `*` in a glob is not Slack's bold, nor the console's).
    return Reply(text=text, blocks=[Header("Jobs"), Preformatted(text), Context("/job NAME --dry-run first, then /job NAME.")])


async def handle(inv: Invocation) -> Reply:
    bot, names = inv.ctx, inv.args.positionals["name"]
    if not names:
        return _listing(bot.config)
    name = names[0]
    job = bot.config.jobs.get(name)
    if job is None:
        known = ", ".join(sorted(bot.config.jobs)) or "none are declared"
        return Reply.refusal(f"Unknown job '{name[:40]}'. Jobs: {known}.")
    if not inv.args.options.get("dry_run"):
        return await request_action(bot, inv.request, name, {})
    refusal = await policy.request_refusal(
        bot.roles, bot.config, job, policy.services([job.service]), inv.request.user_id, "run jobs of"
    )
    if refusal:
        return Reply.refusal(refusal, Outcome.denied)
    try:
        dry = await run_dry(bot, name, job, inv.request.user_id)
    except JobUnavailable as exc:
        await audit.record(bot.db, user_id=inv.request.user_id, command="job", arguments=f"{name} --dry-run", channel=inv.request.channel_id,
                           transport=inv.request.transport, outcome="failed", detail=str(exc), target=job.service)
        return Reply.refusal(str(exc), Outcome.error)
    outcome = "succeeded" if dry.exit_code == 0 else "failed"
    await audit.record(bot.db, user_id=inv.request.user_id, command="job", arguments=f"{name} --dry-run", channel=inv.request.channel_id,
                       transport=inv.request.transport, outcome=outcome, detail=f"dry run #{dry.id} exit {dry.exit_code}", target=job.service)
    until = format_duration(job.dry_run_valid_for)
    head = f"Dry run #{dry.id} of {name} exited {dry.exit_code}."
    follow = f"/job {name} requests the real run within {until}; its plan shows this output." if dry.exit_code == 0 else (
        "It failed: fix that before the real run.")
    blocks = [Header(f"/job {name} --dry-run"), Section(head), Preformatted(dry.output or "(no output)"), Context(follow)]
    return Reply(text=f"{head}\n{dry.output}\n{follow}", blocks=blocks, outcome=Outcome.ok if dry.exit_code == 0 else Outcome.warning)


COMMAND = CommandSpec(
    name="job",
    summary="Run a runbook job: --dry-run first, then the real run after approval (its plan shows the dry run).",
    grammar=GRAMMAR,
    handler=handle,
    roles=(ANY_ROLE,),  # the job's own policy decides
)
