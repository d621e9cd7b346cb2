"""RMSNorm at a decode step's shape: torch's fused `F.rms_norm` against the formula written as plain ops.

    python benchmarks/bench_rmsnorm.py            # (1, 1, 128), 20,000 calls per round, 5 interleaved rounds
    python benchmarks/bench_rmsnorm.py --quick

y = x / sqrt(mean(x^2) + eps) * g, without autograd (as in generate()). For each form: the ops one call
dispatches (torch.profiler; `_to_copy` counts the scalar-to-tensor copies that the decode-step profile of
`bench_generate.py --profile` shows), and the median time per call over interleaved rounds. Last line: the
formula's time over the fused op's (> 1: the fused op is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

EPS = 1e-5


def fused(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), weight, EPS)


def formula(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True) * (1.0 / x.shape[-1]) + EPS) * weight


def formula_in_place(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True).div_(x.shape[-1]).add_(EPS)) * weight


FORMS = {"F.rms_norm": fused, "formula": formula, "formula, in-place scalars": formula_in_place}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[1, 1, 128])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 calls, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 2_000, 3
    torch.manual_seed(0)
    x, weight = torch.randn(*args.shape), torch.rand(args.shape[-1]) + 0.5
    times: dict[str, list[float]] = {name: [] for name in FORMS}
    ops: dict[str, tuple[int, int]] = {}
    with torch.no_grad():
        reference = fused(x, weight)
        for name, form in FORMS.items():
            torch.testing.assert_close(form(x, weight), reference)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                form(x, weight)
            events = prof.key_averages()
            ops[name] = (sum(e.count for e in events), sum(e.count for e in events if e.key == "aten::_to_copy"))
        for _ in range(args.rounds):
            for name, form in FORMS.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    form(x, weight)
                times[name].append((time.perf_counter() - start) / args.calls)
    print(f"shape {tuple(args.shape)}, fp32, no autograd, {torch.get_num_threads()} thread(s), "
          f"median of {args.rounds} interleaved rounds of {args.calls:,} calls\n")
    print("| form | us per call | ops per call | of which _to_copy |")
    print("|---|---|---|---|")
    for name in FORMS:
        print(f"| {name} | {statistics.median(times[name]) * 1e6:.1f} | {ops[name][0]} | {ops[name][1]} |")
    base = statistics.median(times["F.rms_norm"])
    print("\n" + "; ".join(f"{name} / F.rms_norm: {statistics.median(times[name]) / base:.2f}x time"
                          for name in FORMS if name != "F.rms_norm"))


if __name__ == "__main__":
    main()
