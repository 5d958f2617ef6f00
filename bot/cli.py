"""The `opsbot` command line: serve, shell, run, start, config check|reference, migrate."""
from __future__ import annotations

import argparse
import asyncio
import io
import logging
import sys

from bot.config.loader import ConfigError, check_config_file, load_config
from bot.redaction import RedactingFilter
from bot.settings import Settings

CONSOLE_USER = "UCONSOLE"
IMPERSONATION_HELP = "allow --as and 'as U...' against a server database (the two-person rule then rests on whoever holds this terminal)"


def impersonation_allowed(settings: Settings, flag: bool) -> bool:
    """Acting as someone else is how one terminal plays requester and approver. On the embedded SQLite
    database of a bot without Slack that is a local rehearsal; next to a Slack bot (its container, its
    database) it would sidestep the two-person rule."""
    return flag or (settings.database_url.startswith("sqlite") and not settings.slack_configured)


def _impersonation_refusal(settings: Settings, args) -> str | None:
    if args.user != CONSOLE_USER and not impersonation_allowed(settings, args.allow_impersonation):
        return (
            f"--as {args.user[:20]} acts as another Slack user, which against a server database sidesteps the two-person rule; "
            "add --allow-impersonation if that is what you mean."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsbot", description="ChatOps bot: your runbooks as Slack commands.")
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve Slack (HTTP, or Socket Mode when SLACK_APP_TOKEN is set)")
    serve.add_argument("--config", help="app.yaml path (default: $OPSBOT_CONFIG or ./app.yaml)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, help="default: $PORT or 3000")
    serve.set_defaults(func=_serve)

    shell = sub.add_parser("shell", help="the console: type /health, get the reply as text")
    shell.add_argument("--config")
    shell.add_argument("--as", dest="user", default=CONSOLE_USER, help="Slack user ID to act as")
    shell.add_argument("--allow-impersonation", action="store_true", help=IMPERSONATION_HELP)
    shell.set_defaults(func=_shell)

    run = sub.add_parser("run", help='run one command, e.g. opsbot run "/health"; exit 0 ok, 1 warning/critical, 2 usage')
    run.add_argument("line", help='the command line, e.g. "/health backend"')
    run.add_argument("--config")
    run.add_argument("--as", dest="user", default=CONSOLE_USER)
    run.add_argument("--allow-impersonation", action="store_true", help=IMPERSONATION_HELP)
    run.set_defaults(func=_run)

    start = sub.add_parser("start", help="serve when Slack tokens are set, otherwise open the console (make run)")
    start.add_argument("--config")
    start.set_defaults(func=_start)

    config = sub.add_parser("config", help="check or document app.yaml")
    config_sub = config.add_subparsers(metavar="ACTION")
    check = config_sub.add_parser("check", help="validate app.yaml and explain every problem")
    check.add_argument("path", nargs="?")
    check.set_defaults(func=_config_check)
    reference = config_sub.add_parser("reference", help="print the app.yaml reference generated from the models")
    reference.set_defaults(func=_config_reference)

    migrate = sub.add_parser("migrate", help="upgrade DATABASE_URL to the newest schema")
    migrate.set_defaults(func=_migrate)
    return parser


def _logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def _load_bot(settings: Settings, config_path: str | None, group_lookup=None):
    from bot.app import Bot

    try:
        return Bot.from_settings(settings, config_path, group_lookup)
    except ConfigError as exc:
        print(f"opsbot cannot start: {config_path or settings.config_path} is not valid:\n{exc}", file=sys.stderr)
        return None


def _prepare_embedded_database(settings: Settings, *, in_child: bool = False) -> None:
    """The embedded SQLite database is created and migrated on the spot; PostgreSQL uses `opsbot migrate`.

    `in_child` runs the migration in a short-lived process, so the long-running server
    never loads Alembic (it keeps the idle server's memory down).
    """
    if not settings.database_url.startswith("sqlite"):
        return
    if in_child:
        import subprocess

        done = subprocess.run([sys.executable, "-m", "bot.cli", "migrate"], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr.strip() or "opsbot migrate failed")
        return
    from bot.migrate import upgrade

    upgrade(settings.database_url)


def _shell(args) -> int:
    from bot.transport.console import run_console
    from bot.transport.console_http import webhook_listener

    _logging(logging.WARNING)
    settings = Settings.from_env()
    refusal = _impersonation_refusal(settings, args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    _prepare_embedded_database(settings)
    bot = _load_bot(settings, args.config)
    if bot is None:
        return 2

    async def go():
        try:
            rehearsal = impersonation_allowed(settings, False)  # embedded SQLite, no Slack: never next to a serving bot
            async with webhook_listener(bot, settings.port if rehearsal else None, lambda line: print(line, file=sys.stderr)):
                await run_console(bot, args.user, allow_impersonation=impersonation_allowed(settings, args.allow_impersonation))
        finally:
            await bot.close()

    asyncio.run(go())
    return 0


def _run(args) -> int:
    from bot.pipeline.reply import Outcome
    from bot.pipeline.request import Request
    from bot.transport.console import CONSOLE_CHANNEL, Console, split_command
    from bot.transport.text import to_text

    _logging(logging.WARNING)
    parsed = split_command(args.line)
    if parsed is None:
        print(f"'{args.line[:40]}' is not a command; try opsbot run \"/health\".", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    refusal = _impersonation_refusal(settings, args)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    _prepare_embedded_database(settings)
    bot = _load_bot(settings, args.config)
    if bot is None:
        return 2

    async def go():
        # Messages a command posts besides its answer (an incident's headline) print before it.
        Console(bot, args.user, io.StringIO(), sys.stdout)
        try:
            return await bot.handle(
                Request(user_id=args.user, channel_id=CONSOLE_CHANNEL, command=parsed[0], text=parsed[1], transport="console", trigger="cli")
            )
        finally:
            await bot.close()

    reply = asyncio.run(go())
    print(to_text(reply))
    return Outcome(reply.outcome).exit_code


def _start(args) -> int:
    settings = Settings.from_env()
    if settings.slack_configured:
        return _serve(argparse.Namespace(config=args.config, host="0.0.0.0", port=None))
    print("No Slack tokens set (SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET or SLACK_APP_TOKEN): opening the console.", file=sys.stderr)
    return _shell(argparse.Namespace(config=args.config, user=CONSOLE_USER, allow_impersonation=False))


def _serve(args) -> int:
    _logging(logging.INFO)
    settings = Settings.from_env()
    missing = []
    if not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        missing.append("SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)")
    if missing:
        print(f"opsbot serve cannot start: set {' and '.join(missing)} in the environment or .env.", file=sys.stderr)
        return 2
    _prepare_embedded_database(settings, in_child=True)
    from bot.transport.serve import serve

    return asyncio.run(serve(settings, args.config, args.host, args.port or settings.port, _load_bot))


def _config_check(args) -> int:
    from commands.playbook_steps import playbook_step_problems

    path = args.path or Settings.from_env().config_path
    report = check_config_file(path, [playbook_step_problems])
    for problem in report.problems:
        print(problem)
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.config is None:
        count = len(report.problems)
        print(f"{count} problem{'s' if count != 1 else ''} in {path}.")
        return 1
    config = report.config
    checks = sum(len(s.checks) for s in config.services.values())
    print(f"{path} is valid: {len(config.services)} services, {checks} checks, {len(config.roles)} roles.")
    return 0


def _config_reference(args) -> int:
    from bot.config.reference import render_reference

    sys.stdout.write(render_reference())
    return 0


def _migrate(args) -> int:
    from bot.migrate import upgrade

    _logging(logging.INFO)
    settings = Settings.from_env()
    try:
        upgrade(settings.database_url)
    except Exception as exc:
        from bot.redaction import redact

        print(f"Migration failed: {redact(str(exc)).splitlines()[0][:300]}", file=sys.stderr)
        return 1
    print("Database is at the newest schema.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
