"""Training-step speed of `torch.compile` against eager, same model, same process, interleaved.

    python benchmarks/bench_compile.py                         # small preset as main.py builds it
    python benchmarks/bench_compile.py --set ffn_type=dense --rounds 4

A step is forward + backward + clipping + fused AdamW at batch 16 (the default run's), over synthetic
batches with the default run's spread of padded shapes (`bench_step.SHAPES` plus shapes between them, so
that a compiled model meets as many distinct lengths as in training). Two copies of the model are built from
the same seed; one is wrapped in ``torch.compile(dynamic=None)``. The script first runs every shape once on
each (compilation and recompilation time, printed), then times passes in turn (eager, compiled, eager, ...)
and prints the median pass time of each and the speed-up (eager / compiled). Wall clock, all threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from benchmarks.bench_step import make_batch  # noqa: E402
from liquid.config import LiquidConfig  # noqa: E402
from liquid.modeling import LiquidFoundationModelOptimized  # noqa: E402
from liquid.training.args import ArgsError, parse_overrides  # noqa: E402
from liquid.training.trainer import build_optimizer  # noqa: E402

BATCH = 16
# (source, target) padded shapes: bench_step.SHAPES and the lengths between them
SHAPES = [(15, 8), (12, 17), (14, 25), (17, 27), (19, 29), (21, 41), (23, 53), (20, 62), (19, 71), (22, 90)]


def build(overrides: dict) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("small", **{"vocab_size": 2000, **overrides}))
    model.train()
    return model, build_optimizer(model, 3.5e-4, 0.01)


def one_pass(model, optimizer, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per side (interleaved)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="LiquidConfig override")
    args = parser.parse_args()
    try:
        overrides = parse_overrides(args.set)
    except ArgsError as error:
        raise SystemExit(f"error: {error}") from None
    batches = [make_batch(BATCH, source, target, seed) for seed, (source, target) in enumerate(SHAPES)]
    eager, eager_opt = build(overrides)
    compiled_model, compiled_opt = build(overrides)
    compiled = torch.compile(compiled_model)
    start = time.perf_counter()
    first = one_pass(compiled, compiled_opt, batches)
    print(f"compiled: first pass over {len(SHAPES)} shapes (compilation included) {first:.1f} s, "
          f"second pass {one_pass(compiled, compiled_opt, batches):.2f} s ({time.perf_counter() - start:.0f} s)")
    one_pass(eager, eager_opt, batches)  # warm-up
    times = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        times["eager"].append(one_pass(eager, eager_opt, batches))
        times["compiled"].append(one_pass(compiled, compiled_opt, batches))
    tokens = sum(int(b["attention_mask"].sum() + (b["labels"] != -100).sum()) for b in batches)
    print(f"| model | median pass (s) | real tokens/s |  (overrides: {overrides or 'none'}, threads: "
          f"{torch.get_num_threads()})\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {tokens / median:,.0f} |")
    print(f"speed-up (eager / compiled): {statistics.median(times['eager']) / statistics.median(times['compiled']):.2f}x")


if __name__ == "__main__":
    main()
