"""Wall time of one epoch's training batches under several `--oversample` mixes, interleaved, same model.

    python benchmarks/bench_mix.py                                   # the default mix against every row once
    python benchmarks/bench_mix.py --mix "wp2:qa=0.25@1 sentiment=0.5@1 word_problem=2@1" --epoch 1 --rounds 8

A mix changes which batches an epoch holds, and so what a step costs: thinning the short qa and sentiment rows
leaves more of the long math batches. At a fixed wall-clock budget that decides how many steps a run gets, so a
recipe comparison at a fixed step count (free of the VM's speed of the moment) needs the step cost of each mix:
run A at N steps costs what run B costs at N * (A's step cost / B's step cost) steps.

Each mix's batches of `--epoch` come from the sampler `main.py` builds (the shipped data, batch 16, seed 0), in a
shuffled order; every round times the next `--steps` of them for every mix in turn (forward, backward, clipping,
fused AdamW of the small preset), so a change in the machine's speed hits all mixes alike. Prints the median step
of each mix, its epoch length and time, and the step-cost ratio to the first mix.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from liquid.data import LengthGroupedBatchSampler, Seq2SeqCollator  # noqa: E402
from liquid.training import trainer as trainer_module  # noqa: E402
from liquid.training.args import DEFAULT_BATCH_SIZE, parse_args  # noqa: E402

DEFAULT_MIXES = ("once:qa=1 sentiment=1", "default:")  # every row once; the default mix (DEFAULT_OVERSAMPLE)


def parse_mix(text: str) -> tuple[str, list[str]]:
    """``"name:qa=0.25@1 sentiment=0.5@1"`` -> ("name", ["--oversample", "qa=0.25@1", ...]); empty: the default."""
    name, sep, items = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"error: --mix must be NAME:[TASK=K[@EPOCH] ...], got {text!r}")
    return name, [flag for item in items.split() for flag in ("--oversample", item)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", action="append", default=None, metavar="NAME:ITEMS",
                        help=f"a mix (repeatable; default {' and '.join(DEFAULT_MIXES)})")
    parser.add_argument("--epoch", type=int, default=1, help="the epoch whose batches are timed")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per mix per round")
    args = parser.parse_args(argv)
    mixes = [parse_mix(text) for text in args.mix or DEFAULT_MIXES]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        run_args = {name: parse_args(["--output_dir", str(Path(folder) / name), *flags]) for name, flags in mixes}
        ctx = trainer_module.init_distributed("cpu")
        data = {name: trainer_module.prepare_data(a, ctx, None) for name, a in run_args.items()}
    first = next(iter(data.values()))
    train = first.train
    defaults = next(iter(run_args.values()))
    model = trainer_module.build_model(defaults, first.tokenizer, None)
    optimizer = trainer_module.build_optimizer(model, defaults.learning_rate, defaults.weight_decay, defaults.adam_beta2,
                                               defaults.optimizer, defaults.muon_ns_steps, defaults.muon_until)
    collate = Seq2SeqCollator(first.tokenizer, defaults.max_source_length, defaults.max_target_length)
    keys = trainer_module.batch_sort_keys(train)
    batches, epoch_batches = {}, {}
    for name, run in data.items():
        sampler = LengthGroupedBatchSampler(keys, DEFAULT_BATCH_SIZE, seed=0, repeats=run.repeats,
                                            later_repeats=run.later_repeats)
        sampler.set_epoch(args.epoch)
        order = list(sampler)
        random.Random(0).shuffle(order)
        batches[name] = [collate([train[i] for i in rows]) for rows in order[:args.rounds * args.steps]]
        epoch_batches[name] = sampler.batches_in_epoch(args.epoch)

    def step(batch) -> None:
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[mixes[0][0]][:3]:  # warm-up
        step(batch)
    seconds: dict[str, list[float]] = {name: [] for name in batches}
    for round_index in range(args.rounds):
        for name, chunk in batches.items():
            timed = chunk[round_index * args.steps:(round_index + 1) * args.steps]
            start = time.perf_counter()
            for batch in timed:
                step(batch)
            seconds[name].append((time.perf_counter() - start) / max(len(timed), 1))
    print(f"epoch {args.epoch} of each mix, batch {DEFAULT_BATCH_SIZE}, {args.rounds} rounds of {args.steps} steps, "
          f"{torch.get_num_threads()} threads, wall clock\n")
    print("| mix | batches in the epoch | median step (ms) | epoch (s) | step cost / first |")
    print("|---|---|---|---|---|")
    reference = statistics.median(seconds[mixes[0][0]])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {epoch_batches[name]:,} | {1000 * median:.1f} | {epoch_batches[name] * median:.0f} | "
              f"{median / reference:.3f} |")


if __name__ == "__main__":
    main()
