"""Maintenance windows (runbook 001 "Scheduled Maintenance"): a time during which named services
(or all of them) are expected to be down. Announced ahead, said when they start and end; pages,
red checks and guarded actions on those services know about them.

Other slices use service.py: window_for, active, silenced, notes_for."""
