"""examples/: one stack per runbook, each passing `opsbot config check`, each threshold traced to a runbook.

Every examples/**/app.yaml is picked up by the glob, so a new example is checked without touching
this file. The bundled app.yaml is held to the same threshold rule: a number that decides what is
red at 3 a.m. says which runbook section it comes from.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ("000", "001", "002", "003", "004")
EXAMPLES = sorted((ROOT / "examples").glob("**/app.yaml"))
CITED = re.compile(r"runbook 00[0-4]", re.IGNORECASE)
# A threshold key: warn:/critical: (block or flow style) and the floor-style hit_rate_warn_below:.
THRESHOLD = re.compile(r"(?<![\w-])(warn|critical|hit_rate_warn_below)\s*:")


def example_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def config_check(path: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot.cli", "config", "check", str(path)],
                          capture_output=True, text=True, cwd=ROOT, env=environment, timeout=120)


@pytest.mark.parametrize("path", EXAMPLES, ids=example_id)
def test_example_passes_config_check(path):
    result = config_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{path} is valid" in result.stdout


def test_there_is_an_example_for_each_runbook():
    named = {}
    for path in EXAMPLES:
        first = path.read_text().splitlines()[0]
        found = re.match(r"# Runbook (00[0-4])\b", first)
        assert found, f"{example_id(path)}: the first line names its runbook ('# Runbook 00N ...'), not {first!r}"
        named.setdefault(found.group(1), []).append(example_id(path))
    assert sorted(named) == list(RUNBOOKS), named
    # Runbook 003 runs on compose or Kubernetes, and both forms are shipped.
    assert any("kubernetes:" in (ROOT / p).read_text() for p in named["003"])
    assert any("container:" in (ROOT / p).read_text() for p in named["003"])


def untraced_thresholds(text: str) -> list[str]:
    """Threshold lines whose own line, or their block (its first line and the comments just above it), cites no runbook."""
    lines = text.splitlines()
    missing = []
    for number, line in enumerate(lines):
        code = line.split("#", 1)[0]
        if not THRESHOLD.search(code) or CITED.search(line):
            continue
        own = len(line) - len(line.lstrip(" "))
        block = [line]
        parent = number - 1
        while parent >= 0:
            above = lines[parent]
            block.append(above)
            if above.strip() and not above.lstrip().startswith("#") and len(above) - len(above.lstrip(" ")) < own:
                break
            parent -= 1
        comment = parent - 1
        while comment >= 0 and lines[comment].lstrip().startswith("#"):
            block.append(lines[comment])
            comment -= 1
        if not any(CITED.search(each) for each in block):
            missing.append(f"line {number + 1}: {line.strip()}")
    return missing


@pytest.mark.parametrize("path", [ROOT / "app.yaml", *EXAMPLES], ids=example_id)
def test_every_threshold_names_its_runbook(path):
    missing = untraced_thresholds(path.read_text())
    assert not missing, f"{example_id(path)}: thresholds without a 'runbook 00N' comment on the line or its block:\n" + "\n".join(missing)


def test_the_threshold_rule_finds_an_uncited_threshold():
    cited = "checks:\n  # runbook 001: disk\n  - kind: disk\n    usage: {warn: 80, critical: 90}\n"
    assert untraced_thresholds(cited) == []
    on_line = "  - kind: memory\n    usage: {warn: 85, critical: 95}   # runbook 001: memory\n"
    assert untraced_thresholds(on_line) == []
    bare = "services:\n  # runbook 001\n  host:\n    checks:\n      - kind: disk\n        usage: {warn: 80, critical: 90}\n"
    assert untraced_thresholds(bare) == ["line 6: usage: {warn: 80, critical: 90}"]
    metric = "metrics:\n  latency:   # runbook 003 section 4\n    query: up\n    warn: 1\n    critical: 2\n"
    assert untraced_thresholds(metric) == []
