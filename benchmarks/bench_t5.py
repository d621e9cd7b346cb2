"""Training throughput of a liquid preset against a same-size Hugging Face T5, measured side by side.

    python benchmarks/bench_t5.py                 # small preset vs T5, S = 128, 512, 2048, batch 8
    python benchmarks/bench_t5.py --quick         # S = 128, 512, batch 2, one timed step each (< 1 min)
    python benchmarks/bench_t5.py --lengths 128 1024 --batch 4 --precision bf16
    python benchmarks/bench_t5.py --lengths 128 --t5_d_ff 512   # T5 as wide as the FFN a liquid token uses

A step is forward + backward + AdamW on random ids with source and target length S (no padding).
T5 is `T5ForConditionalGeneration` built from a `T5Config` (never from the hub) with the same d_model,
heads (d_kv = d_model / heads), encoder / decoder layers, d_ff (gated-GELU, like liquid's gated SwiGLU
experts) and vocabulary. Both use the same precision (``--precision auto`` resolves it with the
trainer's rule). Per length, one warm-up step each (it also counts the FLOPs), then --repeats timed steps interleaved
(liquid, T5, liquid, ...) so load on a shared machine hits both; the median is reported. On CPU the
default ``--clock thread`` runs one torch thread timed by its CPU time (waiting for a shared core is not
counted); the peak matmul rate is timed the same way.

MFU = model FLOPs per second / matmul peak. Model FLOPs of one step are counted once per model with
`torch.utils.flop_counter.FlopCounterMode` (matmuls and attention as executed: liquid's routed experts
and windowed attention, T5's full attention; CPU SDPA counted as 4 B H Tq Tk dh forward, twice that
backward, masked entries included); the peak is the best rate of a square matmul in the
same precision, measured in the same run. Prints a markdown table; the last line is the headline
ratio (liquid / T5 tokens/s at the longest and the shortest length).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liquid.config import LiquidConfig  # noqa: E402
from liquid.modeling import LiquidFoundationModelOptimized  # noqa: E402
from liquid.training.trainer import autocast_context, resolve_precision  # noqa: E402

VOCAB_SIZE = 2000
FIRST_REAL_TOKEN = 4
PEAK_SIZE = 1024  # square matmul used for the peak rate
PEAK_REPEATS = 5
PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CLOCK = time.perf_counter  # main() switches to time.thread_time for one CPU thread (--clock thread)


def t5_like(config: LiquidConfig, d_ff: int | None = None) -> torch.nn.Module:
    """T5 with the preset's d_model, heads, layers, vocabulary and (unless `d_ff` is given) d_ff."""
    from transformers import T5Config, T5ForConditionalGeneration

    t5_config = T5Config(
        vocab_size=config.vocab_size, d_model=config.d_model, d_kv=config.d_model // config.num_heads,
        d_ff=config.d_ff if d_ff is None else d_ff, num_layers=config.encoder_layers, num_decoder_layers=config.decoder_layers,
        num_heads=config.num_heads, feed_forward_proj="gated-gelu", dropout_rate=0.0,
        pad_token_id=0, eos_token_id=2, decoder_start_token_id=1,
    )
    return T5ForConditionalGeneration(t5_config)


def make_batch(batch: int, length: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, length), generator=gen)
    labels = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, length), generator=gen)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": labels.to(device)}


def _cpu_sdpa_forward_flops(query, key, *args, **kwargs) -> int:
    """QK^T and PV of the CPU flash-attention kernel (FlopCounterMode has no rule for it): 4 B H Tq Tk dh.

    FlopCounterMode passes shapes: query (B, H, Tq, dh), key (B, Hkv, Tk, dh)."""
    batch, heads, q_len, head_dim = query
    return 4 * batch * heads * q_len * key[-2] * head_dim


def _cpu_sdpa_backward_flops(grad_out, query, key, *args, **kwargs) -> int:
    """dV, dP, dQ, dK: twice the forward."""
    return 2 * _cpu_sdpa_forward_flops(query, key)


CUSTOM_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_forward_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}
# CUDA kernels: FlopCounterMode's own rules assert that query and key have the same number of heads,
# which grouped-query attention breaks; the rules above count (B, H, Tq, dh) x (B, Hkv, Tk, dh) correctly.
for _kernel in ("flash", "efficient", "cudnn"):
    _op = getattr(torch.ops.aten, f"_scaled_dot_product_{_kernel}_attention", None)
    _op_backward = getattr(torch.ops.aten, f"_scaled_dot_product_{_kernel}_attention_backward", None)
    if _op is not None and _op_backward is not None:
        CUSTOM_FLOPS[_op] = _cpu_sdpa_forward_flops
        CUSTOM_FLOPS[_op_backward] = _cpu_sdpa_backward_flops


class Trainee:
    """A model, its AdamW and one training step."""

    def __init__(self, name: str, model: torch.nn.Module, precision: str, device: torch.device):
        self.name, self.precision, self.device = name, precision, device
        self.model = model.to(device).train()
        fused = device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=fused or None)
        self.params = sum(p.numel() for p in self.model.parameters())

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_context(self.precision, self.device):
            loss = self.model(**batch).loss
        loss.backward()
        self.optimizer.step()

    def timed_step(self, batch: dict[str, torch.Tensor]) -> float:
        sync(self.device)
        start = CLOCK()
        self.step(batch)
        sync(self.device)
        return CLOCK() - start

    def step_flops(self, batch: dict[str, torch.Tensor]) -> int:
        """FLOPs of forward + backward, counted during one (warm-up) training step."""
        counter = FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS)
        with counter:
            self.optimizer.zero_grad(set_to_none=True)
            with autocast_context(self.precision, self.device):
                loss = self.model(**batch).loss
            loss.backward()
        self.optimizer.step()
        return counter.get_total_flops()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(precision: str, device: torch.device) -> float:
    """Best FLOP/s of a PEAK_SIZE^3 matmul in the precision's dtype."""
    dtype = PEAK_DTYPES[precision]
    a = torch.randn(PEAK_SIZE, PEAK_SIZE, device=device).to(dtype)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(PEAK_REPEATS):
        sync(device)
        start = CLOCK()
        a @ b
        sync(device)
        best = min(best, CLOCK() - start)
    return 2 * PEAK_SIZE**3 / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per model and length")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="S = 128, 512, batch 2, one timed step")
    parser.add_argument("--t5_d_ff", type=int, default=None,
                        help="T5's feed-forward width (default: the preset's d_ff, the issue's 'same size'; the "
                             "width a liquid token uses, moe_top_k * d_ff, compares at equal feed-forward FLOPs)")
    parser.add_argument("--clock", choices=["thread", "wall"], default="thread",
                        help="thread (CPU only): one torch thread timed by its CPU time, stable on a shared machine")
    args = parser.parse_args(argv)
    global CLOCK
    if args.clock == "thread" and args.device == "cpu":
        torch.set_num_threads(1)
        CLOCK = time.thread_time
    if args.quick:
        args.lengths, args.batch, args.repeats = [128, 512], 2, 1
    if min(args.lengths) < 2 or args.batch < 1 or args.repeats < 1:
        raise SystemExit("--lengths must be >= 2, --batch and --repeats >= 1")
    if args.t5_d_ff is not None and args.t5_d_ff < 1:
        raise SystemExit(f"--t5_d_ff must be >= 1, got {args.t5_d_ff}")
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)

    torch.manual_seed(0)
    config = LiquidConfig.from_preset(args.preset, vocab_size=VOCAB_SIZE)
    models = [Trainee(f"liquid-{args.preset}", LiquidFoundationModelOptimized(config), precision, device),
              Trainee("T5" if args.t5_d_ff is None else f"T5 (d_ff {args.t5_d_ff})", t5_like(config, args.t5_d_ff),
                      precision, device)]
    peak = matmul_peak(precision, device)
    rows = []
    for length in args.lengths:
        batch = make_batch(args.batch, length, device)
        tokens = 2 * args.batch * length  # source + target
        flops = {m.name: m.step_flops(batch) for m in models}  # also the warm-up step
        times: dict[str, list[float]] = {m.name: [] for m in models}
        for _ in range(args.repeats):
            for model in models:
                times[model.name].append(model.timed_step(batch))
        peak = max(peak, matmul_peak(precision, device))
        medians = {name: statistics.median(values) for name, values in times.items()}
        rows.append((length, tokens, medians, flops))

    names = [m.name for m in models]
    print(f"{device.type} ({torch.get_num_threads()} thread(s), clock {'thread' if CLOCK is time.thread_time else 'wall'}), {precision}, "
          f"batch {args.batch}, source = target = S, "
          f"median of {args.repeats} interleaved steps (fwd + bwd + AdamW); matmul peak {peak / 1e9:.1f} GFLOP/s "
          f"measured in this run; parameters " + ", ".join(f"{m.name} {m.params / 1e6:.2f}M" for m in models) + "\n")
    print(f"| S | {names[0]} tokens/s | {names[1]} tokens/s | ratio | {names[0]} MFU | {names[1]} MFU "
          f"| FLOPs per token {names[0]} / {names[1]} |")
    print("|---|---|---|---|---|---|---|")
    ratios = {}
    for length, tokens, medians, flops in rows:
        rate = {name: tokens / medians[name] for name in names}
        mfu = {name: flops[name] / medians[name] / peak for name in names}
        ratios[length] = rate[names[0]] / rate[names[1]]
        print(f"| {length} | {rate[names[0]]:,.0f} | {rate[names[1]]:,.0f} | {ratios[length]:.2f} | "
              f"{mfu[names[0]]:.1%} | {mfu[names[1]]:.1%} | {flops[names[0]] / flops[names[1]]:.2f} |")
    short, long = min(ratios), max(ratios)
    print(f"\nliquid / T5 training tokens/s: {ratios[short]:.2f}x at S = {short}, {ratios[long]:.2f}x at S = {long}")


if __name__ == "__main__":
    main()
