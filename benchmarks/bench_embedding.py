"""LiquidEmbedding forward + backward at the default run's shapes: this checkout vs a baseline commit, one run.

    python benchmarks/bench_embedding.py                       # vs the commit before the lag-product rewrite
    python benchmarks/bench_embedding.py --baseline HEAD~1 --repeats 30
    python benchmarks/bench_embedding.py --quick

Both versions of ``liquid/embedding.py`` are timed in this process, interleaved per repeat (the baseline's
``liquid/`` is extracted with ``git archive`` into a temporary folder and imported under another name), with
`PlainEmbedding` (the token table alone) as the floor. Shapes: batch 32, small preset (d_model 128,
fft_window 8), the decoder's causal embedding at T = 56 and the encoder's bidirectional one at T = 36.
Prints a markdown table of median wall times and a last line with the speed-ups (current / baseline).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from liquid.embedding import LiquidEmbedding, PlainEmbedding  # noqa: E402

DEFAULT_BASELINE = "3b46d87"  # main before the lag-product LiquidEmbedding
VOCAB_SIZE, D_MODEL, MAX_LENGTH, FFT_WINDOW, BATCH = 2000, 128, 512, 8, 32
CASES = [("decoder, causal", True, 56), ("encoder, bidirectional", False, 36)]


def baseline_class(revision: str, folder: Path):
    """LiquidEmbedding of `revision`, loaded from its liquid/embedding.py (which imports the current liquid.config)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "liquid/embedding.py"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    spec = importlib.util.spec_from_file_location("baseline_embedding", folder / "liquid" / "embedding.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.LiquidEmbedding


def time_once(module, ids: torch.Tensor, mask: torch.Tensor) -> float:
    start = time.perf_counter()
    out = module(ids, mask)
    (out.embeddings.square().mean() + out.reconstruction_loss).backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="8 repeats")
    args = parser.parse_args(argv)
    repeats = 8 if args.quick else args.repeats
    torch.manual_seed(0)
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as folder:
        Baseline = baseline_class(args.baseline, Path(folder))
        for label, causal, length in CASES:
            ids = torch.randint(4, VOCAB_SIZE, (BATCH, length))
            mask = torch.ones(BATCH, length, dtype=torch.long)
            modules = {
                "baseline": Baseline(VOCAB_SIZE, D_MODEL, MAX_LENGTH, causal=causal, fft_window=FFT_WINDOW),
                "current": LiquidEmbedding(VOCAB_SIZE, D_MODEL, MAX_LENGTH, causal=causal, fft_window=FFT_WINDOW),
                "plain": PlainEmbedding(VOCAB_SIZE, D_MODEL, MAX_LENGTH),
            }
            modules["current"].load_state_dict(modules["baseline"].state_dict())
            times = {name: [] for name in modules}
            for repeat in range(repeats + 3):  # 3 warm-up rounds
                for name, module in modules.items():
                    elapsed = time_once(module, ids, mask)
                    if repeat >= 3:
                        times[name].append(elapsed)
            median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
            ratios.append(median["baseline"] / median["current"])
            rows.append(f"| {label} | {length} | {median['baseline']:.1f} | {median['current']:.1f} | "
                        f"{median['plain']:.1f} | {ratios[-1]:.2f}x |")
    print(f"LiquidEmbedding forward + backward, batch {BATCH}, d_model {D_MODEL}, fft_window {FFT_WINDOW}, "
          f"median of {repeats} (wall ms), {torch.get_num_threads()} threads\n")
    print(f"| embedding | T | baseline {args.baseline} | current | plain table | speed-up |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nspeed-up current / baseline: {' / '.join(f'{r:.2f}x' for r in ratios)} (causal / bidirectional)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
