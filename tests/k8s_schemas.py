"""Every object the Kubernetes double serves is checked against the official API schemas.

The schemas are the ones `kubernetes-validate` ships (generated from the API server's OpenAPI
document, strict variant: no property the API does not define). kubernetes_validate.validate()
reads the 1.8 MB definitions file on every call; the double serves hundreds of objects per test,
so the same files are loaded once here and one validator kept per kind. A failure is one line
("Deployment shop/web: .status.conditions[0]: 'reason' is a required property"), which the double
records as a violation.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files

import jsonschema
from referencing import Registry, Resource

SCHEMA_VERSION = "v1.37.0-local-strict"


def _schema_file(name: str) -> dict:
    path = files("kubernetes_validate").joinpath("kubernetes-json-schema", SCHEMA_VERSION, name)
    return json.loads(path.read_text())


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Resource.from_contents(_schema_file("_definitions.json")) @ Registry()


@lru_cache(maxsize=64)
def _validator(kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    # As kubernetes_validate names its files: rbac.authorization.k8s.io/v1 -> rbac-v1; Status is meta/v1.
    group = "meta-v1" if kind == "Status" else re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = _schema_file(f"{kind.lower()}-{group}.json")
    registry = Resource.from_contents(schema) @ _registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def problems(obj: dict) -> list[str]:
    """What is wrong with `obj` per the schema of its kind, one line each (empty: valid)."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if not kind or not api_version:
        return ["an object without kind and apiVersion"]
    try:
        validator = _validator(kind, api_version)
    except FileNotFoundError:
        return [f"{kind} ({api_version}) has no schema in Kubernetes {SCHEMA_VERSION}"]
    meta = obj.get("metadata") or {}
    label = f"{kind} {meta.get('namespace', '')}/{meta['name']}" if meta.get("name") else kind
    found = []
    for error in validator.iter_errors(obj):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        found.append(f"{label}: {where or '.'}: {error.message[:300]}")
    return found
