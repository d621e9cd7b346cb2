"""Training-step time of the default model under OpenMP wait policies (default, ACTIVE, PASSIVE), one run.

    python benchmarks/bench_omp_wait.py            # 3 rounds
    python benchmarks/bench_omp_wait.py --quick    # 1 round

An op-overhead-bound step pays for the OpenMP workers' wake-up whenever they went to sleep between two
parallel ops. ``OMP_WAIT_POLICY`` is read once when the OpenMP runtime starts, so each policy runs in its own
worker process (built from the same seed); the rounds visit the policies in turn (A, B, C, A, B, C, ...) so a
change in the machine's speed hits all alike. A worker times 8 passes over three 16-row batches of the default
run's shapes (sentiment, math, qa) after a warm-up and prints the median step in ms. All threads, wall clock.
Prints a markdown table and a last line with the best policy's ratio to the default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {"default": None, "ACTIVE": "ACTIVE", "PASSIVE": "PASSIVE"}
SHAPES = [(16, 20, 7), (16, 22, 52), (16, 14, 25)]  # (batch, source, target): sentiment, math, qa batches


def worker() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_compile import build, one_pass
    from benchmarks.bench_step import make_batch

    model, optimizer = build({})
    batches = [make_batch(*shape, seed=i + 1) for i, shape in enumerate(SHAPES)]
    one_pass(model, optimizer, batches * 2)  # warm-up
    times = [one_pass(model, optimizer, batches) / len(batches) for _ in range(8)]
    print(f"{statistics.median(times) * 1000:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    rounds = 1 if args.quick else args.rounds
    results: dict[str, list[float]] = {name: [] for name in POLICIES}
    for _ in range(rounds):
        for name, policy in POLICIES.items():
            env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
            if policy is not None:
                env["OMP_WAIT_POLICY"] = policy
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker"], env=env, cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            results[name].append(float(done.stdout.strip().splitlines()[-1]))
    base = statistics.median(results["default"])
    print(f"small preset, batches {SHAPES}, {rounds} round(s), median step of 8 passes per worker; wall clock\n")
    print("| OMP_WAIT_POLICY | steps (ms) | median (ms) | speed vs default |")
    print("|---|---|---|---|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {median:.1f} | {base / median:.2f}x |")
    best = min(results, key=lambda name: statistics.median(results[name]))
    print(f"\nfastest policy: {best}, {base / statistics.median(results[best]):.2f}x the default")


if __name__ == "__main__":
    main()
