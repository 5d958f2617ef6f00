"""The demo fleet: the containers `make fleet` starts for the bundled app.yaml.

`make fleet` runs scripts/test-env.sh with the prefix `opsbot-test-`, so the demo's containers
are exactly these names (the tests' fleets carry a per-checkout prefix, `opsbot-test-<hash>-`, and
are started by `make test`). When one of them is missing, the answer says how to start it: a
newcomer trying the bundled app.yaml has most likely not run `make fleet` yet. Recognising the
names here, rather than a field in app.yaml, keeps the hint out of everyone else's configuration.
"""
from __future__ import annotations

DEMO_PREFIX = "opsbot-test-"
DEMO_CONTAINERS = frozenset(DEMO_PREFIX + name for name in ("web", "web500", "exited", "restarting", "oom", "pgclient"))


def missing_hint(container: str | None) -> str:
    """What to add to "container X does not exist": how to start it when it is a demo container, else nothing."""
    return " (a demo container: run `make fleet` to start the demo fleet)" if container in DEMO_CONTAINERS else ""
