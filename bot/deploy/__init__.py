"""Deploys and rollbacks: the record (models, service), the platforms' steps (docker, kubernetes), the views."""
