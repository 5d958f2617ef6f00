"""Grade a metric's reading against warn/critical, with `for` read like Prometheus alerting's.

A threshold is met at or above it (at or below with lower_is_worse). With `for`, a level
counts only when it was met at every point of a range query over the last `for` seconds
(step max(for/20, 15 s)) and now; otherwise the reading is graded one level lower and the
detail says for how long the condition held.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from bot.config.schedule_models import Metric
from bot.config.types import format_duration

MIN_STEP = 15.0
MAX_POINTS = 11000  # Prometheus refuses a range query with more points than this


@dataclass(frozen=True)
class Grade:
    status: str  # ok | warning | critical
    detail: str


def range_step(for_: float) -> float:
    """max(for/20, 15 s), and never so small that the range has more than 11,000 points."""
    return max(for_ / 20, MIN_STEP, for_ / (MAX_POINTS - 1))


def meets(value: float, threshold: float | None, lower_is_worse: bool) -> bool:
    if threshold is None or math.isnan(value):
        return False
    return value <= threshold if lower_is_worse else value >= threshold


def instant_status(value: float, metric: Metric) -> str:
    if meets(value, metric.critical, metric.lower_is_worse):
        return "critical"
    if meets(value, metric.warn, metric.lower_is_worse):
        return "warning"
    return "ok"


def threshold(metric: Metric, status: str) -> float | None:
    return metric.critical if status == "critical" else metric.warn


def held_for(points: list[tuple[float, float]], start: float, now: float, step: float, value: float, limit: float, lower: bool) -> float | None:
    """How long (seconds before `now`) the condition held at every point up to now; None when it held
    over the whole range [start, now]. A point missing from the range (the series was absent) breaks it."""
    by_index = {round((t - start) / step): v for t, v in points}
    last = int((now - start) / step + 1e-9)
    if not meets(value, limit, lower):
        return 0.0
    earliest = now
    for index in range(last, -1, -1):
        at = start + index * step
        if at >= now - 1e-6:  # the instant reading already stands for this point
            continue
        if index not in by_index or not meets(by_index[index], limit, lower):
            return now - earliest
        earliest = at
    return None


def describe(name: str, value: float, metric: Metric) -> str:
    """'p95 latency 1.4 s (warning at 1 s, critical at 2 s)'."""
    limits = []
    relation = "at or below" if metric.lower_is_worse else "at"
    if metric.warn is not None:
        limits.append(f"warning {relation} {quantity(metric.warn, metric.unit)}")
    if metric.critical is not None:
        limits.append(f"critical {relation} {quantity(metric.critical, metric.unit)}")
    return f"{label(name)} {quantity(value, metric.unit)} ({', '.join(limits)})"


def label(name: str) -> str:
    return name.replace("_", " ").replace("-", " ")


def quantity(value: float, unit: str) -> str:
    return f"{number(value)} {unit}" if unit else number(value)


def number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    text = f"{value:.3g}"
    return text if "e" not in text else f"{value:.6f}".rstrip("0").rstrip(".")


def span(seconds: float) -> str:
    """12s, 4m, 3h: rounded, for 'held for only ...'."""
    if seconds < 120:
        return f"{max(round(seconds), 0)}s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}".rstrip("0").rstrip(".") + "h"


def for_note(status_missed: str, metric: Metric, held: float, step: float) -> str:
    """'above warning for only 2m (needs 5m)'; 'for less than 15s' when only the latest point met it."""
    side = "below" if metric.lower_is_worse else "above"
    needs = format_duration(metric.for_)
    if held > 0:
        return f"{side} {status_missed} for only {span(held)} (needs {needs})"
    return f"{side} {status_missed} for less than {span(min(step, metric.for_))} (needs {needs})"
