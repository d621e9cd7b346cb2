"""Evaluate a liquid checkpoint (or any system's predictions): accuracy, coherence, concept coverage, chrF, ROUGE-L.

Examples:
    python evaluate.py --model_path checkpoints/small-run                 # shipped data/test.jsonl
    python evaluate.py --model_path checkpoints/small-run --num_beams 4 --output_dir reports/beam4
    python evaluate.py --predictions other_system.jsonl --test_file data/test.jsonl
    python evaluate.py --model_path checkpoints/small-run --prompt "Resuelve la ecuación 3x + 5 = 20."
    python evaluate.py --model_path checkpoints/small-run --interactive

The metric definitions (with formulas) are in liquid/metrics and the README.
"""

from __future__ import annotations

import os

# MKL's GEMMs otherwise give results that depend on the memory alignment of their operands, so the same seed
# could give other answers in another process (see main.py). AUTO keeps MKL's code path for this CPU but makes it alignment-independent, at
# no measurable cost; MKL reads it once, so it is set before torch is imported.
os.environ.setdefault("MKL_CBWR", "AUTO")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from liquid import metrics
from liquid.data import DataError, load_splits
from liquid.training.args import ArgsError, check_writable
from liquid.evaluation import (
    MAX_SOURCE_TOKENS,
    EvaluationError,
    Timer,
    check_tokenizer_matches,
    format_table,
    generate_answers,
    load_model_and_tokenizer,
    score_predictions,
)

logger = logging.getLogger("evaluate")
EXIT_USAGE = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``error: ...``, exit 2) instead of usage + message."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parse_args(argv=None) -> argparse.Namespace:
    p = _OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("what to evaluate")
    src.add_argument("--model_path", help="run directory, checkpoint directory, or anything from_pretrained takes")
    src.add_argument("--predictions", help="JSONL with a `prediction` field per test row, in test-file order")
    src.add_argument("--prompt", help="answer one instruction and show which steps check out")
    src.add_argument("--interactive", action="store_true", help="answer instructions read line by line")
    data = p.add_argument_group("test data")
    data.add_argument("--test_file", help="JSONL/CSV/TSV/Parquet test file (default: data/test.jsonl)")
    data.add_argument("--dataset", help="a datasets hub name or local dataset directory")
    data.add_argument("--dataset_config")
    data.add_argument("--split", default="test")
    data.add_argument("--instruction_column", default="instruction")
    data.add_argument("--response_column", default="response")
    data.add_argument("--limit", type=int, help="evaluate only the first N rows")
    dec = p.add_argument_group("decoding")
    dec.add_argument("--num_beams", type=int, default=1)
    dec.add_argument("--do_sample", action="store_true")
    dec.add_argument("--temperature", type=float, default=1.0)
    dec.add_argument("--top_k", type=int, default=50)
    dec.add_argument("--top_p", type=float, default=1.0)
    dec.add_argument("--repetition_penalty", type=float, default=1.0)
    dec.add_argument("--max_new_tokens", type=int, default=160)
    dec.add_argument("--batch_size", type=int, default=64)
    dec.add_argument("--max_source_length", type=int, default=MAX_SOURCE_TOKENS,
                     help="longer instructions are truncated to this many tokens, with a warning")
    p.add_argument("--output_dir", help="write report.json and predictions.jsonl here")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (args.model_path or args.predictions):
        p.error("give --model_path (to generate) or --predictions (to score another system's outputs)")
    if args.prompt is not None and not args.prompt.strip():
        p.error("--prompt is empty; give an instruction, or use --interactive to type several")
    if (args.prompt or args.interactive) and not args.model_path:
        p.error("--prompt and --interactive need --model_path")
    for name in ("num_beams", "max_new_tokens", "batch_size", "top_k"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
    if args.temperature <= 0 or not 0 < args.top_p <= 1 or args.repetition_penalty <= 0:
        p.error("need --temperature > 0, 0 < --top_p <= 1 and --repetition_penalty > 0")
    return args


def generation_kwargs(args: argparse.Namespace) -> dict:
    kwargs = dict(max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
                  repetition_penalty=args.repetition_penalty, do_sample=args.do_sample)
    if args.do_sample:
        kwargs.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    return kwargs


def load_test_rows(args: argparse.Namespace) -> list[dict]:
    splits = load_splits(test_file=args.test_file, dataset=args.dataset, dataset_config=args.dataset_config,
                         instruction_column=args.instruction_column, response_column=args.response_column,
                         splits=(args.split,))
    rows = [dict(row) for row in splits[args.split]]
    return rows[: args.limit] if args.limit else rows


def read_predictions(path: str, expected: int) -> list[str]:
    predictions = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise EvaluationError(f"{path}:{number}: invalid JSON ({err.msg})") from None
                except UnicodeDecodeError:
                    raise EvaluationError(f"{path}:{number}: not UTF-8 text") from None
                if not isinstance(row, dict) or not isinstance(row.get("prediction"), str):
                    raise EvaluationError(f"{path}:{number}: no string `prediction` field")
                predictions.append(row["prediction"])
    except FileNotFoundError:
        raise EvaluationError(f"--predictions file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise EvaluationError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x})") from None
    if len(predictions) < expected:
        raise EvaluationError(f"{path} has {len(predictions)} predictions for {expected} test rows")
    return predictions[:expected]


def answer_prompts(model, tokenizer, prompts, args) -> None:
    for prompt in prompts:
        prompt = prompt.strip()
        if not prompt:
            continue
        [answer] = generate_answers(model, tokenizer, [prompt], progress=False, **generation_kwargs(args))
        print(f"> {prompt}\n{answer}")
        if metrics.question_equation(prompt) is not None:
            print(metrics.step_report(prompt, answer))
        sys.stdout.flush()


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: a crash never leaves half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(directory: str, report: dict, scored: list[dict]) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "predictions.jsonl", "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in scored))
    write_atomically(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    transformers.utils.logging.disable_progress_bar()  # our own tqdm bar is the one that matters
    datasets.disable_progress_bars()
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        if args.output_dir:  # refused now, not after minutes of generation
            check_writable(Path(args.output_dir))
        model = tokenizer = None
        if args.model_path:
            model, tokenizer, directory = load_model_and_tokenizer(args.model_path, device)
            logger.info("loaded %s (%s parameters) on %s", directory, f"{model.num_parameters():,}", device)
        if args.prompt or args.interactive:
            answer_prompts(model, tokenizer, [args.prompt] if args.prompt is not None else sys.stdin, args)
            return 0

        rows = load_test_rows(args)
        source = args.test_file or args.dataset or "data/test.jsonl"
        settings = {"source": source, "rows": len(rows), **generation_kwargs(args)}
        with Timer() as timer:
            if args.predictions:
                predictions = read_predictions(args.predictions, len(rows))
                settings["predictions"] = args.predictions
            else:
                instructions = [row["instruction"] for row in rows]
                check_tokenizer_matches(tokenizer, instructions, source)
                predictions = generate_answers(model, tokenizer, instructions, batch_size=args.batch_size,
                                               max_source_length=args.max_source_length, **generation_kwargs(args))
                settings["model_path"] = str(directory)
        scored, report = score_predictions(rows, predictions)
        report["overall"]["examples_per_second"] = len(rows) / max(timer.seconds, 1e-9)
        report["settings"] = settings
    except (ArgsError, DataError, EvaluationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE

    print(format_table(report))
    print(f"{len(rows)} examples in {timer.seconds:.1f} s ({report['overall']['examples_per_second']:.1f} examples/s)")
    if args.output_dir:
        try:
            write_outputs(args.output_dir, report, scored)
        except OSError as err:
            print(f"error: cannot write {args.output_dir} ({err.strerror or err})", file=sys.stderr)
            return EXIT_USAGE
        print(f"wrote {args.output_dir}/report.json and {args.output_dir}/predictions.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
