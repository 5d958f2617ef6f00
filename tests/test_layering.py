"""The house rules the code can check about itself, read from the source (nothing is imported).

- Only the composition root and what starts it name the Bot: handlers, jobs and slices receive a
  BotContext (bot/context.py), so no module of bot/pipeline/, no slice, command or interaction
  imports bot/app.py, and the import circle that ran through it cannot come back.
- No module of the bot, its commands, interactions or benchmarks is over 400 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# bot/app.py is the composition root; the CLI starts it; the benchmarks build bots of their own.
MAY_NAME_THE_BOT = {"bot/app.py", "bot/cli.py"}
MAX_LINES = 400


def _modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def _imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", _modules("bot", "commands", "interactions"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_composition_root_imports_the_bot(path):
    relative = str(path.relative_to(ROOT))
    if relative in MAY_NAME_THE_BOT:
        return
    assert "bot.app" not in _imports_of(path), f"{relative} imports bot.app: take a BotContext (bot/context.py) instead"


def test_the_pipeline_never_names_the_bot_class():
    for path in _modules("bot/pipeline"):
        names = {node.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
        strings = {node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert "Bot" not in names and "Bot" not in strings, f"{path.relative_to(ROOT)} names Bot"


def test_the_context_module_imports_nothing_at_run_time():
    """bot/context.py is named by every slice; were it to import one at run time, circles would return."""
    tree = ast.parse((ROOT / "bot" / "context.py").read_text())
    runtime = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert {node.module for node in runtime if isinstance(node, ast.ImportFrom)} <= {"__future__", "dataclasses", "typing"}


@pytest.mark.parametrize("path", _modules("bot", "commands", "interactions", "bench"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES}): split it by what its parts are"
