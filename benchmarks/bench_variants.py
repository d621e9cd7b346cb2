"""Training-step time of `small` preset variants against the default, same process, interleaved.

    python benchmarks/bench_variants.py --variant "d96:d_model=96,d_ff=192,qk_init_std=0.10206" \
        --variant "qk_norm:qk_norm=true"
    python benchmarks/bench_variants.py --variant "dec4:decoder_layers=4" --rounds 8 --shape 16 22 80
    python benchmarks/bench_variants.py --variant "v1000:vocab_size=1000"      # ids folded into the smaller vocabulary

At a fixed wall-clock budget a variant's step time decides how many optimizer steps it gets, so a
recipe comparison needs it next to the accuracy. A step is forward + backward + clipping + fused AdamW on one
synthetic batch of `--shape` (batch, source, target; the default is the default run's typical math batch).
Every model is built and warmed up first; then each round times `--steps` steps of every model in turn, so that
a change in the machine's speed hits all of them alike. Prints the median step of each and its ratio to the
default (`small` as main.py builds it). Wall clock, all threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from benchmarks.bench_compile import build, one_pass  # noqa: E402
from benchmarks.bench_step import FIRST_REAL_TOKEN, make_batch  # noqa: E402
from liquid.training.args import ArgsError, parse_overrides  # noqa: E402

WARMUP_STEPS = 3


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name:key=value,key=value"`` -> (name, typed LiquidConfig overrides)."""
    name, sep, spec = text.partition(":")
    if not sep or not name:
        raise ArgsError(f"--variant must be NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return name, parse_overrides([item for item in spec.split(",") if item])


def fit_vocab(batch: dict[str, torch.Tensor], vocab_size: int) -> dict[str, torch.Tensor]:
    """The batch with its real token ids folded into a smaller vocabulary (a `vocab_size=` variant); padding (0)
    and ignored labels (-100) stay as they are, so every model sees the same shape and the same padding."""
    def fold(ids: torch.Tensor) -> torch.Tensor:
        real = ids >= FIRST_REAL_TOKEN
        return torch.where(real, FIRST_REAL_TOKEN + (ids - FIRST_REAL_TOKEN) % (vocab_size - FIRST_REAL_TOKEN), ids)

    return {**batch, "input_ids": fold(batch["input_ids"]), "labels": fold(batch["labels"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="a LiquidConfig variant of the small preset (repeatable)")
    parser.add_argument("--shape", type=int, nargs=3, default=(16, 22, 80), metavar=("BATCH", "SOURCE", "TARGET"))
    parser.add_argument("--rounds", type=int, default=6, help="rounds over all models")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per model per round")
    args = parser.parse_args()
    try:
        variants = [("default", {})] + [parse_variant(text) for text in args.variant]
    except ArgsError as error:
        parser.error(str(error))
    batch = make_batch(*args.shape, seed=0)
    models = {}
    for name, overrides in variants:
        model, optimizer = build(overrides)
        own = fit_vocab(batch, model.config.vocab_size)
        one_pass(model, optimizer, [own] * WARMUP_STEPS)
        models[name] = (model, optimizer, own, [])
    for _ in range(args.rounds):
        for model, optimizer, own, times in models.values():
            times.extend(one_pass(model, optimizer, [own]) for _ in range(args.steps))
    base = statistics.median(models["default"][3])
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads; shape (batch, source, "
          f"target) = {tuple(args.shape)}; median of {args.rounds * args.steps} steps each\n")
    print("| variant | parameters | step (ms) | ratio to default |")
    print("|---|---|---|---|")
    for name, (model, _, _, times) in models.items():
        step = statistics.median(times)
        print(f"| {name} | {sum(p.numel() for p in model.parameters()):,} | {step * 1000:.0f} | {step / base:.2f} |")


if __name__ == "__main__":
    main()
