"""Training-step overhead of ActivationMonitor: none vs sampled every 50 steps vs every step.

    python benchmarks/bench_monitor.py                  # nn.TransformerEncoder d=256, 4 layers, batch 16 x 64
    python benchmarks/bench_monitor.py --model liquid   # LiquidFoundationModelOptimized, preset "tiny"

Three identical models train side by side, one step each in turn (so machine load hits all alike):
no monitor, a monitor on an unsampled step, a monitor on a sampled step. The overhead of sampling
every n steps is ((n - 1) * unsampled + sampled) / n against the baseline (medians); with every
n = 1 it is the sampled step alone. By default the steps run on one torch thread and are timed by
that thread's CPU time, which other processes on a shared machine barely disturb (`--clock wall`
times wall-clock with torch's default threads instead).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo
from liquid.monitor import ActivationMonitor  # noqa: E402

D_MODEL, NUM_LAYERS, NUM_HEADS, D_FF = 256, 4, 4, 1024
BATCH, SEQ = 16, 64
LEARNING_RATE = 1e-4


def transformer_setup() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    layer = nn.TransformerEncoderLayer(D_MODEL, NUM_HEADS, D_FF, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, NUM_LAYERS, enable_nested_tensor=False)
    x = torch.randn(BATCH, SEQ, D_MODEL)
    target = torch.randn(BATCH, SEQ, D_MODEL)
    return model, lambda m: (m(x) - target).square().mean()


def liquid_setup() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    from liquid.config import LiquidConfig
    from liquid.modeling import LiquidFoundationModelOptimized

    config = LiquidConfig.from_preset("tiny")
    model = LiquidFoundationModelOptimized(config)
    input_ids = torch.randint(0, config.vocab_size, (BATCH, SEQ))
    labels = torch.randint(0, config.vocab_size, (BATCH, SEQ))
    attention_mask = torch.ones_like(input_ids)
    return model, lambda m: m(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, monitor: ActivationMonitor | None, clock
) -> float:
    start = clock()
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model).backward()
    optimizer.step()
    if monitor is not None:
        monitor.step()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["transformer", "liquid"], default="transformer")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--every", type=int, default=50, help="sampling interval to report besides every step")
    parser.add_argument(
        "--clock",
        choices=["thread", "wall"],
        default="thread",
        help="thread: one torch thread, timed by its CPU time (stable on a shared, busy machine); wall: perf_counter",
    )
    args = parser.parse_args()
    clock = time.perf_counter
    if args.clock == "thread":
        torch.set_num_threads(1)
        clock = time.thread_time

    torch.manual_seed(0)
    base_model, loss_fn = liquid_setup() if args.model == "liquid" else transformer_setup()
    models = {name: copy.deepcopy(base_model) for name in ("baseline", "unsampled", "sampled")}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=LEARNING_RATE) for name, m in models.items()}
    # every_n_steps=huge: after its first step the monitor never samples again (hooks installed, idle).
    monitors = {
        "baseline": None,
        "unsampled": ActivationMonitor(models["unsampled"], every_n_steps=sys.maxsize),
        "sampled": ActivationMonitor(models["sampled"], every_n_steps=1),
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(args.warmup + args.steps):
        for name, model in models.items():
            elapsed = train_step(model, optimizers[name], loss_fn, monitors[name], clock)
            if i >= args.warmup:
                times[name].append(elapsed)
    for monitor in monitors.values():
        if monitor is not None:
            monitor.remove()

    base, unsampled, sampled = (statistics.median(times[name]) for name in ("baseline", "unsampled", "sampled"))
    every_n = ((args.every - 1) * unsampled + sampled) / args.every
    watched = len(monitors["sampled"].module_names)
    print(f"model={args.model}, {watched} watched modules, median of {args.steps} steps, {args.clock} clock")
    print(f"baseline step          {base * 1e3:8.1f} ms")
    print(f"monitor, unsampled     {unsampled * 1e3:8.1f} ms  ({(unsampled / base - 1):+.1%})")
    print(f"monitor, sampled       {sampled * 1e3:8.1f} ms  ({(sampled / base - 1):+.1%})")
    print(f"every {args.every:<3} steps overhead  {(every_n / base - 1):+.1%}  (goal < 5%)")
    print(f"every step overhead     {(sampled / base - 1):+.1%}")


if __name__ == "__main__":
    main()
