"""Prometheus metrics the bot exports at GET /metrics."""
from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter("opsbot_commands_total", "Commands handled, by name and outcome", ["command", "outcome"])
CHECK_LATENCY = Histogram(
    "opsbot_check_latency_seconds",
    "Latency of individual health checks",
    ["kind", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
SLACK_API_ERRORS = Counter("opsbot_slack_api_errors_total", "Slack Web API calls that failed", ["method", "error"])
SLACK_REFUSED = Counter(
    "opsbot_slack_requests_refused_total",
    "Inbound Slack requests refused before any handler ran (unsigned, malformed, too slow)",
    ["reason"],
)
INTERACTIONS = Counter("opsbot_interactions_total", "Interactions acknowledged, by payload type", ["kind"])
INTERACTIONS_HANDLED = Counter(
    "opsbot_interactions_handled_total",
    "Button presses through the interaction pipeline, by declared interaction id (unknown: not declared) and outcome",
    ["interaction", "outcome"],
)
# Who watches the watcher's other side: a rule on this pages when opsbot stops passing (docs/operating.md, docs/alerts.md).
SCHEDULER_LAST_TICK = Gauge(
    "opsbot_scheduler_last_tick_timestamp_seconds", "When this replica's scheduler last finished a pass (Unix time, by the bot's clock)"
)
