"""Training-step throughput of the default run's model: this checkout against a baseline commit, one run.

    python benchmarks/bench_step.py                      # small preset vs the commit before issue 10's work
    python benchmarks/bench_step.py --baseline HEAD~3 --rounds 6
    python benchmarks/bench_step.py --quick

A step is forward + backward + gradient clipping + AdamW, batch 32, on synthetic batches with the
shapes of the default run's length-grouped batches (source, target) measured on data/train.jsonl with
the default tokenizer: 10/30/50/70/90th percentiles of padded shape (15, 8), (14, 25), (19, 29),
(23, 53), (19, 71), about 10% padding inside each batch.

The baseline's `liquid/` is extracted with `git archive` into a temporary folder. Two worker processes
(baseline, current) each build the same model from the same seed; the parent asks them in turn
(A, B, A, B, ...) to time one pass over the shapes, so load changes on a shared machine hit both alike;
only one worker computes at any time. By default each worker runs one torch thread timed by its CPU time
(``--clock thread``), so time spent waiting for a shared core is not counted. Prints a markdown table of
the median pass time and real tokens/s, and a last line with the speed-up (current / baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "0c85342"  # main before issue 10's speed work
SHAPES = [(15, 8), (14, 25), (19, 29), (23, 53), (19, 71)]  # (source, target) of default-run batches
BATCH = 32
VOCAB_SIZE = 2000
FIRST_REAL_TOKEN = 4
IGNORE_INDEX = -100
# Time by the worker thread's CPU time (one torch thread): waiting for a shared core is not counted.
CPU_CLOCK = os.environ.get("BENCH_CLOCK", "thread") == "thread"


def worker(preset: str) -> None:
    """Serve timing requests on stdin: each line 'pass' -> one JSON line {seconds, tokens}."""
    import torch

    from liquid.config import LiquidConfig
    from liquid.modeling import LiquidFoundationModelOptimized
    from liquid.training.trainer import build_optimizer

    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset(preset, vocab_size=VOCAB_SIZE))
    optimizer = build_optimizer(model, 1e-3, 0.01)
    model.train()
    batches = [make_batch(BATCH, source, target, seed) for seed, (source, target) in enumerate(SHAPES)]
    tokens = sum(int(b["attention_mask"].sum() + (b["labels"] != IGNORE_INDEX).sum()) for b in batches)

    def one_pass() -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.thread_time()
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return time.perf_counter() - start, time.thread_time() - start_cpu

    one_pass()  # warm-up
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "pass":
            break
        wall, cpu = one_pass()
        print(json.dumps({"seconds": cpu if CPU_CLOCK else wall, "tokens": tokens}), flush=True)


def make_batch(batch: int, source: int, target: int, seed: int, padded_share: float = 0.1):
    """Random ids; real lengths between (1 - 2 * padded_share) and 1 of the padded length."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, source), generator=gen)
    labels = torch.randint(FIRST_REAL_TOKEN, VOCAB_SIZE, (batch, target), generator=gen)
    src_len = (source * (1 - 2 * padded_share * torch.rand(batch, generator=gen))).long().clamp(min=1)
    tgt_len = (target * (1 - 2 * padded_share * torch.rand(batch, generator=gen))).long().clamp(min=1)
    src_len[0], tgt_len[0] = source, target  # the longest row sets the padded shape
    attention_mask = (torch.arange(source)[None] < src_len[:, None]).long()
    labels = labels.masked_fill(torch.arange(target)[None] >= tgt_len[:, None], IGNORE_INDEX)
    return {"input_ids": input_ids * attention_mask, "attention_mask": attention_mask, "labels": labels}


def start_worker(code_root: Path, preset: str, clock: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code_root), "BENCH_CLOCK": clock}
    if clock == "thread":
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", "--preset", preset],
                            cwd=code_root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = proc.stdout.readline()
    if not ready:
        raise SystemExit(f"worker for {code_root} failed to start")
    return proc


def ask(proc: subprocess.Popen) -> dict:
    proc.stdin.write("pass\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def extract(revision: str, into: Path) -> None:
    archive = into / "base.tar"
    try:
        with open(archive, "wb") as handle:
            subprocess.run(["git", "archive", revision, "liquid"], cwd=ROOT, stdout=handle, check=True)
    except subprocess.CalledProcessError:
        raise SystemExit(f"cannot extract liquid/ at revision {revision!r} (git archive failed)") from None
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare against")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per side (interleaved)")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--clock", choices=["thread", "wall"], default="thread",
                        help="thread: one torch thread timed by its CPU time (stable on a shared machine)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.preset)
        return
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        extract(args.baseline, Path(tmp))
        workers = {}
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        tokens = {}
        try:
            for name, root in (("baseline", Path(tmp)), ("current", ROOT)):
                workers[name] = start_worker(root, args.preset, args.clock)
            for _ in range(rounds):
                for name, proc in workers.items():
                    result = ask(proc)
                    times[name].append(result["seconds"])
                    tokens[name] = result["tokens"]
        finally:
            for proc in workers.values():
                proc.stdin.close()
                proc.wait()
    print(f"{args.preset} preset, {len(SHAPES)} steps of batch {BATCH} per pass, shapes {SHAPES}, "
          f"{rounds} interleaved passes each; CPU, clock {args.clock}\n")
    print("| code | median pass (s) | best pass (s) | real tokens/s (median) |")
    print("|---|---|---|---|")
    for name in times:
        median = statistics.median(times[name])
        print(f"| {name} ({args.baseline if name == 'baseline' else 'working tree'}) | {median:.3f} | "
              f"{min(times[name]):.3f} | {tokens[name] / median:,.0f} |")
    speedup = statistics.median(times["baseline"]) / statistics.median(times["current"])
    best = min(times["baseline"]) / min(times["current"])
    print(f"\ntraining step speed-up current / baseline: {speedup:.2f}x (median), {best:.2f}x (best)")


if __name__ == "__main__":
    main()
