"""Cost of a training step with each optimiser: AdamW against Muon (liquid/training/optim.py), one process.

    python benchmarks/bench_optimizer.py                  # small preset, batch 16, default-run batch shapes
    python benchmarks/bench_optimizer.py --quick

A step is forward + backward + gradient clipping + the optimiser's update, on synthetic batches with the
shapes of the default run's length-grouped batches (source, target). The variants share one model shape and
are timed in turn (A, B, C, A, B, C, ...), so load changes on a shared machine hit all alike; wall clock, the
default run's two threads. Prints a markdown table of the median time per step and per optimiser update, and a
last line with the step-time ratio of each Muon variant to AdamW. Newton-Schulz costs about 5 x 3 m^2 n FLOPs per
(m <= n) matrix and step, independent of the batch, which on a 2-core CPU is comparable to a small model's
forward and backward pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liquid.config import LiquidConfig  # noqa: E402
from liquid.modeling import LiquidFoundationModelOptimized  # noqa: E402
from liquid.training.optim import build_optimizer  # noqa: E402

SHAPES = [(15, 8), (14, 25), (19, 29), (23, 53), (19, 71)]  # (source, target) of default-run batches
VOCAB_SIZE = 2000
FIRST_REAL_TOKEN = 4
VARIANTS = {"adamw": dict(optimizer="adamw"), "muon ns3": dict(optimizer="muon", ns_steps=3),
            "muon ns5": dict(optimizer="muon", ns_steps=5)}


def make_batch(batch: int, source: int, target: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, source), generator=gen),
            "attention_mask": torch.ones(batch, source, dtype=torch.long),
            "labels": torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, target), generator=gen)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the shapes per variant")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    config = LiquidConfig.from_preset(args.preset, vocab_size=VOCAB_SIZE)
    batches = [make_batch(args.batch, source, target, seed) for seed, (source, target) in enumerate(SHAPES)]
    runs = {}
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        model = LiquidFoundationModelOptimized(config).train()
        runs[name] = (model, build_optimizer(model, 3.5e-4, 0.01, **options), [], [])

    def one_pass(model, optimizer, steps, updates) -> None:
        for batch in batches:
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            middle = time.perf_counter()
            optimizer.step()
            end = time.perf_counter()
            steps.append(end - start)
            updates.append(end - middle)

    for model, optimizer, _, _ in runs.values():  # warm-up
        one_pass(model, optimizer, [], [])
    for _ in range(rounds):
        for model, optimizer, steps, updates in runs.values():
            one_pass(model, optimizer, steps, updates)

    print(f"{args.preset} preset, batch {args.batch}, {torch.get_num_threads()} threads, {rounds} rounds x "
          f"{len(SHAPES)} shapes, wall clock\n")
    print("| optimiser | step ms (median) | update ms (median) |\n|---|---|---|")
    medians = {}
    for name, (_, _, steps, updates) in runs.items():
        medians[name] = statistics.median(steps)
        print(f"| {name} | {1000 * medians[name]:.1f} | {1000 * statistics.median(updates):.1f} |")
    ratios = ", ".join(f"{name} {medians[name] / medians['adamw']:.2f}x" for name in VARIANTS if name != "adamw")
    print(f"\nstep time against AdamW: {ratios}")


if __name__ == "__main__":
    main()
