"""app.yaml `alerts:`: integrations that take alert webhooks in, and the routes that turn an alert into an incident.

Grafana OnCall's shape: an integration maps one sender's payload (its `format`) onto an alert, and
its routes are ordered filters on the alert's labels. The first route that matches wins; the last
one matches everything (no `match`), so every alert has a route.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from bot.config.data_models import EnvName
from bot.config.literal_secrets import HttpUrl
from bot.config.types import At, Duration, ServiceName, SlackChannel, Strict

LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
LabelValue = Annotated[str, Field(max_length=256)]
# A dotted path into a generic JSON payload: "alert.title", "labels.severity".
FieldPath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")]
IntegrationName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class AlertRoute(Strict):
    """Which incident an alert opens: matched on its labels, the first matching route wins."""

    match: dict[LabelName, LabelValue] = Field(
        {}, description="Labels the alert must carry with exactly these values; empty matches every alert (the default route)."
    )
    service: ServiceName | None = Field(None, description="The service the incident is about (maintenance windows on it hold the alert).")
    severity_label: LabelName = Field("severity", description="The alert label whose value picks the incident's severity.")
    severities: dict[LabelValue, str] = Field(
        {"critical": "P1", "warning": "P3"}, description="severity_label value -> incident severity, e.g. critical: P1."
    )
    severity: str = Field("P2", description="The incident's severity when severity_label is missing or not in severities.")
    playbook: str | None = Field(None, description="A playbook attached to the incident.")
    dedup: Literal["group", "alert"] = Field(
        "group", description="group: one incident per Alertmanager group (groupKey); alert: one per alert (its fingerprint)."
    )
    auto_resolve: bool = Field(False, description="Resolve the incident when all its alerts are resolved (else a Resolve button is offered).")
    reopen_within: Duration = Field(3600, description="A group firing again this soon after its incident was resolved reopens it.")

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(name) == value for name, value in self.match.items())


class GenericFields(Strict):
    """Where a generic JSON payload keeps each part of the alert (dotted paths)."""

    title: FieldPath = Field(description="The alert's title.")
    status: FieldPath = Field(description="firing or resolved (see resolved_values).")
    dedup_key: FieldPath = Field(description="What makes two payloads the same alert.")
    severity: FieldPath | None = Field(None, description="Copied to the label named severity, for routes.")
    service: FieldPath | None = Field(None, description="Copied to the label named service, for routes.")
    labels: FieldPath | None = Field(None, description="An object of string labels, for routes.")
    source_url: FieldPath | None = Field(None, description="A link back to the alert's source.")
    description: FieldPath | None = Field(None, description="Longer text, kept in the incident's description.")


class AlertIntegration(Strict):
    """One sender: POST /alerts/<name> with `Authorization: Bearer <token>`."""

    format: Literal["alertmanager", "grafana", "generic"] = Field(description="The payload: Alertmanager webhook v4, Grafana's unified alerting webhook, or generic JSON.")
    token_env: EnvName = Field(description="The environment variable holding the bearer token the sender must present.")
    fields: GenericFields | None = Field(None, description="generic: where each part of the alert is in the JSON.")
    resolved_values: list[Annotated[str, Field(max_length=64)]] = Field(
        ["resolved", "ok"], description="generic: status values that mean resolved (compared case-insensitively); anything else is firing."
    )
    routes: list[AlertRoute] = Field(min_length=1, description="Ordered filters; the first match wins, and the last must have no match (the default).")
    alertmanager_url: HttpUrl | None = Field(
        None, description="Alertmanager's base URL (http://alertmanager:9093; ${VAR} allowed): /incident silence creates silences there (API v2)."
    )
    alertmanager_token_env: EnvName | None = Field(None, description="The environment variable holding a bearer token for alertmanager_url, if it needs one.")

    @model_validator(mode="after")
    def _shape(self) -> "AlertIntegration":
        if self.format == "generic" and self.fields is None:
            raise ValueError("a generic integration needs fields: (title, status, dedup_key)")
        if self.format != "generic" and self.fields is not None:
            raise ValueError(f"fields: is for generic integrations; {self.format} payloads have their own")
        if self.format == "generic" and self.alertmanager_url is not None:
            raise ValueError("alertmanager_url is for alertmanager and grafana integrations: a generic sender has no silences")
        return self


class Heartbeat(Strict):
    """Who watches the watcher: an always-firing alert (Alertmanager's Watchdog) that must keep arriving."""

    integration: IntegrationName = Field(description="The integration the heartbeat alert arrives through.")
    interval: Duration = Field(description="It must arrive at least this often: the receiver's repeat_interval for it, plus a margin.")
    alertname: LabelValue = Field("Watchdog", description="The heartbeat alert's alertname label; it opens no incident.")
    channel: SlackChannel | None = Field(None, description="Where the pipeline's silence and recovery are said; default slack.ops_channel.")


class AlertSettings(Strict):
    integrations: dict[IntegrationName, AlertIntegration] = Field({}, description="Alert senders by name (the URL is /alerts/<name>).")
    heartbeat: Heartbeat | None = Field(None, description="Say in the ops channel, once, when the heartbeat alert stops arriving, and when it is back.")


def alert_references(config) -> list[At]:
    """Routes naming a service, severity or playbook that does not exist, and integrations without a default route."""
    problems = []
    for name, integration in config.alerts.integrations.items():
        at = ("alerts", "integrations", name, "routes")
        last = len(integration.routes) - 1
        for index, route in enumerate(integration.routes):
            where = at + (index,)
            if not route.match and index != last:
                problems.append(At(where + ("match",), f"route {index} of '{name}' matches every alert, so the routes after it are never used"))
            if route.service and route.service not in config.services:
                problems.append(At(where + ("service",), f"route {index} of '{name}' names unknown service '{route.service}'"))
            for value, severity in [(None, route.severity), *route.severities.items()]:
                if config.severity(severity) is None:
                    path = where + (("severities", value) if value is not None else ("severity",))
                    problems.append(At(path, f"route {index} of '{name}' names unknown severity '{severity}'"))
            if route.playbook and route.playbook not in config.playbooks:
                problems.append(At(where + ("playbook",), f"route {index} of '{name}' names unknown playbook '{route.playbook}'"))
        if integration.routes[last].match:
            problems.append(At(at + (last,), f"integration '{name}' needs a default route: its last route must have no match"))
    heartbeat = config.alerts.heartbeat
    if heartbeat is not None:
        if heartbeat.integration not in config.alerts.integrations:
            problems.append(At(("alerts", "heartbeat", "integration"), f"the heartbeat names unknown integration '{heartbeat.integration}'"))
        if not (heartbeat.channel or config.slack.ops_channel):
            problems.append(At(("alerts", "heartbeat"), "the heartbeat has no channel, and slack.ops_channel is not set"))
    return problems
