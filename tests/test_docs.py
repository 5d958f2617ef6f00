"""The README and docs/ stay navigable: every relative link reaches a file of the repository, every
#anchor a heading of its target (GitHub's slugs), external links are well-formed (not fetched: the
tests have no internet), the README stays short, and its tour and command table use only what /help
lists. References to a README or docs anchor from the code (comments, messages) are checked too, so
moving a section cannot leave a dangling "see README.md#...".
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from commands import ALL

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) or [text](target "title"); the text may hold code spans and escaped brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\\[\[\]])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
# A path to a Markdown page with an anchor, as code and comments would cite it.
CITED_ANCHOR = re.compile(r"((?:[\w./-]*/)?(?:README|docs/[\w-]+)\.md)#([\w-]+)")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text lowercased, punctuation other than - and _
    dropped, each space a hyphen (no collapsing)."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the page's headings make, duplicates numbered as GitHub numbers them (-1, -2)."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and autolink outside code."""
    found = []
    for number, line in prose_lines(path):
        text = CODE_SPAN.sub("", line)
        found += [(number, target) for target in LINK.findall(text)]
        found += [(number, target) for target in AUTOLINK.findall(text)]
    return found


def problem(page: Path, target: str) -> str | None:
    """Why `target`, linked from `page`, leads nowhere; None when it resolves."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        if not parts.netloc or " " in target or not re.fullmatch(r"[\w.-]+(:\d+)?", parts.netloc):
            return "is not a well-formed URL"
        return None
    if parts.scheme == "mailto":
        return None if "@" in parts.path else "is not an address"
    if parts.scheme or target.startswith("//"):
        return f"uses the scheme {parts.scheme or '//'}: only relative links and http(s) are expected"
    path, anchor = unquote(parts.path), parts.fragment
    resolved = (page.parent / path).resolve() if path else page
    if ROOT not in resolved.parents and resolved != ROOT:
        return "leads out of the repository"
    if not resolved.exists():
        return f"names {resolved.relative_to(ROOT)}, which does not exist"
    if anchor:
        if resolved.suffix != ".md":
            return "has an anchor into a file that is not Markdown"
        if anchor not in anchors(resolved):
            return f"has #{anchor}, which is no heading of {resolved.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    broken = [f"{page.relative_to(ROOT)}:{number}: ({target}) {why}"
              for number, target in links(page) if (why := problem(page, target))]
    assert not broken, "\n".join(broken)


def test_the_readme_is_at_most_300_lines():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines; move sections into docs/"


def help_commands() -> set[str]:
    return {f"/{spec.name}" for spec in ALL}


def test_the_tour_uses_only_commands_help_lists():
    typed = [line.split("opsbot> ", 1)[1] for line in README.read_text(encoding="utf-8").splitlines()
             if line.startswith("opsbot> /")]
    assert len(typed) >= 10, "the README's tour has no `opsbot> /command` lines any more"
    unknown = sorted({line.split()[0] for line in typed} - help_commands())
    assert not unknown, f"the tour types commands /help does not list: {unknown}"


def test_the_readme_table_lists_every_help_command():
    rows = {match.group(1) for match in re.finditer(r"^\| `(/[a-z]+)", README.read_text(encoding="utf-8"), re.MULTILINE)}
    assert help_commands() <= rows, f"README's command table misses {sorted(help_commands() - rows)}"
    assert rows <= help_commands(), f"README's command table lists what /help does not: {sorted(rows - help_commands())}"


def code_files() -> list[Path]:
    found = []
    for folder in ("bot", "commands", "interactions", "migrations", "scripts", "bench", "tests", "deploy", "examples"):
        found += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".sh", ".yaml", ".yml", ".j2", ".md")]
    return found + [ROOT / name for name in ("Makefile", "Dockerfile", "app.yaml", "pyproject.toml") if (ROOT / name).exists()]


def test_anchors_cited_from_the_code_exist():
    broken = []
    for path in code_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in CITED_ANCHOR.finditer(text):
            cited = match.group(1)  # README.md, ../README.md, docs/x.md, ../docs/x.md: all from the repository's root
            target = ROOT / ("README.md" if cited.endswith("README.md") else cited[cited.index("docs/"):])
            if not target.exists() or match.group(2) not in anchors(target):
                line = text.count("\n", 0, match.start()) + 1
                broken.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0)}")
    assert not broken, "anchors cited in code that no page has:\n" + "\n".join(broken)


def test_the_slugs_follow_github():
    assert slug("Actions: kinds, policy, `/run`") == "actions-kinds-policy-run"
    assert slug("`/incident silence <N> <duration>`") == "incident-silence-n-duration"
    assert slug("Databases: `/db`") == "databases-db"
    assert slug("The bot's own endpoints") == "the-bots-own-endpoints"
    assert slug("app.yaml") == "appyaml"
    assert slug("`sql` checks") == "sql-checks"
    assert slug("Replicas and coordination") == "replicas-and-coordination"


CITED_TEST = re.compile(r"(?:tests/)?\b(test_\w+)\.py::(test_\w+)")


def functions_of(module: str) -> set[str]:
    tree = ast.parse((ROOT / "tests" / f"{module}.py").read_text())
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_a_page_cites_exists(page):
    """The security model names a test for each case it claims: a renamed or removed test fails here."""
    text = page.read_text()
    missing = [f"tests/{module}.py::{name}" for module, name in CITED_TEST.findall(text)
               if not (ROOT / "tests" / f"{module}.py").exists() or name not in functions_of(module)]
    assert not missing, f"{page.relative_to(ROOT)} cites tests that do not exist: {missing}"
