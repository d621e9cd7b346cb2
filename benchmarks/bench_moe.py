"""Forward+backward time of MoELayer's grouped dispatch vs computing every expert on every token, and vs
a dense SwiGLU with the same active parameters (hidden width top_k * F).

    python benchmarks/bench_moe.py                       # E in {4, 8, 16}, top-2, N=4096, D=256, F=512, CPU fp32
    python benchmarks/bench_moe.py --preset small        # the small preset's layer at the default run's token
                                                         # counts (N = 600, 1150, 2300: batch 32 x 19 / 36 / 71)
    python benchmarks/bench_moe.py --device cuda --dtype bfloat16   # exercises the torch._grouped_mm path

The dense baseline uses the same router and the same sparse combine weights, so both compute the
same function (checked once per configuration); the ratio is dense time / grouped time. On CPU the default
`--clock thread` runs one torch thread timed by its CPU time (stable on a shared, busy machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo
from liquid.moe import MoELayer  # noqa: E402

DEFAULT_RUN_TOKENS = [600, 1150, 2300]  # batch 32 x padded length 19 (source), 36 (mean target), 71 (long target)


def dense_forward(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, combined with the layer's own sparse combine weights (its top-k or dynamic-K
    selection and its raw or renormalised gate weights, from `MoELayer._route`; tests/test_moe.py checks that
    routing against an independent reference)."""
    probs = torch.softmax(layer.router(x).float(), dim=-1)  # (N, E)
    routing = layer._route(probs, torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
    weights = torch.zeros_like(probs).scatter(1, routing.expert_ids, routing.weights).to(x.dtype)  # (N, E)
    ex = layer.experts
    gate = torch.einsum("nd,edf->enf", x, ex.w_gate.to(x.dtype))  # (E, N, F)
    up = torch.einsum("nd,edf->enf", x, ex.w_up.to(x.dtype))  # (E, N, F)
    out = torch.einsum("enf,efd->end", F.silu(gate) * up, ex.w_down.to(x.dtype))  # (E, N, D)
    return torch.einsum("ne,end->nd", weights, out)


def sparse_forward(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    return layer(x).hidden_states


class DenseSwiGLU(torch.nn.Module):
    """(silu(x W_g) * (x W_u)) W_d with hidden width top_k * F: the active parameters of one routed token."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate = torch.nn.Linear(d_model, d_ff, bias=False)
        self.up = torch.nn.Linear(d_model, d_ff, bias=False)
        self.down = torch.nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def time_fwd_bwd(fn, layer: torch.nn.Module, x: torch.Tensor, clock) -> float:
    """Seconds of one forward + backward."""
    layer.zero_grad(set_to_none=True)
    if x.is_cuda:
        torch.cuda.synchronize()
    start = clock()
    fn(layer, x).float().square().mean().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return clock() - start


def compare(layer: MoELayer, swiglu: DenseSwiGLU, x: torch.Tensor, warmup: int, repeats: int,
            clock) -> tuple[float, float, float]:
    """Median (every-expert, grouped, dense SwiGLU) seconds, alternating so machine load hits all alike."""
    dense, grouped, plain = [], [], []
    for i in range(warmup + repeats):
        dense_time = time_fwd_bwd(dense_forward, layer, x, clock)
        grouped_time = time_fwd_bwd(sparse_forward, layer, x, clock)
        plain_time = time_fwd_bwd(lambda _layer, inputs: swiglu(inputs), swiglu, x, clock)
        if i >= warmup:
            dense.append(dense_time)
            grouped.append(grouped_time)
            plain.append(plain_time)
    return statistics.median(dense), statistics.median(grouped), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experts", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--d-ff", type=int, default=512)
    parser.add_argument("--preset", default=None, help="take E, top_k, D, F from this preset; N of the default run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--clock",
        choices=["thread", "wall"],
        default="thread",
        help="thread (CPU only): one torch thread, timed by its CPU time, stable on a shared busy machine",
    )
    args = parser.parse_args()
    routing = {}  # MoELayer's defaults, or the preset's routing
    if args.preset is not None:
        from liquid.config import LiquidConfig

        config = LiquidConfig.from_preset(args.preset)
        routing = {"dynamic_k": config.dynamic_k, "threshold": config.moe_threshold,
                   "gate_weights": config.moe_gate_weights}
        args.experts, args.top_k = [config.num_experts], config.moe_top_k
        args.d_model, args.d_ff = config.d_model, config.d_ff
        if args.tokens == [4096]:
            args.tokens = DEFAULT_RUN_TOKENS
    clock = time.perf_counter
    if args.clock == "thread" and args.device == "cpu":
        torch.set_num_threads(1)
        clock = time.thread_time
    dtype = getattr(torch, args.dtype)
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2

    print(f"D={args.d_model} F={args.d_ff} top_k={args.top_k} {args.device} {args.dtype}; dense SwiGLU hidden "
          f"width {args.top_k * args.d_ff} (same active parameters)")
    print(f"forward+backward, median of {args.repeats}, all three alternating, {clock.__name__}\n")
    print("| E | N | grouped ms | every-expert ms | dense SwiGLU ms | every-expert / grouped | SwiGLU / grouped |")
    print("|---|---|---|---|---|---|---|")
    last = None
    for num_experts in args.experts:
        for tokens in args.tokens:
            torch.manual_seed(0)
            layer = MoELayer(args.d_model, args.d_ff, num_experts, top_k=args.top_k, **routing).to(args.device, dtype)
            swiglu = DenseSwiGLU(args.d_model, args.top_k * args.d_ff).to(args.device, dtype)
            x = torch.randn(tokens, args.d_model, device=args.device, dtype=dtype)
            with torch.no_grad():
                diff = (dense_forward(layer, x) - sparse_forward(layer, x)).abs().max().item()
            if diff > tolerance:
                raise RuntimeError(f"grouped and dense outputs differ by {diff:.3g} for E={num_experts}")
            dense, grouped, plain = compare(layer, swiglu, x, args.warmup, args.repeats, clock)
            last = (dense / grouped, plain / grouped, num_experts, tokens)
            print(f"| {num_experts} | {tokens} | {grouped * 1e3:.1f} | {dense * 1e3:.1f} | {plain * 1e3:.1f} | "
                  f"{dense / grouped:.2f}x | {plain / grouped:.2f}x |")
    every, plain, num_experts, tokens = last
    print(f"\nMoE (E={num_experts}, N={tokens}) speed: {every:.2f}x compute-every-expert, "
          f"{plain:.2f}x a dense SwiGLU of the same active parameters")


if __name__ == "__main__":
    main()
