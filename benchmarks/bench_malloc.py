"""Training-step time with glibc's default malloc against `keep_freed_memory` (liquid/training/allocator.py).

    python benchmarks/bench_malloc.py              # 6 rounds
    python benchmarks/bench_malloc.py --rounds 2

The allocator's settings apply to a whole process, so each side runs in its own worker process (same seed, same
batches); the rounds alternate the sides (default, keep, default, keep, ...) so a change in the machine's speed hits
both alike. A worker times 8 passes over three 16-row batches of the default run's shapes (sentiment, math, qa)
after a warm-up and prints its median step (ms), the minor page faults per step and its peak RSS (MiB).
All threads, wall clock. Prints a markdown table and a last line with the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("default", "keep")
SHAPES = [(16, 20, 7), (16, 22, 52), (16, 14, 25)]  # (batch, source, target): sentiment, math, qa batches
PASSES = 8


def worker(side: str) -> None:
    sys.path.insert(0, str(ROOT))
    if side == "keep":
        from liquid.training.allocator import keep_freed_memory
        if not keep_freed_memory():
            raise SystemExit("keep_freed_memory() was refused: not glibc?")
    from benchmarks.bench_compile import build, one_pass
    from benchmarks.bench_step import make_batch

    model, optimizer = build({})
    batches = [make_batch(*shape, seed=i + 1) for i, shape in enumerate(SHAPES)]
    one_pass(model, optimizer, batches * 2)  # warm-up
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = [one_pass(model, optimizer, batches) / len(batches) for _ in range(PASSES)]
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (PASSES * len(batches))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{statistics.median(times) * 1000:.2f} {faults:.0f} {rss:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    results: dict[str, list[tuple[float, float, float]]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for side in SIDES:
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", side], env=os.environ,
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            ms, faults, rss = map(float, done.stdout.strip().splitlines()[-1].split())
            results[side].append((ms, faults, rss))
    print(f"small preset, batches {SHAPES}, {args.rounds} round(s), median step of {PASSES} passes per worker; "
          "wall clock\n")
    print("| malloc | steps (ms) | median (ms) | page faults / step | peak RSS (MiB) | speed vs default |")
    print("|---|---|---|---|---|---|")
    medians = {side: statistics.median(r[0] for r in rows) for side, rows in results.items()}
    for side, rows in results.items():
        print(f"| {side} | {', '.join(f'{r[0]:.1f}' for r in rows)} | {medians[side]:.1f} | "
              f"{statistics.median(r[1] for r in rows):.0f} | {max(r[2] for r in rows):.0f} | "
              f"{medians['default'] / medians[side]:.2f}x |")
    print(f"\nkeep_freed_memory: {medians['default'] / medians['keep']:.2f}x the default malloc")


if __name__ == "__main__":
    main()
