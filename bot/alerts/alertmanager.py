"""Alertmanager's webhook payload, version 4 (prometheus.io/docs/alerting/latest/configuration/#webhook_config).

The group's key is Alertmanager's groupKey, the same on every notification of the group (repeats,
retries, the resolved one), so it is the incident's de-duplication key.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from bot.alerts.notification import (
    MAX_ALERTS, Alert, AlertNotification, Key, Labels, Payload, Status, Url, explain, fingerprint_of, group_of, real_time,
    title_of,
)


class AlertmanagerAlert(Payload):
    status: Status
    labels: Labels = {}
    annotations: Labels = {}
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: Url = ""
    fingerprint: Annotated[str, Field(max_length=64)] = ""


class AlertmanagerPayload(Payload):
    version: Literal["4"]
    groupKey: Annotated[str, Field(min_length=1, max_length=4096)]
    truncatedAlerts: int = 0
    status: Status
    receiver: Key = ""
    groupLabels: Labels = {}
    commonLabels: Labels = {}
    commonAnnotations: Labels = {}
    externalURL: Url = ""
    alerts: Annotated[list[AlertmanagerAlert], Field(min_length=1, max_length=MAX_ALERTS)]


def alert_of(item: AlertmanagerAlert) -> Alert:
    return Alert(
        fingerprint=item.fingerprint or fingerprint_of(item.labels), status=item.status, labels=dict(item.labels),
        title=title_of(item.annotations, item.labels, "alert"), description=item.annotations.get("description", ""),
        starts_at=real_time(item.startsAt), ends_at=real_time(item.endsAt), source_url=item.generatorURL,
    )


def notification_of(data: object) -> AlertNotification:
    try:
        payload = AlertmanagerPayload.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, "an Alertmanager webhook payload (version 4)") from None
    return grouped(payload, [alert_of(item) for item in payload.alerts], payload.groupKey)


def grouped(payload, alerts: list[Alert], group_key: str) -> AlertNotification:
    """The group (Alertmanager's shape, Grafana's too): labels from its group and common labels, title and
    description from its common annotations, else the first alert's."""
    labels = {**payload.commonLabels, **payload.groupLabels}
    title = title_of(payload.commonAnnotations, labels, alerts[0].title)
    return group_of(alerts, group_key=group_key, labels=labels, title=title,
                    description=payload.commonAnnotations.get("description", ""), source_url=alerts[0].source_url or payload.externalURL)
