"""Time of the in-run validation's generation at several generate() batch sizes, same process, interleaved.

    python benchmarks/bench_validation.py --model_path checkpoints/<run> --batch_sizes 16 64 --rounds 3

`main.py` validates every --eval_every steps on a sample of --eval_samples validation rows (greedy answers, the
same call as `Trainer.evaluate`), and that time is part of the default run's wall-clock budget, so it is taken
from training steps. This script takes the same sample (`random.Random(seed + 1)`, as the trainer draws it) and
times `generate_answers` on it at each batch size in turn, `--rounds` times, and prints the median seconds per
batch size, its ratio to the first one, and whether the answers were identical. Wall clock, all threads.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from liquid.evaluation import generate_answers, load_model_and_tokenizer  # noqa: E402
from liquid.training.trainer import EVAL_SAMPLE_SEED_OFFSET  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_path", required=True, help="a run directory or checkpoint (a trained model)")
    parser.add_argument("--validation_file", default="data/validation.jsonl")
    parser.add_argument("--eval_samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=160)
    args = parser.parse_args()
    model, tokenizer, _ = load_model_and_tokenizer(args.model_path)
    model.eval()
    with open(args.validation_file, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    indices = sorted(random.Random(args.seed + EVAL_SAMPLE_SEED_OFFSET).sample(range(len(rows)),
                                                                            min(args.eval_samples, len(rows))))
    instructions = [rows[i]["instruction"] for i in indices]
    times: dict[int, list[float]] = {size: [] for size in args.batch_sizes}
    answers: dict[int, list[str]] = {}
    for _ in range(args.rounds):
        for size in args.batch_sizes:
            start = time.perf_counter()
            with torch.no_grad():
                answers[size] = generate_answers(model, tokenizer, instructions, batch_size=size, progress=False,
                                                 max_new_tokens=args.max_new_tokens, do_sample=False, num_beams=1)
            times[size].append(time.perf_counter() - start)
    first = args.batch_sizes[0]
    print(f"| generate batch | seconds ({len(instructions)} rows, median of {args.rounds}) | ratio to {first} "
          f"| answers equal to batch {first} |")
    print("|---|---|---|---|")
    for size in args.batch_sizes:
        same = sum(a == b for a, b in zip(answers[size], answers[first]))
        print(f"| {size} | {statistics.median(times[size]):.2f} | "
              f"{statistics.median(times[first]) / statistics.median(times[size]):.2f}x | {same}/{len(instructions)} |")


if __name__ == "__main__":
    main()
