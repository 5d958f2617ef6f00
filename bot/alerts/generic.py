"""Generic JSON: each part of the alert is read from a declared dotted path (alerts.integrations.*.fields).

A payload is one alert. Its status is resolved when the value at `status` is one of resolved_values
(case-insensitively), else firing; `severity` and `service`, when declared, become labels of those
names, so routes match a generic alert as they match Alertmanager's.
"""
from __future__ import annotations

from bot.alerts.notification import MAX_LABELS, Alert, AlertNotification, Malformed, fingerprint_of, group_of
from bot.config.alert_models import AlertIntegration

MAX_VALUE = 2048


def _at(data: object, path: str) -> object:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _text(data: object, path: str | None, *, required: bool = False) -> str:
    if path is None:
        return ""
    value = _at(data, path)
    if value is None or value == "":
        if required:
            raise Malformed(f"The payload has no {path}.")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Malformed(f"The payload's {path} must be a string or a number.")
    text = str(value)
    if len(text) > MAX_VALUE:
        raise Malformed(f"The payload's {path} is longer than {MAX_VALUE} characters.")
    return text


def _labels(data: object, path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    value = _at(data, path)
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_LABELS:
        raise Malformed(f"The payload's {path} must be an object of at most {MAX_LABELS} labels.")
    labels = {}
    for key, item in value.items():
        if not isinstance(item, (str, int, float)) or isinstance(item, bool) or len(key) > 256 or len(str(item)) > MAX_VALUE:
            raise Malformed(f"The payload's {path} must hold short strings or numbers only.")
        labels[key] = str(item)
    return labels


def notification_of(data: object, integration: AlertIntegration) -> AlertNotification:
    if not isinstance(data, dict):
        raise Malformed("The payload must be a JSON object.")
    fields = integration.fields
    title = _text(data, fields.title, required=True)
    key = _text(data, fields.dedup_key, required=True)
    status = "resolved" if _text(data, fields.status, required=True).lower() in {v.lower() for v in integration.resolved_values} else "firing"
    labels = _labels(data, fields.labels)
    for name, path in (("severity", fields.severity), ("service", fields.service)):
        value = _text(data, path)
        if value:
            labels[name] = value
    alert = Alert(fingerprint=key if len(key) <= 64 else fingerprint_of({"dedup_key": key}), status=status, labels=labels, title=title, description=_text(data, fields.description),
                  source_url=_text(data, fields.source_url))
    return group_of([alert], group_key=key, labels=labels, title=title, description=alert.description)
