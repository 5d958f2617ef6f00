"""How a scheduled post looks: short on a green day, the changes first on a red one."""
from __future__ import annotations

from dataclasses import dataclass, field

from bot.pipeline.reply import Actions, Button, Context, Header, Outcome, Preformatted, Reply, Section

LABEL = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL", "maintenance": "MAINT"}
RED = ("warning", "critical")
RANK = {"ok": 0, "maintenance": 0, "warning": 1, "critical": 2}
DETAILS = "schedule.details"


@dataclass
class Comparison:
    turned_red: list = field(default_factory=list)  # (item, previous status or None)
    still_red: list = field(default_factory=list)
    recovered: list = field(default_factory=list)  # (item, previous status)
    unchanged: int = 0


def compare(items: list, previous: dict) -> Comparison:
    """Each item against the same key in the previous run: what turned red, what recovered, what stayed."""
    result = Comparison()
    for item in items:
        before = (previous.get(item.key) or {}).get("status")
        if item.status in RED:
            if before is None or RANK.get(before, 0) < RANK[item.status]:
                result.turned_red.append((item, before))
            else:
                result.still_red.append((item, before))
        elif before in RED and item.status == "ok":
            result.recovered.append((item, before))
        else:
            result.unchanged += 1
    return result


def _line(item) -> str:
    return f"{LABEL.get(item.status, item.status.upper()):<8} {item.label}: {item.detail}"


def details_text(items: list) -> str:
    ordered = sorted(items, key=lambda i: (-RANK.get(i.status, 0), i.key))
    return "\n".join(_line(item) for item in ordered)


def daily_post(title: str, items: list, comparison: Comparison, run_id: int, *, late: str, first: bool) -> Reply:
    """`late`: "" or a sentence saying the slot was missed and run now."""
    reds = [i for i in items if i.status in RED]
    in_maintenance = [i for i in items if i.status == "maintenance"]
    details = Actions((Button("Details", DETAILS, str(run_id)),))
    maint = f", {len(in_maintenance)} in maintenance" if in_maintenance else ""
    if not reds:
        recovered = f"; recovered: {', '.join(i.label for i, _ in comparison.recovered)}" if comparison.recovered else ""
        line = f"{title}: all {len(items) - len(in_maintenance)} green{maint}{recovered}.{(' ' + late) if late else ''}"
        return Reply(text=line, blocks=[Section(line), details], outcome=Outcome.ok)
    worst = "critical" if any(i.status == "critical" for i in reds) else "warning"
    summary = f"{title}: {len(reds)} not green ({len(comparison.turned_red)} new), {len(comparison.recovered)} recovered{maint}."
    blocks = [Header(title), Section(summary + (f" {late}" if late else ""))]
    if comparison.turned_red:
        blocks.append(Section("*Turned red since the last run*" if not first else "*Not green*"))
        blocks.append(Preformatted("\n".join(_line(i) + (f" (was {before})" if before else "") for i, before in comparison.turned_red)))
    if comparison.still_red:
        blocks.append(Section("*Still not green*"))
        blocks.append(Preformatted("\n".join(_line(i) for i, _ in comparison.still_red)))
    if comparison.recovered:
        blocks.append(Section("*Recovered*"))
        blocks.append(Preformatted("\n".join(_line(i) + f" (was {before})" for i, before in comparison.recovered)))
    blocks.append(Context(f"{comparison.unchanged} other readings green and unchanged."))
    blocks.append(details)
    text = summary + (f" {late}" if late else "") + "\n" + "\n".join(_line(i) for i in reds)
    return Reply(text=text, blocks=blocks, outcome=Outcome.critical if worst == "critical" else Outcome.warning)


def details_reply(title: str, items: list) -> Reply:
    text = details_text(items)
    return Reply(text=f"{title}\n{text}", blocks=[Header(title), Preformatted(text or "(no readings)")], ephemeral=True)
