"""Alerts in (issue 17): Alertmanager, Grafana and generic JSON webhooks open, group and resolve incidents.

Formats are modules (alertmanager.py, grafana.py, generic.py), each turning a payload into one
AlertNotification; routing is data (app.yaml alerts.integrations.*.routes, routing.py); intake.py
opens, joins, reopens or resolves through the incident slice, which keeps one open incident per
de-duplication key with its unique index (GoAlert's way: a key and a constraint, not read-then-write).
The HTTP edge is bot/transport/alert_intake.py.
"""
