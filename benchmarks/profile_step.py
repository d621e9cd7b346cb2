"""Profile one training step (forward + backward + AdamW) of a preset with torch.profiler on CPU.

    python benchmarks/profile_step.py                       # small preset, batch 32, source 36, target 56
    python benchmarks/profile_step.py --source 36 --target 56 --rows 25 --steps 5

Shapes default to the default run's (batch 32, length-grouped batches of about 30-80 tokens, some padding).
Prints the step time (median of --steps timed steps) and the profiler's table sorted by self CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liquid.config import LiquidConfig  # noqa: E402
from liquid.modeling import LiquidFoundationModelOptimized  # noqa: E402
from liquid.training.trainer import build_optimizer  # noqa: E402

VOCAB_SIZE = 2000
FIRST_REAL_TOKEN = 4
IGNORE_INDEX = -100


def make_batch(batch: int, source: int, target: int, padded_share: float = 0.1) -> dict[str, torch.Tensor]:
    """Random ids; each row's real length is between (1 - 2 * padded_share) and 1 of the padded length."""
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, source), generator=gen)
    labels = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, target), generator=gen)
    src_len = (source * (1 - 2 * padded_share * torch.rand(batch, generator=gen))).long().clamp(min=1)
    tgt_len = (target * (1 - 2 * padded_share * torch.rand(batch, generator=gen))).long().clamp(min=1)
    attention_mask = (torch.arange(source)[None] < src_len[:, None]).long()
    input_ids = input_ids * attention_mask
    labels = labels.masked_fill(torch.arange(target)[None] >= tgt_len[:, None], IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train_step(model, optimizer, batch) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--source", type=int, default=36)
    parser.add_argument("--target", type=int, default=56)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset(args.preset, vocab_size=VOCAB_SIZE))
    optimizer = build_optimizer(model, 1e-3, 0.01)
    batch = make_batch(args.batch, args.source, args.target)
    model.train()
    for _ in range(2):
        train_step(model, optimizer, batch)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        train_step(model, optimizer, batch)
        times.append(time.perf_counter() - start)
    tokens = int(batch["attention_mask"].sum() + (batch["labels"] != IGNORE_INDEX).sum())
    med = statistics.median(times)
    print(f"step median {med * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms, {tokens / med:,.0f} real tokens/s "
          f"(batch {args.batch}, source {args.source}, target {args.target})")
    if args.no_profile:
        return
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        train_step(model, optimizer, batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
