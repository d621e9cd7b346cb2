"""Training-step time on CPU: fp32 vs bf16 autocast (the choice behind `--precision auto` on CPU).

    python benchmarks/bench_precision.py                 # small preset, batch 16, the default run's shapes
    python benchmarks/bench_precision.py --preset tiny --steps 10
    python benchmarks/bench_precision.py --source_length 32 --target_length 64   # one fixed shape instead
    python benchmarks/bench_precision.py --model mlp       # matmul-only proxy: the preset's FFN widths

Both precisions train the same model from the same initial weights on the same synthetic batches; the
timed steps alternate between them (fp32, bf16, fp32, ...) so load changes on a shared machine hit
both alike. By default a timed step is one pass over the (source, target) shapes of the default run's
length-grouped batches (`bench_step.SHAPES`, the 10/30/50/70/90th percentiles), because a real run changes
shape at every step and the small shapes are where bf16 autocast pays most for its casts. Prints the
median time of each and the ratio bf16 / fp32 (> 1: bf16 is slower).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo
from liquid.config import LiquidConfig  # noqa: E402
from liquid.modeling import LiquidFoundationModelOptimized  # noqa: E402
from liquid.training.trainer import autocast_context, build_optimizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import SHAPES  # noqa: E402  (source, target) of the default run's batches

VOCAB_SIZE = 2000  # the default tokenizer's vocabulary
FIRST_REAL_TOKEN = 4  # ids below are the special tokens
WARMUP_STEPS = 1
DEVICE = torch.device("cpu")


def make_batch(batch_size: int, source_length: int, target_length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch_size, source_length), generator=generator)
    labels = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch_size, target_length), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


class FeedForwardProxy(torch.nn.Module):
    """Matmul-only stand-in for the model: embedding, (encoder + decoder) layers of SwiGLU-width MLPs, head."""

    def __init__(self, config: LiquidConfig):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB_SIZE, config.d_model)
        self.layers = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(config.d_model, config.d_ff), torch.nn.GELU(),
                                torch.nn.Linear(config.d_ff, config.d_model))
            for _ in range(config.encoder_layers + config.decoder_layers))
        self.head = torch.nn.Linear(config.d_model, VOCAB_SIZE)

    def forward(self, input_ids, attention_mask, labels):
        x = self.embed(labels)  # (B, T, D)
        for layer in self.layers:
            x = x + layer(x)
        logits = self.head(x).float()  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return argparse.Namespace(loss=loss)


def timed_step(model, optimizer, batches, precision: str) -> float:
    """Seconds for one optimizer step per batch of `batches` (forward, backward, AdamW)."""
    start = time.perf_counter()
    for batch in batches:
        with autocast_context(precision, DEVICE):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--source_length", type=int, default=None, help="with --target_length: one fixed shape")
    parser.add_argument("--target_length", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", choices=("liquid", "mlp"), default="liquid")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LiquidConfig.from_preset(args.preset, vocab_size=VOCAB_SIZE)
    base = LiquidFoundationModelOptimized(config) if args.model == "liquid" else FeedForwardProxy(config)
    runs = {}
    for precision in ("fp32", "bf16"):
        model = copy.deepcopy(base).train()
        runs[precision] = (model, build_optimizer(model, 1e-3, 0.01), [])
    if (args.source_length is None) != (args.target_length is None):
        parser.error("--source_length and --target_length go together")
    shapes = [(args.source_length, args.target_length)] if args.source_length else SHAPES
    batches = [make_batch(args.batch_size, source, target) for source, target in shapes]
    for step in range(WARMUP_STEPS + args.steps):
        for precision, (model, optimizer, times) in runs.items():
            seconds = timed_step(model, optimizer, batches, precision)
            if step >= WARMUP_STEPS:
                times.append(seconds)
    medians = {precision: statistics.median(times) for precision, (_, _, times) in runs.items()}
    print(f"model {args.model}, preset {args.preset}, batch {args.batch_size}, (source, target) shapes {shapes}, "
          f"{args.threads} threads, {args.steps} timed passes each")
    for precision, seconds in medians.items():
        print(f"  {precision:5s} median pass {seconds * 1000:8.1f} ms ({seconds * 1000 / len(shapes):.1f} ms per step)")
    print(f"  ratio bf16 / fp32 = {medians['bf16'] / medians['fp32']:.2f}  (> 1: bf16 autocast is slower on this CPU)")


if __name__ == "__main__":
    main()
