"""Share of padding tokens over one epoch of the default training data: random vs length-grouped batches.

    python benchmarks/bench_padding.py [--batch_size 16] [--seed 0]

Batches are padded to their longest sequence (inputs and labels separately); the sampler sorts inside
mega-batches by input length + label length (the trainer's key until session 15) or by label length first, then
input length (the trainer's key since: `liquid.training.trainer.batch_sort_keys`), which keeps the decoder's padded
length tighter. Prints the shares and the ratios to random batches.
"""

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from liquid.data.batching import LengthGroupedBatchSampler, padding_fraction
from liquid.data.loading import load_splits
from liquid.data.tokenizer import train_tokenizer


def shares(batches: list[list[int]], sources: list[int], targets: list[int]) -> dict[str, float]:
    source_batches = [[sources[i] for i in b] for b in batches]
    target_batches = [[targets[i] for i in b] for b in batches]
    padded = sum(len(b) * max(s) + len(b) * max(t) for b, s, t in zip(batches, source_batches, target_batches))
    real = sum(sum(s) + sum(t) for s, t in zip(source_batches, target_batches))
    return {"input": padding_fraction(source_batches), "labels": padding_fraction(target_batches),
            "total": (padded - real) / padded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    train = load_splits(splits=("train",))["train"]
    instructions, responses = list(train["instruction"]), list(train["response"])
    start = time.perf_counter()
    tokenizer = train_tokenizer(instructions + responses)
    print(f"tokenizer trained on {len(train)} rows in {time.perf_counter() - start:.1f} s ({len(tokenizer)} tokens)")
    sources = [len(ids) for ids in tokenizer(instructions)["input_ids"]]
    targets = [len(ids) for ids in tokenizer(responses)["input_ids"]]

    order = list(range(len(train)))
    random.Random(args.seed).shuffle(order)
    random_batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    sampler = LengthGroupedBatchSampler([s + t for s, t in zip(sources, targets)], args.batch_size, seed=args.seed)
    grouped_batches = list(sampler)
    by_target = LengthGroupedBatchSampler([t * 10_000 + s for s, t in zip(sources, targets)], args.batch_size,
                                          seed=args.seed)
    target_batches = list(by_target)

    before, after = shares(random_batches, sources, targets), shares(grouped_batches, sources, targets)
    target_first = shares(target_batches, sources, targets)
    print(f"batch size {args.batch_size}, {len(random_batches)} batches per epoch")
    print(f"{'':8s} {'random':>8s} {'grouped':>8s} {'ratio':>7s} {'by label':>9s} {'ratio':>7s}")
    for key in ("input", "labels", "total"):
        print(f"{key:8s} {before[key]:8.1%} {after[key]:8.1%} {after[key] / before[key]:7.3f} "
              f"{target_first[key]:9.1%} {target_first[key] / before[key]:7.3f}")


if __name__ == "__main__":
    main()
