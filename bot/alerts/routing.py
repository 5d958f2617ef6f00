"""The route table: an AlertNotification becomes one or more incident openings, declared in app.yaml.

The first route whose `match` the labels carry wins (the last route matches everything). A route
with dedup: group keeps the whole group on one incident, keyed by the sender's group key; dedup:
alert gives each alert its own, keyed by its fingerprint, each alert routed by its own labels.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.alerts.notification import Alert, AlertNotification
from bot.config.alert_models import AlertIntegration, AlertRoute

MAX_KEY = 255  # incidents.dedup_key


@dataclass(frozen=True)
class Routed:
    """What one incident hears from one notification."""

    integration: str
    route: AlertRoute
    route_index: int
    dedup_key: str
    status: str  # firing while any of `alerts` fires
    title: str
    description: str
    source_url: str
    severity_values: tuple[str, ...]  # the severity_label values the alerts carry, group's first
    alerts: tuple[Alert, ...]


def route_for(integration: AlertIntegration, labels: dict[str, str]) -> tuple[int, AlertRoute]:
    for index, route in enumerate(integration.routes):
        if route.matches(labels):
            return index, route
    return len(integration.routes) - 1, integration.routes[-1]  # the default; config check makes it match all


def dedup_key(integration: str, kind: str, value: str) -> str:
    """`alert:<integration>:<group|alert>:<key>`; a key too long for the column is hashed (sha256)."""
    key = f"alert:{integration}:{kind}:{value}"
    if len(key) <= MAX_KEY:
        return key
    return f"alert:{integration}:{kind}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"


def routed(name: str, integration: AlertIntegration, notification: AlertNotification) -> list[Routed]:
    index, route = route_for(integration, notification.labels)
    if route.dedup == "group":
        values = [notification.labels.get(route.severity_label, "")]
        values += [a.labels.get(route.severity_label, "") for a in notification.alerts]
        return [Routed(name, route, index, dedup_key(name, "group", notification.group_key), notification.status, notification.title,
                       notification.description, notification.source_url, tuple(v for v in values if v), notification.alerts)]
    found = []
    for alert in notification.alerts:
        index, route = route_for(integration, {**notification.labels, **alert.labels})
        value = alert.labels.get(route.severity_label) or notification.labels.get(route.severity_label, "")
        found.append(Routed(name, route, index, dedup_key(name, "alert", alert.fingerprint), alert.status, alert.title,
                            alert.description, alert.source_url, (value,) if value else (), (alert,)))
    return found


def severity_for(routed: Routed, config) -> str:
    """The most urgent severity (first in app.yaml's list) the alerts' labels map to, else the route's `severity`."""
    ranked = list(config.severities)
    names = [routed.route.severities[v] for v in routed.severity_values if v in routed.route.severities] or [routed.route.severity]
    canonical = [found[0] for found in map(config.severity, names) if found]
    return min(canonical, key=ranked.index, default=routed.route.severity)
