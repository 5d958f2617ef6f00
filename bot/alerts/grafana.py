"""Grafana's unified alerting webhook (grafana.com/docs/grafana/latest/alerting/configure-notifications/
manage-contact-points/integrations/webhook-notifier/): Alertmanager's shape, version "1", plus Grafana's
title, state and message, and per alert its silence, dashboard and panel links.

The group's key is Grafana's groupKey, as for Alertmanager; a group's incident links to its panel
or dashboard when Grafana gives one, else to the rule (generatorURL).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError

from bot.alerts import alertmanager
from bot.alerts.alertmanager import AlertmanagerAlert
from bot.alerts.notification import MAX_ALERTS, Alert, AlertNotification, Key, Labels, Payload, Status, Url, explain


class GrafanaAlert(AlertmanagerAlert):
    """Alertmanager's alert, plus Grafana's links to the dashboard and panel."""

    dashboardURL: Url = ""
    panelURL: Url = ""


class GrafanaPayload(Payload):
    version: Literal["1"]
    groupKey: Annotated[str, Field(min_length=1, max_length=4096)]
    status: Status
    receiver: Key = ""
    orgId: int = 0
    groupLabels: Labels = {}
    commonLabels: Labels = {}
    commonAnnotations: Labels = {}
    externalURL: Url = ""
    title: Annotated[str, Field(max_length=4096)] = ""
    alerts: Annotated[list[GrafanaAlert], Field(min_length=1, max_length=MAX_ALERTS)]


def alert_of(item: GrafanaAlert) -> Alert:
    alert = alertmanager.alert_of(item)
    return alert.model_copy(update={"source_url": item.panelURL or item.dashboardURL or item.generatorURL})


def notification_of(data: object) -> AlertNotification:
    try:
        payload = GrafanaPayload.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, "a Grafana alerting webhook payload (version 1)") from None
    # Grafana's own title ("[FIRING:2] HighLatency (api)") changes with the count: the alert's name is kept instead.
    return alertmanager.grouped(payload, [alert_of(item) for item in payload.alerts], f"grafana:{payload.orgId}:{payload.groupKey}")
