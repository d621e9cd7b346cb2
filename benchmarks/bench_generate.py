"""Greedy generation speed: liquid with its rolling cache, without a cache, and a same-size T5's generate().

    python benchmarks/bench_generate.py            # small preset, batch 1 and 16, 128 new tokens, source 32
    python benchmarks/bench_generate.py --quick    # 32 new tokens, one timed run each (< 1 min)
    python benchmarks/bench_generate.py --profile --batches 1   # + torch.profiler table of one cached generate()
    python benchmarks/bench_generate.py --with_statistics       # + the A/B of skipping routing statistics per step

Every run forces exactly --new_tokens new tokens (min_new_tokens = max_new_tokens, greedy), so the three
generate the same amount of work whatever their (random) weights predict. T5 is built from a T5Config
with the same sizes as the preset (see bench_t5.py), never from the hub. Runs are interleaved
(liquid cached, liquid uncached, T5, liquid cached, ...) and the median per configuration is reported
(wall clock: generation's Python overhead is part of what is compared).

Also prints the self-attention cache liquid keeps after the run (positions per layer and bytes, bounded
by the window: at most W - 1 positions whatever the number of generated tokens) next to T5's, which
keeps every generated position. Last line: cached / uncached and liquid / T5 at each batch size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_t5 import FIRST_REAL_TOKEN, VOCAB_SIZE, t5_like  # noqa: E402

from liquid.config import LiquidConfig  # noqa: E402
from liquid.modeling import LiquidFoundationModelOptimized  # noqa: E402

KIB = 1024


class WithStatistics(torch.nn.Module):
    """liquid with the decoder's routing statistics collected at every generate() step, as before they were
    skipped there (`--with_statistics`: the A/B of that change, interleaved in the same run)."""

    def __init__(self, model: LiquidFoundationModelOptimized) -> None:
        super().__init__()
        self.model = model

    def generate(self, **kwargs):
        decoder = self.model.decoder
        plain = decoder.forward
        decoder.forward = lambda *args, **kw: plain(*args, **{**kw, "statistics": True})
        try:
            return self.model.generate(**kwargs)
        finally:
            del decoder.forward  # back to the class's method


def generate(model, input_ids: torch.Tensor, new_tokens: int, use_cache: bool):
    extra = {}
    if use_cache and not isinstance(model, (LiquidFoundationModelOptimized, WithStatistics)):
        # T5 with fewer encoder than decoder layers: the cache generate() sizes from the config has
        # num_layers (encoder) slots, too few for the decoder; an empty DynamicCache grows per layer.
        from transformers import DynamicCache, EncoderDecoderCache

        extra["cache"] = EncoderDecoderCache(DynamicCache(), DynamicCache())
    return model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                          max_new_tokens=new_tokens, min_new_tokens=new_tokens, use_cache=use_cache,
                          return_dict_in_generate=True, **extra)


def timed(model, input_ids: torch.Tensor, new_tokens: int, use_cache: bool) -> tuple[float, object]:
    sync = torch.cuda.synchronize if input_ids.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = generate(model, input_ids, new_tokens, use_cache)
    sync()
    elapsed = time.perf_counter() - start
    produced = out.sequences.shape[1] - 1  # minus the decoder start token
    if produced != new_tokens:
        raise SystemExit(f"expected {new_tokens} new tokens, got {produced}")
    return elapsed, out


def liquid_cache_size(out) -> tuple[int, int]:
    """(positions per layer, bytes) of liquid's self-attention cache after generation."""
    layers = out.cache.self_attention
    size = sum(t.numel() * t.element_size() for c in layers for t in (c.key, c.value) if t is not None)
    return max(c.key.shape[-2] for c in layers), size


def t5_cache_size(out) -> tuple[int, int]:
    """(positions per layer, bytes) of T5's decoder self-attention cache after generation."""
    cache = out.past_key_values.self_attention_cache
    tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    return tensors[0].shape[-2], sum(t.numel() * t.element_size() for t in tensors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--source_length", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="32 new tokens, one timed run each")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", action="store_true",
                        help="after the table, profile one cached liquid generate() at the first batch size "
                             "(ops by self CPU time, calls per new token)")
    parser.add_argument("--with_statistics", action="store_true",
                        help="also time liquid cached with the decoder's routing statistics collected at every step "
                             "(how generate() ran before they were skipped), interleaved with the rest")
    args = parser.parse_args(argv)
    if args.quick:
        args.new_tokens, args.repeats = 32, 1
    if min(args.batches) < 1 or args.new_tokens < 1 or args.source_length < 1 or args.repeats < 1:
        raise SystemExit("--batches, --new_tokens, --source_length and --repeats must be >= 1")

    torch.manual_seed(0)
    config = LiquidConfig.from_preset(args.preset, vocab_size=VOCAB_SIZE)
    device = torch.device(args.device)
    liquid = LiquidFoundationModelOptimized(config).to(device).eval()
    t5 = t5_like(config).to(device).eval()
    runs = {"liquid cached": (liquid, True), "liquid uncached": (liquid, False), "T5 cached": (t5, True)}
    if args.with_statistics:
        runs["liquid cached, statistics"] = (WithStatistics(liquid), True)
    rows, caches = [], {}
    for batch in args.batches:
        input_ids = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, args.source_length),
                                  generator=torch.Generator().manual_seed(batch)).to(device)
        for model, use_cache in runs.values():
            timed(model, input_ids, 4, use_cache)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, (model, use_cache) in runs.items():
                elapsed, out = timed(model, input_ids, args.new_tokens, use_cache)
                times[name].append(elapsed)
                if name == "liquid cached":
                    caches["liquid"] = liquid_cache_size(out)
                elif name == "T5 cached":
                    caches["T5"] = t5_cache_size(out)
        rows.append((batch, {name: batch * args.new_tokens / statistics.median(v) for name, v in times.items()}))

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} thread(s))"
    print(f"{where}, fp32, greedy, source {args.source_length} tokens, "
          f"{args.new_tokens} new tokens, median of {args.repeats} interleaved runs; "
          f"decoder window W = {config.decoder_window_size}\n")
    print("| batch | liquid cached new tok/s | liquid uncached | T5 generate() | cached / uncached | liquid / T5 |")
    print("|---|---|---|---|---|---|")
    summary = []
    for batch, rate in rows:
        speedup, vs_t5 = rate["liquid cached"] / rate["liquid uncached"], rate["liquid cached"] / rate["T5 cached"]
        summary.append(f"batch {batch}: {speedup:.2f}x uncached, {vs_t5:.2f}x T5")
        print(f"| {batch} | {rate['liquid cached']:,.0f} | {rate['liquid uncached']:,.0f} | {rate['T5 cached']:,.0f} "
              f"| {speedup:.2f} | {vs_t5:.2f} |")
    if args.with_statistics:
        for batch, rate in rows:
            gain = rate["liquid cached"] / rate["liquid cached, statistics"]
            summary.append(f"batch {batch}: skipping the statistics {gain:.3f}x")
    for name, (positions, size) in caches.items():
        print(f"\n{name} self-attention cache after {args.new_tokens} tokens (batch {args.batches[-1]}): "
              f"{positions} positions per layer, {size / KIB:,.0f} KiB", end="")
    print(f"\n\nliquid cached generate(): {'; '.join(summary)}")
    if args.profile:
        profile_cached(liquid, args.batches[0], args.source_length, args.new_tokens, device)


def profile_cached(model, batch: int, source_length: int, new_tokens: int, device: torch.device) -> None:
    """Ops of one cached generate() by self CPU time, with their calls per new token: where a decode step goes."""
    from torch.profiler import ProfilerActivity, profile

    input_ids = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, source_length)).to(device)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        generate(model, input_ids, new_tokens, use_cache=True)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\nprofile of one cached generate(), batch {batch}, {new_tokens} new tokens "
          f"(self CPU {total / 1e3:.1f} ms, {total / 1e3 / new_tokens:.2f} ms per new token):\n")
    print("| op | self CPU ms | share | calls per new token |")
    print("|---|---|---|---|")
    for event in events[:15]:
        print(f"| {event.key} | {event.self_cpu_time_total / 1e3:.1f} | {event.self_cpu_time_total / total:.1%} "
              f"| {event.count / new_tokens:.1f} |")


if __name__ == "__main__":
    main()
