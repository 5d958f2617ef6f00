"""Image build time and size: the Dockerfile built from the local Debian base (scripts/base-image.sh)
with the legacy builder on the host network, as tests/image_build.py builds it.

The build context is copied first (what .dockerignore lets in) into a temporary directory, so
edits made in the checkout while this runs do not change what is measured. Figures, each build
into a throwaway tag of its own (all removed at the end, with their layers):
  - cold: `--no-cache`, every layer built (apt is skipped: the base holds postgresql-client; pip
    installs the locked dependencies from PyPI);
  - source change: one line added to bot/__init__.py, then built with the layer cache (the
    dependency layer is reused; the source is copied and installed again);
  - cached: the same again, nothing changed;
  - the image's size, the base's, and the build context's.
With --cold-base the base image is rebuilt first (mmdebstrap), and that time printed too.

    .venv/bin/python bench/image_build.py [--runs 1] [--cold-base]

No assert: it prints figures (medians of --runs).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from image_build import base_image, build, context_paths, docker, image_size  # noqa: E402

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def snapshot(into: Path) -> int:
    """Copy the build context (.dockerignore's `!` entries) into `into`; its size in bytes."""
    for name in [".dockerignore", *context_paths()]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=IGNORED)
        else:
            shutil.copy2(source, into / name)
    return sum(f.stat().st_size for f in into.rglob("*") if f.is_file())


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
    tags: set[str] = set()  # one per build, so no build leaves an untagged image behind
    cold, changed, cached = [], [], []
    with tempfile.TemporaryDirectory(prefix="opsbot-image-bench-") as tmp:
        context = Path(tmp)
        context_size = snapshot(context)

        def timed(step: str, run: int, **kwargs) -> float:
            tags.add(f"{tag}-{step}-{run}")
            return build(base, f"{tag}-{step}-{run}", {}, context=context, **kwargs)

        try:
            for run in range(args.runs):
                cold.append(timed("cold", run, no_cache=True))
                with open(context / "bot" / "__init__.py", "a") as source:
                    source.write(f"# bench/image_build.py source change {run}\n")
                changed.append(timed("changed", run))
                cached.append(timed("cached", run))
            size = image_size(f"{tag}-cached-0")
        finally:
            for built in sorted(tags):
                docker("image", "rm", "-f", built, check=False)
    mb, p50 = 1e6, statistics.median
    base_size = image_size(base)
    print(f"base image {base}: {base_size / mb:.0f} MB" + (f", made in {base_seconds:.0f} s (mmdebstrap)" if args.cold_base else ""))
    print(f"build context: {context_size / mb:.1f} MB")
    print(f"image: {size / mb:.0f} MB ({(size - base_size) / mb:.0f} MB over the base)")
    print(f"cold build (--no-cache):     p50 {p50(cold):6.1f} s   runs: {', '.join(f'{s:.1f}' for s in cold)}")
    print(f"after a source change:       p50 {p50(changed):6.1f} s   ratio to cold {p50(changed) / p50(cold):.2f}")
    print(f"cached, nothing changed:     p50 {p50(cached):6.1f} s   ratio to cold {p50(cached) / p50(cold):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
