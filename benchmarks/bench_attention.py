"""Forward+backward time and peak memory: EnhancedLocalAttention (blocked) vs full attention with a (T x T) band mask.

Both compute the same function with the same weights (the script checks the outputs agree); the baseline calls
``scaled_dot_product_attention`` once over the whole sequence with an explicit band mask, so its memory grows
with T^2 while the blocked module's grows with T * W.

    python benchmarks/bench_attention.py                      # W=64, D=256, 4 heads, B=1, bidirectional
    python benchmarks/bench_attention.py --causal --lengths 256 1024 4096
    python benchmarks/bench_attention.py --device cuda --dtype bfloat16
    python benchmarks/bench_attention.py --window 256 --lengths 128 256 2048 8192 --repeats 2   # issue 10's target
    python benchmarks/bench_attention.py --quick              # W=256, T = 128, 256, 2048, one timed run (< 1 min)

Lengths T <= 2W exercise the module's short path (one band-masked SDPA call, no blocks): it should match
the full baseline's time there; beyond, the blocked path should win by about T / (3W) (bidirectional).

Time: the fastest of --repeats runs, local and full interleaved (robust to other load on a shared CPU); on CPU
by default one torch thread timed by its CPU time (``--clock thread``).
Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the running sum of every allocation and free
that ``torch.profiler.profile(profile_memory=True)`` records, in time order (activations held for backward,
the mask, scores and gradients; inputs and weights allocated before the step are not counted).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liquid.attention import EnhancedLocalAttention  # noqa: E402

MIB = 2**20
CLOCK = time.perf_counter  # main() switches to time.thread_time for one CPU thread (--clock thread)
MS_PER_S = 1000.0


def full_band_attention(module: EnhancedLocalAttention, x: torch.Tensor) -> torch.Tensor:
    """The baseline: same projections and RoPE as ``module``, one SDPA call over all T keys with a (T, T) band mask."""
    batch, length, _ = x.shape
    q = module.q_proj(x).view(batch, length, module.num_heads, module.head_dim).transpose(1, 2)  # (B, H, T, dh)
    k = module.k_proj(x).view(batch, length, module.num_kv_heads, module.head_dim).transpose(1, 2)  # (B, Hkv, T, dh)
    v = module.v_proj(x).view(batch, length, module.num_kv_heads, module.head_dim).transpose(1, 2)  # (B, Hkv, T, dh)
    positions = torch.arange(length, device=x.device)
    if module.rotary is not None:
        q, k = module.rotary(q, positions), module.rotary(k, positions)
    i, j = positions[:, None], positions[None, :]
    window = module.window_size
    if module.overlap:
        band = ((i - j >= 0) & (i - j < window)) if module.causal else ((i - j).abs() <= window // 2)
    else:
        band = (i // window == j // window) & ((j <= i) | (not module.causal))  # (T, T)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=band, enable_gqa=module.num_kv_heads != module.num_heads)
    return module.o_proj(out.transpose(1, 2).reshape(batch, length, -1))  # (B, T, D)


def forward_backward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    x.grad = None
    fn(x).square().mean().backward()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fns: list[Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor, repeats: int) -> list[float]:
    """Fastest of ``repeats`` forward+backward runs of each fn, interleaved so that all see the same machine load."""
    for fn in fns:
        forward_backward(fn, x)  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times):
            synchronize(x.device)
            start = CLOCK()
            forward_backward(fn, x)
            synchronize(x.device)
            fn_times.append(CLOCK() - start)
    return [min(fn_times) for fn_times in times]


def peak_bytes(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Peak memory allocated during one forward+backward, above what was allocated before it."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
        forward_backward(fn, x)
        torch.cuda.synchronize(x.device)
        return torch.cuda.max_memory_allocated(x.device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        forward_backward(fn, x)
    # self_cpu_memory_usage counts each allocation (+) and free (-) once, in the op that made it.
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start)
    running = peak = 0
    for event in events:
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--quick", action="store_true", help="W=256, T = 128, 256, 2048, one timed run")
    parser.add_argument("--clock", choices=["thread", "wall"], default="thread",
                        help="thread (CPU only): one torch thread timed by its CPU time, stable on a shared machine")
    args = parser.parse_args()
    global CLOCK
    if args.clock == "thread" and args.device == "cpu":
        torch.set_num_threads(1)
        CLOCK = time.thread_time
    if args.quick:
        args.window, args.lengths, args.repeats = 256, [128, 256, 2048], 1

    torch.manual_seed(0)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    module = EnhancedLocalAttention(args.d_model, args.heads, args.window, causal=args.causal).to(device, dtype)
    local = module.forward

    def full(x: torch.Tensor) -> torch.Tensor:
        return full_band_attention(module, x)

    print(f"device={device} dtype={args.dtype} W={args.window} D={args.d_model} heads={args.heads} "
          f"B={args.batch} causal={args.causal} threads={torch.get_num_threads()} (forward+backward)")
    header = (f"{'T':>6} | {'local ms':>9} | {'full ms':>9} | {'speedup':>7} | {'local MiB':>9} | "
              f"{'full MiB':>9} | {'mem ratio':>9} | {'max |diff|':>10}")
    print(header)
    print("-" * len(header))
    first_local_mib = None
    speedups = {}
    for length in args.lengths:
        x = torch.randn(args.batch, length, args.d_model, device=device, dtype=dtype, requires_grad=True)
        with torch.no_grad():
            diff = (local(x) - full(x)).abs().max().item()
        local_s, full_s = best_seconds([local, full], x, args.repeats)
        local_mib, full_mib = peak_bytes(local, x) / MIB, peak_bytes(full, x) / MIB
        first_local_mib = first_local_mib or (local_mib, length)
        speedups[length] = full_s / local_s
        print(f"{length:>6} | {local_s * MS_PER_S:>9.2f} | {full_s * MS_PER_S:>9.2f} | {full_s / local_s:>6.2f}x | "
              f"{local_mib:>9.2f} | {full_mib:>9.2f} | {full_mib / local_mib:>8.2f}x | {diff:>10.2e}")
    base_mib, base_length = first_local_mib
    print(f"local peak memory grows {local_mib / base_mib:.1f}x for {length / base_length:.0f}x longer sequences "
          f"(linear = {length / base_length:.0f}x; lengths <= 2W use the short path, whose memory is T^2 like "
          f"full); ratios are full / local (higher = local better)")
    short = [f"{speedups[t]:.2f}x at T = {t}" for t in args.lengths if t <= args.window]
    print(f"local vs full band-masked SDPA, forward + backward: {speedups[length]:.2f}x at T = {length}"
          + (f"; short path (T <= W): {', '.join(short)}" if short else ""))


if __name__ == "__main__":
    main()
