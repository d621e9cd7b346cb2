"""Ablation at equal wall-clock: each variant trains through the same loop on the same data for the same budget,
then is scored on the test split with the repo's evaluation code.

    python -m liquid.ablate --budget_minutes 10 --preset small --seeds 0,1 --output_dir ablation  # full, t5: 2 seeds
    python -m liquid.ablate --budget_minutes 10 --variants full,t5 --seeds 0,1,2 -- --eval_every 100 --batch_size 16

Variants (each a `LiquidConfig` switch, so every component stays available by config):

| name              | what changes                                                                  |
|-------------------|-------------------------------------------------------------------------------|
| full              | nothing: the preset as configured                                             |
| plain_embedding   | `embedding_type=plain`: the token table instead of LiquidEmbedding            |
| dense_ffn         | `ffn_type=dense`: one SwiGLU of width moe_top_k * d_ff (the MoE's active size)|
|                   | in every layer: no MoE left                                                   |
| moe_ffn           | `ffn_type=moe`: an MoE layer in every encoder and decoder layer (the seed's)  |
| full_attention    | windows covering the longest source / target (2 L and L): full attention      |
| no_dilated_conv   | `conv_layers=0`                                                               |
| ce_loss           | `loss_type=ce` instead of focal                                               |
| t5                | `transformers.T5ForConditionalGeneration` from a T5Config of about the full   |
|                   | model's parameter count (same d_model, heads and layers; d_ff solved for)     |

Every run is `liquid.training.train(args)` with `--max_time_minutes <budget>` (and an unreachable step cap, so
the clock ends it) and otherwise `main.py`'s defaults (validation every eighth of the budget included: the `full`
variant at 14 minutes is the default run); flags this command does not know are passed to the training parser
(`main.py --help`). Each trained model is scored on the test split and, as its own row, on the long-input
subset `--long_test_file` (instructions of 240-470 tokens, never seen in training).
`--tabulate DIR [DIR ...]` writes one table and plot from the `results.json` of earlier ablations.
Outputs in `--output_dir`: one run directory per variant and seed (`<variant>/seed<k>/`, with its log.jsonl),
`results.json` (every run's test report), `ablation.md` (mean ± spread over seeds: per-task accuracy /
coherence / coverage, validation loss, tokens/s, total and active parameters) and `accuracy_vs_time.png`
(validation accuracy against wall-clock seconds since the run started, from each log.jsonl).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("liquid.ablate")

VARIANTS = ("full", "plain_embedding", "dense_ffn", "moe_ffn", "full_attention", "no_dilated_conv", "ce_loss", "t5")
CONFIG_OVERRIDES: dict[str, list[str]] = {
    "full": [],
    "plain_embedding": ["embedding_type=plain"],
    "dense_ffn": ["ffn_type=dense"],
    "moe_ffn": ["ffn_type=moe"],
    "no_dilated_conv": ["conv_layers=0"],
    "ce_loss": ["loss_type=ce"],
}
UNREACHABLE_STEPS = 10**9  # the time budget, not a step count, ends every run
DEFAULT_LONG_TEST_FILE = Path(__file__).resolve().parents[1] / "data" / "test_long.jsonl"
LONG_TASK = "long"  # the long-input subset's column group in the table
TEST_SAMPLE_SEED = 0
T5_D_FF_MULTIPLE = 8
RESULTS_FILE = "results.json"
TABLE_FILE = "ablation.md"
PLOT_FILE = "accuracy_vs_time.png"
TASK_METRICS = ("accuracy", "coherence", "coverage")


class AblationError(ValueError):
    """One-line, user-facing problem with the ablation's arguments."""


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)  # "--seed" must not pass for "--seeds"
    parser.add_argument("--budget_minutes", type=float, help="training wall-clock per run (required to train)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds, each variant runs once per seed")
    parser.add_argument("--seed_variants", default="full,t5",
                        help="variants that run once per seed; the others run with the first seed only "
                             "('all': every variant runs every seed)")
    parser.add_argument("--output_dir", default="ablation")
    parser.add_argument("--max_test_rows", type=int, default=0,
                        help="score a seeded random sample of this many test rows (0: the whole test split)")
    parser.add_argument("--long_test_file", default=str(DEFAULT_LONG_TEST_FILE),
                        help="long-input rows scored as their own row ('none' to skip)")
    parser.add_argument("--tabulate", nargs="+", metavar="DIR",
                        help="no training: one table and plot from these earlier ablation directories")
    args, passthrough = parser.parse_known_args(argv)
    passthrough = [item for item in passthrough if item != "--"]
    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown or not args.variants:
        raise AblationError(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    try:
        args.seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    except ValueError as error:
        raise AblationError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from error
    if not args.seeds:
        raise AblationError("--seeds: give at least one seed")
    args.seed_variants = (list(VARIANTS) if args.seed_variants.strip() == "all"
                          else [name.strip() for name in args.seed_variants.split(",") if name.strip()])
    if any(name not in VARIANTS for name in args.seed_variants):
        raise AblationError(f"--seed_variants: choose from {', '.join(VARIANTS)} (or 'all')")
    if args.tabulate is None and args.budget_minutes is None:
        raise AblationError("--budget_minutes is required (or --tabulate DIR ... to tabulate earlier runs)")
    if (args.budget_minutes is not None and args.budget_minutes <= 0) or args.max_test_rows < 0:
        raise AblationError("--budget_minutes must be > 0 and --max_test_rows >= 0")
    if args.long_test_file.lower() == "none":
        args.long_test_file = None
    elif args.tabulate is None and not Path(args.long_test_file).is_file():
        raise AblationError(f"--long_test_file: {args.long_test_file} does not exist (give 'none' to skip it)")
    for flag in ("--max_time_minutes", "--seed", "--output_dir", "--preset", "--resume"):
        if any(item == flag or item.startswith(flag + "=") for item in passthrough):
            raise AblationError(f"{flag} is set by the ablation itself; do not pass it through")
    return args, passthrough


def training_argv(args: argparse.Namespace, passthrough: list[str], variant: str, seed: int, run_dir: Path,
                  full_window: int) -> list[str]:
    """The `main.py` command line of one run."""
    argv = ["--preset", args.preset, "--seed", str(seed), "--output_dir", str(run_dir),
            "--max_time_minutes", str(args.budget_minutes)]
    if not any(item.split("=")[0] in ("--max_steps", "--num_epochs") for item in passthrough):
        argv += ["--max_steps", str(UNREACHABLE_STEPS)]
    overrides = list(CONFIG_OVERRIDES.get(variant, []))
    if variant == "full_attention":
        # bidirectional |i - j| <= W // 2 and causal i - W < j <= i cover every pair of an L-token sequence
        overrides += [f"window_size={2 * full_window}", f"decoder_window_size={full_window}"]
    for item in overrides:
        argv += ["--set", item]
    return argv + passthrough


def _longest_sequence(passthrough: list[str]) -> int:
    """max(--max_source_length, --max_target_length) as the training parser will read them."""
    from liquid.training.args import build_parser

    parsed, _ = build_parser().parse_known_args(passthrough)
    return max(parsed.max_source_length, parsed.max_target_length)


# --- the vanilla T5 --------------------------------------------------------------------------------------
def t5_config_like(liquid_config, tokenizer, d_ff: int):
    from transformers import T5Config

    return T5Config(
        vocab_size=len(tokenizer), d_model=liquid_config.d_model, d_kv=liquid_config.d_model // liquid_config.num_heads,
        d_ff=d_ff, num_layers=liquid_config.encoder_layers, num_decoder_layers=liquid_config.decoder_layers,
        num_heads=liquid_config.num_heads, feed_forward_proj="gated-gelu", dropout_rate=liquid_config.dropout,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id, decoder_start_token_id=tokenizer.bos_token_id,
    )


def _t5_class():
    from transformers import DynamicCache, EncoderDecoderCache, T5ForConditionalGeneration

    class T5WithGrowingCache(T5ForConditionalGeneration):
        """transformers 5.24 sizes T5's default generation cache by the *encoder's* layer count, so `generate()`
        fails (IndexError) when the decoder has more layers (small: 2 encoder, 3 decoder); an explicit cache that
        grows per layer avoids it and gives the same tokens (tests/test_ablate.py)."""

        def generate(self, *args, **kwargs):
            if kwargs.get("use_cache", True) and kwargs.get("past_key_values") is None:
                kwargs["past_key_values"] = EncoderDecoderCache(DynamicCache(), DynamicCache())
            return super().generate(*args, **kwargs)

    return T5WithGrowingCache


def t5_factory(train_args: argparse.Namespace, tokenizer):
    """A T5ForConditionalGeneration with the liquid model's d_model / heads / layers and the d_ff that brings its
    parameter count closest to the liquid model's (T5's count is linear in d_ff)."""
    from transformers import T5ForConditionalGeneration

    from liquid.training.trainer import build_model

    with torch.device("meta"):  # sizes only: no memory, no init
        liquid_model = build_model(train_args, tokenizer, None)
    target, liquid_config = sum(p.numel() for p in liquid_model.parameters()), liquid_model.config

    def count(d_ff: int) -> int:
        with torch.device("meta"):
            model = T5ForConditionalGeneration(t5_config_like(liquid_config, tokenizer, d_ff))
        return sum(p.numel() for p in model.parameters())

    low, high = count(T5_D_FF_MULTIPLE), count(2 * T5_D_FF_MULTIPLE)
    units = (target - low) / ((high - low) / T5_D_FF_MULTIPLE)  # extra d_ff to reach the target
    d_ff = max(T5_D_FF_MULTIPLE, round((T5_D_FF_MULTIPLE + units) / T5_D_FF_MULTIPLE) * T5_D_FF_MULTIPLE)
    model = _t5_class()(t5_config_like(liquid_config, tokenizer, d_ff))
    logger.info("t5: d_ff=%d, %d parameters (liquid model: %d)", d_ff, model.num_parameters(), target)
    return model


# --- one run -----------------------------------------------------------------------------------------------
def parameter_counts(model) -> tuple[int, int]:
    if hasattr(model, "num_parameters_breakdown"):
        parts = model.num_parameters_breakdown()
        return parts["total"], parts["active"]
    total = sum(p.numel() for p in model.parameters())
    return total, total


def test_rows(train_args: argparse.Namespace, max_rows: int) -> list[dict[str, Any]]:
    from liquid.data import load_splits

    splits = load_splits(test_file=train_args.test_file, dataset=train_args.dataset,
                         dataset_config=train_args.dataset_config, data_dir=train_args.data_dir,
                         instruction_column=train_args.instruction_column,
                         response_column=train_args.response_column, splits=("test",))
    rows = [dict(row) for row in splits["test"]]
    if max_rows and max_rows < len(rows):
        keep = sorted(random.Random(TEST_SAMPLE_SEED).sample(range(len(rows)), max_rows))
        rows = [rows[i] for i in keep]
    return rows


def long_rows(path: str | None) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    from liquid.data import load_splits

    return [dict(row) for row in load_splits(test_file=path, splits=("test",))["test"]]


def evaluate_on_test(model, tokenizer, train_args: argparse.Namespace, rows: list[dict],
                     max_source_length: int | None = None) -> dict:
    """Greedy answers to the test rows, scored by `liquid.evaluation.score_predictions` (as evaluate.py does)."""
    from liquid.evaluation import generate_answers, score_predictions

    model.eval()
    predictions = generate_answers(model, tokenizer, [row["instruction"] for row in rows],
                                   batch_size=train_args.batch_size,
                                   max_source_length=max_source_length or train_args.max_source_length,
                                   progress=False, max_new_tokens=train_args.max_target_length, do_sample=False,
                                   num_beams=1)
    _, report = score_predictions(rows, predictions)
    return report


def read_log(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_one(args: argparse.Namespace, passthrough: list[str], variant: str, seed: int, full_window: int,
            rows: list[dict] | None, long: list[dict] | None = None) -> dict:
    from liquid.training.args import parse_args as parse_training_args
    from liquid.training.trainer import train

    run_dir = Path(args.output_dir) / variant / f"seed{seed}"
    train_args = parse_training_args(training_argv(args, passthrough, variant, seed, run_dir, full_window))
    built: dict[str, Any] = {}

    def factory(factory_args, tokenizer):
        model = t5_factory(factory_args, tokenizer) if variant == "t5" else _liquid_model(factory_args, tokenizer)
        built["model"], built["tokenizer"] = model, tokenizer
        return model

    logger.info("%s seed %d: training for %.2f min in %s", variant, seed, args.budget_minutes, run_dir)
    started = time.time()
    result = train(train_args, model_factory=factory)
    model, tokenizer = built["model"], built["tokenizer"]  # the trained model, as the clock left it
    if rows is None:
        rows = test_rows(train_args, args.max_test_rows)
    report = evaluate_on_test(model, tokenizer, train_args, rows)
    long_report = None
    if long:
        from liquid.evaluation import MAX_SOURCE_TOKENS

        long_report = evaluate_on_test(model, tokenizer, train_args, long, max_source_length=MAX_SOURCE_TOKENS)
    log = read_log(run_dir)
    train_records = [r for r in log if r.get("type") == "train" and "tokens_per_s" in r]
    evals = [r for r in log if r.get("type") == "eval"]
    total, active = parameter_counts(model)
    return {
        "_rows": rows,
        "variant": variant, "seed": seed, "run_dir": str(run_dir), "steps": result.step,
        "stop_reason": result.stop_reason, "started": started,
        "tokens_per_s": statistics.fmean(r["tokens_per_s"] for r in train_records) if train_records else None,
        "val_loss": evals[-1]["val_loss"] if evals else None,
        "val_ce_loss": evals[-1].get("val_ce_loss") if evals else None,
        "params_total": total, "params_active": active, "test": report, "long": long_report,
        "budget_minutes": args.budget_minutes,
        "curve": [(r["time"] - started, r["val_accuracy"]) for r in evals if "val_accuracy" in r],
    }


def _liquid_model(train_args, tokenizer):
    from liquid.training.trainer import build_model

    return build_model(train_args, tokenizer, None)


# --- the table and the plot ----------------------------------------------------------------------------
def mean_spread(values: list[float | None]) -> str:
    """"mean ± s" with s the sample standard deviation over seeds ("mean" alone for one seed)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    number = "{:,.0f}" if abs(mean) >= 100 else "{:.3f}"  # counts and rates whole, scores to 3 decimals
    if len(values) == 1:
        return number.format(mean)
    return f"{number.format(mean)} ± {number.format(statistics.stdev(values))}"


def markdown_table(results: list[dict], budget_minutes: float) -> str:
    tasks = sorted({task for r in results for task in r["test"]["per_task"]})
    has_long = any(r.get("long") for r in results)
    header = ["variant", "seeds", "overall acc", *[f"{t} {m[:3]}" for t in tasks for m in TASK_METRICS],
              *([f"{LONG_TASK} acc"] if has_long else []), "val CE", "steps", "tokens/s", "params", "active"]
    lines = [f"Equal wall-clock: {budget_minutes:g} min of training per run; mean ± sample std over seeds.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant in dict.fromkeys(r["variant"] for r in results):
        runs = [r for r in results if r["variant"] == variant]
        cells = [variant, str(len(runs)), mean_spread([r["test"]["overall"].get("accuracy") for r in runs])]
        for task in tasks:
            for metric in TASK_METRICS:
                cells.append(mean_spread([r["test"]["per_task"].get(task, {}).get(metric) for r in runs]))
        if has_long:
            cells.append(mean_spread([(r.get("long") or {}).get("overall", {}).get("accuracy") for r in runs]))
        cells += [mean_spread([r.get("val_ce_loss", r["val_loss"]) for r in runs]),  # plain CE: comparable
                  mean_spread([r["steps"] for r in runs]),
                  mean_spread([r["tokens_per_s"] for r in runs]),
                  f"{runs[0]['params_total']:,}", f"{runs[0]['params_active']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    colours = {variant: f"C{i}" for i, variant in enumerate(dict.fromkeys(r["variant"] for r in results))}
    for r in results:
        if r["curve"]:
            seconds, accuracy = zip(*r["curve"])
            label = r["variant"] if r["seed"] == min(x["seed"] for x in results if x["variant"] == r["variant"]) \
                else None
            axis.plot(seconds, accuracy, marker="o", color=colours[r["variant"]], label=label, alpha=0.8)
    axis.set_xlabel("wall-clock seconds since the run started")
    axis.set_ylabel("validation accuracy")
    axis.set_title("Ablation: validation accuracy against wall-clock (one line per seed)")
    axis.grid(alpha=0.3)
    if any(r["curve"] for r in results):
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def earlier_results(directories: Sequence[str]) -> tuple[list[dict], float]:
    """The runs recorded in each directory's results.json, and their common budget."""
    results: list[dict] = []
    for directory in directories:
        path = Path(directory) / RESULTS_FILE
        if not path.is_file():
            raise AblationError(f"--tabulate: {path} does not exist")
        results += json.loads(path.read_text(encoding="utf-8"))
    if not results:
        raise AblationError("--tabulate: the results files list no runs")
    budgets = {r.get("budget_minutes") for r in results}
    if len(budgets) != 1 or None in budgets:
        raise AblationError(f"--tabulate: the runs do not share one recorded budget ({sorted(map(str, budgets))})")
    return results, budgets.pop()


def write_outputs(results: list[dict], budget_minutes: float, output: Path) -> None:
    table = markdown_table(results, budget_minutes)
    (output / TABLE_FILE).write_text(table, encoding="utf-8")
    plot_curves(results, output / PLOT_FILE)
    print(table)
    print(f"wrote {output / TABLE_FILE}, {output / PLOT_FILE}, {output / RESULTS_FILE}")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args, passthrough = parse_args(argv)
        if args.tabulate:
            if any(Path(d).resolve() == Path(args.output_dir).resolve() for d in args.tabulate):
                raise AblationError("--tabulate: write to a new --output_dir, not one of the tabulated directories")
            results, budget = earlier_results(args.tabulate)
        else:
            full_window = _longest_sequence(passthrough)
            if args.long_test_file:  # full attention must also cover the long inputs
                from liquid.evaluation import MAX_SOURCE_TOKENS

                full_window = max(full_window, MAX_SOURCE_TOKENS)
            long = long_rows(args.long_test_file)
    except (AblationError, ValueError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    if args.tabulate:
        (output / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        write_outputs(results, budget, output)
        return 0
    results, rows = [], None
    for index, seed in enumerate(args.seeds):  # seeds outermost: an interrupted run still has every variant once
        for variant in args.variants:
            if index > 0 and variant not in args.seed_variants:
                continue
            try:
                result = run_one(args, passthrough, variant, seed, full_window, rows, long)
            except ValueError as error:  # ArgsError / DataError: a bad pass-through flag or data file
                print(f"error: {variant} seed {seed}: {' '.join(str(error).split())}", file=sys.stderr)
                return 2
            results.append(result)
            run_rows = result.pop("_rows", None)  # the test rows, drawn once and shared by every later run
            rows = rows if rows is not None else run_rows
            (output / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    write_outputs(results, args.budget_minutes, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
