"""Recipe sweep: train several variants of the default run side by side and compare them by step.

    python scripts/recipe_sweep.py --device cuda --steps 3000 --jobs 16             # every variant
    python scripts/recipe_sweep.py --variants base lr4e-3 --steps 20 --eval_every 10 --eval_samples 10

Each variant is one `main.py` process (same data, seed and step count; the cosine schedule ends at
--steps) with a few flags changed, so the table answers "what does this change buy per optimizer step".
Per-step results carry over between machines; wall-clock on the 2-core CPU does not, so a variant that
changes the cost of a step (batch, depth, window) must also be timed on the CPU before it becomes the
default. Writes `<out>/<variant>/` (the runs), `<out>/summary.md` and `<out>/summary.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> main.py flags
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "lr1e-3": ["--learning_rate", "1e-3"],
    "lr4e-3": ["--learning_rate", "4e-3"],
    "lr8e-3": ["--learning_rate", "8e-3"],
    "ce": ["--loss", "ce"],
    "plain_emb": ["--set", "embedding_type=plain"],
    "no_conv": ["--set", "conv_layers=0"],
    "dense": ["--set", "ffn_type=dense"],
    "kv4": ["--set", "num_kv_heads=4"],
    "deep": ["--set", "encoder_layers=3", "--set", "decoder_layers=4"],
    "lr4e-3_math2x": ["--learning_rate", "4e-3", "--oversample", "math=2"],
    "math2x": ["--oversample", "math=2"],
    "b16": ["--batch_size", "16"],
    "b64": ["--batch_size", "64"],
    "long3x": [],  # 3x the steps: where the default's curve goes
    "long3x_lr4e-3": ["--learning_rate", "4e-3"],
}
LONG = {"long3x": 3, "long3x_lr4e-3": 3}


def variant(name: str) -> list[str]:
    """A named variant's flags, or an ad-hoc one written `name=--flag value --flag value`."""
    if "=" in name and name.split("=", 1)[0] not in VARIANTS:
        return name.split("=", 1)[1].split()
    if name not in VARIANTS:
        raise SystemExit(f"error: unknown variant {name!r}; use one of {', '.join(VARIANTS)} or 'name=--flag value'")
    return VARIANTS[name]


def launch(spec: str, args, out: Path) -> subprocess.Popen:
    flags = variant(spec)
    name = spec.split("=", 1)[0]
    steps = args.steps * LONG.get(name, 1)
    cmd = [sys.executable, str(ROOT / "main.py"), "--max_steps", str(steps), "--eval_every", str(args.eval_every),
           "--save_every", "0", "--eval_samples", str(args.eval_samples), "--device", args.device,
           "--precision", args.precision, "--train_file", args.train_file,
           "--validation_file", str(ROOT / "data" / "validation.jsonl"), "--output_dir", str(out / name),
           "--overwrite_output_dir", "--log_every", "50", *flags]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = open(out / f"{name}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def read(out: Path, name: str) -> dict:
    path = out / name / "log.jsonl"
    evals, tps = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "eval":
                evals.append({k: rec.get(k) for k in ("step", "val_ce_loss", "val_accuracy", "val_accuracy_math",
                                                        "val_accuracy_qa", "val_accuracy_sentiment",
                                                        "elapsed_minutes")})
            elif rec.get("type") == "train" and rec.get("tokens_per_s"):
                tps.append(rec["tokens_per_s"])
    return {"evals": evals, "tokens_per_s": sorted(tps)[len(tps) // 2] if tps else None}


def summarise(out: Path, names: list[str]) -> str:
    results = {name: read(out, name) for name in names}
    (out / "summary.json").write_text(json.dumps(results, indent=1))
    lines = ["| variant | step | val CE | math | qa | sentiment | overall |", "|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for e in res["evals"]:
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| {name} | {e['step']} | {fmt(e['val_ce_loss'])} | {fmt(e['val_accuracy_math'])} | "
                         f"{fmt(e['val_accuracy_qa'])} | {fmt(e['val_accuracy_sentiment'])} | "
                         f"{fmt(e['val_accuracy'])} |")
        if not res["evals"]:
            lines.append(f"| {name} | (no evaluation logged) | | | | | |")
    table = "\n".join(lines)
    (out / "summary.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"named ({', '.join(VARIANTS)}) or ad hoc: 'name=--flag value ...'")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--eval_every", type=int, default=1000)
    parser.add_argument("--eval_samples", type=int, default=1002)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--train_file", default=str(ROOT / "data" / "train.jsonl"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "sweep"))
    parser.add_argument("--time_limit", type=float, default=0, help="seconds; stop every run still going then")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pending, running, start = list(args.variants), {}, time.time()
    # the longest runs first, so they are not the ones left when the time limit comes
    pending.sort(key=lambda n: -LONG.get(n.split("=", 1)[0], 1))
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            running[name] = launch(name, args, out)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                print(f"{name}: exit {proc.returncode} after {time.time() - start:.0f} s", flush=True)
                del running[name]
        if args.time_limit and time.time() - start > args.time_limit:
            for name, proc in running.items():
                proc.terminate()
                print(f"{name}: stopped at the time limit", flush=True)
            for proc in running.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            running, pending = {}, []
        time.sleep(2)
    print(summarise(out, [spec.split("=", 1)[0] for spec in args.variants]))


if __name__ == "__main__":
    main()
