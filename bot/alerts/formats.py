"""The body of POST /alerts/<name>, as its integration's format reads it, into one AlertNotification.

What a sender writes is redacted here, before anything is kept, cut or shown: a token pasted into a
summary, a password in a generator URL's query, never reach the timeline, the alert list or Slack.
"""
from __future__ import annotations

import json

from bot.alerts import alertmanager, generic, grafana
from bot.alerts.notification import Alert, AlertNotification, Malformed
from bot.config.alert_models import AlertIntegration
from bot.redaction import redact_cut

MAX_TEXT = 2048  # the payload models' own bound on a string: redaction never cuts what they let in


def parse(integration: AlertIntegration, body: bytes) -> AlertNotification:
    """The notification, redacted, or Malformed with one sentence (the body is at most the intake's cap)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8 or not JSON; nested past the parser's depth
        raise Malformed("The body is not JSON.") from None
    if integration.format == "alertmanager":
        notification = alertmanager.notification_of(data)
    elif integration.format == "grafana":
        notification = grafana.notification_of(data)
    else:
        notification = generic.notification_of(data, integration)
    return redacted(notification)


def _clean(text: str) -> str:
    return redact_cut(text, MAX_TEXT) if text else text


def _alert(alert: Alert) -> Alert:
    return alert.model_copy(update={
        "title": _clean(alert.title), "description": _clean(alert.description), "source_url": _clean(alert.source_url),
        "labels": {name: _clean(value) for name, value in alert.labels.items()},
    })


def redacted(notification: AlertNotification) -> AlertNotification:
    return notification.model_copy(update={
        "title": _clean(notification.title), "description": _clean(notification.description),
        "source_url": _clean(notification.source_url), "labels": {name: _clean(value) for name, value in notification.labels.items()},
        "alerts": tuple(_alert(alert) for alert in notification.alerts),
    })
