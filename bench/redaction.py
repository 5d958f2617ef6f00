"""Redaction: what it catches (recall on a corpus of secrets), what it leaves alone (false positives on
ordinary log lines), and how long it takes on hostile text next to ordinary log text of the same size.

Recall: tests/redaction_corpus.py builds lines holding secrets, with token shapes as public secret
scanners document them (gitleaks, trufflehog, detect-secrets, GitHub secret scanning), synthesised from
a seed. A case counts as caught when no 8 characters of its secret are left. False positives: 1,000
ordinary lines (stack traces, git SHAs, UUIDs, pod names, URLs without credentials, IPv6 addresses),
each of which must come back unchanged. Goal: recall of 95 % or more, 0 changed lines.

Time: redaction runs on every log record, every /logs line and every audit write; a review found its
old patterns took quadratic time on long runs of letters (64 KB: 9.8 s). This script redacts 1 MB of
each adversarial shape several times and reports p50/p99 per MB, and the ratio to 1 MB of realistic
log lines (the baseline, same run). Linear patterns keep every ratio a small constant.

    .venv/bin/python bench/redaction.py [--size 1000000] [--repeat 7] [--no-timing]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bot.redaction import redact, redact_lines  # noqa: E402
from redaction_corpus import EMPTY_VALUES, corpus, leaked, ordinary_lines, score  # noqa: E402

LOG_LINE = (
    '2026-11-24T03:12:45Z INFO api request_id=7f3a method=GET path=/api/v1/bookings status=200 duration_ms=42 '
    'user=1842 db=postgresql://app:${DB_PASSWORD}@db:5432/app cache=redis://cache:6379/0\n'
)


def shapes(size: int) -> dict[str, str]:
    def fill(piece: str) -> str:
        return (piece * (size // len(piece) + 1))[:size]

    return {
        "log lines (baseline)": fill(LOG_LINE),
        "letters": fill("a"),
        "key repeated": fill("key"),
        "KEY_ repeated": fill("KEY_"),
        ":// repeated": fill("://"),
        ": and @ storm": fill(":@"),
        "password= storm": fill("password="),
        "eyJ run": fill("eyJ"),
        "Basic storm": fill("Basic "),
        "PEM headers": fill("-----BEGIN RSA PRIVATE KEY-----\n"),
        "curl -u storm": fill("curl -u a:"),
        "a://a: (no @)": fill("a://a:"),
        "token := storm": fill("token := "),
        "digits:AA storm": fill("123456789:AA"),
        "sk- storm": fill("sk-"),
    }


def timed(fn, text: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - started)
    return sorted(times)


def recall() -> None:
    cases = corpus()
    scores = score(redact, cases)
    tokens = {category.removeprefix("token: "): v for category, v in scores.items() if category.startswith("token: ")}
    rows = {"bare tokens": (sum(c for c, _ in tokens.values()), sum(t for _, t in tokens.values()))}
    rows.update((category, v) for category, v in scores.items() if not category.startswith("token: "))
    print(f"recall on {len(cases)} cases: {rows['bare tokens'][1]} bare tokens of {len(tokens)} providers, {len(cases) - rows['bare tokens'][1]} others")
    print(f"{'category':<32} {'caught':>7} {'cases':>6} {'recall':>7}")
    for name, (caught, total) in rows.items():
        print(f"{name:<32} {caught:>7} {total:>6} {caught / total:>7.1%}")
    caught = sum(c for c, _ in scores.values())
    print(f"{'overall':<32} {caught:>7} {len(cases):>6} {caught / len(cases):>7.1%}")
    print("bare tokens by provider: " + ", ".join(f"{name} {c}/{t}" for name, (c, t) in tokens.items()))
    for case in cases:
        if leaked(case, redact(case.text)):
            print(f"  missed: {case.category} ({case.source})")
    lines = ordinary_lines()
    changed = [line for line in lines if redact(line) != line]
    print(f"false positives: {len(changed)} of {len(lines)} ordinary lines changed")
    for line in changed[:10]:
        print(f"  {line[:100]!r} -> {redact(line)[:100]!r}")
    kept = sum(redact(line) == line for line in EMPTY_VALUES)
    print(f"empty values kept visibly empty: {kept} of {len(EMPTY_VALUES)}")


def main(size: int, repeat: int) -> None:
    per_line = lambda text: redact_lines(text.splitlines(), 2000)  # noqa: E731 (how /logs calls it)
    print(f"redaction of {size / 1e6:.1f} MB, {repeat} runs each, seconds per run")
    print(f"{'input':<22} {'redact p50':>10} {'p99':>8} {'lines p50':>10} {'p99':>8} {'ratio':>7}")
    baseline = None
    for name, text in shapes(size).items():
        whole = timed(redact, text, repeat)
        lines = timed(per_line, text, repeat)
        p50 = whole[len(whole) // 2]
        baseline = baseline or p50
        print(f"{name:<22} {p50:10.3f} {whole[-1]:8.3f} {lines[len(lines) // 2]:10.3f} {lines[-1]:8.3f} {p50 / baseline:6.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-timing", action="store_true", help="recall and false positives only")
    args = parser.parse_args()
    recall()
    if not args.no_timing:
        print()
        main(args.size, args.repeat)
