"""`make bench`: run every benchmark and print its figures (and write them to results/bench.json)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import time

from xmd_core.config import load_profile

# Each module has `run(profile_name) -> dict` (or `run()` when the profile does not matter).
BENCHMARKS = ("bench_media", "bench_world", "bench_models", "bench_parallel", "bench_distill", "bench_experts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    out = profile.results_dir / "bench.json"
    # figures of benchmarks not run this time are kept (`--only` runs a few)
    figures = json.loads(out.read_text()) if out.is_file() else {}
    figures["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        takes_profile = bool(inspect.signature(module.run).parameters)
        figures[name] = module.run(profile.name) if takes_profile else module.run()
        figures[name]["bench_seconds"] = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1, default=str))
    print(f"\nfigures written to {out}")


if __name__ == "__main__":
    main()
