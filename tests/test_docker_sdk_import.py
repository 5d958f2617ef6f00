"""The Docker SDK is imported on first use, from whichever worker thread a check runs on: many at
once must each get the whole module, with what exec streams with (a console's first /health once
met a deadlock in the import machinery, then a module without .errors; the window is narrow, so
this guards the contract rather than replaying that interleaving). A fresh interpreter each time,
so the import really is the first."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, threading
from bot import docker_engine
results, barrier = [], threading.Barrier(16)

def first_use():
    barrier.wait()
    try:
        sdk = docker_engine._sdk()
        from docker.utils.socket import frames_iter  # noqa: F401 (imported by _sdk already)
        results.append(sdk.errors.NotFound.__name__)
    except BaseException as exc:
        results.append(repr(exc))

threads = [threading.Thread(target=first_use) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(sorted(set(results)))
"""


def test_sixteen_threads_importing_the_sdk_at_once_all_get_the_whole_module():
    for _ in range(5):
        done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "['NotFound']", done.stdout
