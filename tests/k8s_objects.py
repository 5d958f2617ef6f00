"""Small facts about API objects shared by the Kubernetes double's cluster and server: names,
labels, owner references, time stamps, and what the API serves (private bookkeeping left out)."""
from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime, timezone

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of rand.SafeEncodeString, as pod-template-hash uses


def stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def parse_stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def reference(owner: dict) -> dict:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_uid(obj: dict) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or []
    return refs[0]["uid"] if refs else None


def labels_match(obj: dict, selector: dict) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def served(obj: dict) -> dict:
    """The object as the API returns it: private bookkeeping (keys starting with _) left out."""
    out = copy.deepcopy(obj)
    if isinstance(out.get("status"), dict):
        out["status"] = {k: v for k, v in out["status"].items() if not k.startswith("_")}
    return out
