"""Image build time and size: the Dockerfile built from the local Debian base (scripts/base-image.sh)
with the legacy builder on the host network, as tests/image_build.py builds it.

Figures, each build into a throwaway tag (removed at the end):
  - cold: `--no-cache`, every layer built (apt is skipped: the base holds postgresql-client; pip
    installs the locked dependencies from PyPI);
  - warm: the same again with the layer cache, nothing changed (what a test run pays when the
    source hash is new but the Dockerfile's inputs are cached: about the context upload);
  - the image's size and the base's, and the build context's size (.dockerignore).
With --cold-base the base image is rebuilt first (mmdebstrap), and that time printed too.

    .venv/bin/python bench/image_build.py [--runs 1] [--cold-base]

No assert: it prints figures (medians of --runs).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from image_build import base_image, build, context_paths, docker, image_size  # noqa: E402


def context_bytes() -> int:
    total = 0
    for entry in context_paths():
        path = ROOT / entry
        for file in (path.rglob("*") if path.is_dir() else [path]):
            if file.is_file() and "__pycache__" not in file.parts:
                total += file.stat().st_size
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cold-base", action="store_true", help="rebuild the base image with mmdebstrap first")
    args = parser.parse_args()

    if args.cold_base:
        docker("image", "rm", "-f", "opsbot-local/python:3.11-bookworm", check=False)
    started = time.perf_counter()
    base = base_image()
    base_seconds = time.perf_counter() - started
    tag = f"opsbot-bench/opsbot:{uuid.uuid4().hex[:8]}"
    cold, warm = [], []
    try:
        for _ in range(args.runs):
            cold.append(build(base, tag, {}, no_cache=True))
            warm.append(build(base, tag, {}))
        size = image_size(tag)
    finally:
        docker("image", "rm", "-f", tag, check=False)
    mb = 1e6
    print(f"base image {base}: {image_size(base) / mb:.0f} MB" + (f", built in {base_seconds:.0f} s (mmdebstrap)" if args.cold_base else ""))
    print(f"build context: {context_bytes() / mb:.1f} MB")
    print(f"image: {size / mb:.0f} MB ({(size - image_size(base)) / mb:.0f} MB over the base)")
    print(f"cold build (--no-cache): p50 {statistics.median(cold):.0f} s   runs: {', '.join(f'{s:.0f}' for s in cold)}")
    print(f"warm build (cached):     p50 {statistics.median(warm):.1f} s   ratio warm/cold {statistics.median(warm) / statistics.median(cold):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
