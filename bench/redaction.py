"""How long does redaction take on hostile text, next to ordinary log text of the same size?

Redaction runs on every log record, every /logs line and every audit write; a review found
its old patterns took quadratic time on long runs of letters (64 KB: 9.8 s). This script
redacts 1 MB of each adversarial shape several times and reports p50/p99 per MB, and the
ratio to 1 MB of realistic log lines (the baseline, same run). Linear patterns keep every
ratio a small constant.

    .venv/bin/python bench/redaction.py [--size 1000000] [--repeat 7]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.redaction import redact, redact_lines  # noqa: E402

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
    }


def timed(fn, text: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - started)
    return sorted(times)


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
    args = parser.parse_args()
    main(args.size, args.repeat)
