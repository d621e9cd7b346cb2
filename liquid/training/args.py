"""Command-line arguments of `main.py`: parsing, typed config overrides and validation.

Every bad value is refused by `parse_args` with `ArgsError` (one line) before any work starts and
before anything is written; `main.py` prints it as ``error: <message>`` and exits with status 2.
An --output_dir that already holds a run (``checkpoint-*``, ``best/`` or ``log.jsonl``) is refused unless
--resume (continue that run) or --overwrite_output_dir (replace it) says what to do with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from huggingface_hub.errors import StrictDataclassError

from liquid.config import PRESETS, LiquidConfig
from liquid.data.build import WORD_PROBLEM_POOL
from liquid.data.tokenizer import DEFAULT_NUMBER_SPACE, NUMBER_SPACES
from liquid.training.checkpoint import (
    LOG_FILE, CheckpointError, find_latest_checkpoint, is_checkpoint, looks_like_run_dir, read_manifest,
    verify_checkpoint,
)
from liquid.training.optim import NS_STEPS, OPTIMIZERS
from liquid.training.schedule import DEFAULT_DECAY_SHARE, DEFAULT_LR_SCHEDULE, LR_SCHEDULES

logger = logging.getLogger(__name__)

# Defaults of a no-argument `python main.py`: the `small` preset on the shipped data for a fixed wall-clock
# budget (DEFAULT_TIME_BUDGET_MINUTES from the process's start: imports, data, tokenizer, training, validations and
# checkpoints; the learning-rate schedule ends exactly at the budget), so the whole command stays under 15 minutes on
# any 2-core CPU (the budget plus the final validation, save and plots) and a faster machine simply takes more steps
# (wall time measured in the README's Results section).
# 14.5 minutes from the start: the whole command took 14m38s on the slowest CPU measured (session 26, 2-core AMD EPYC
# Zen 1: 12 s of setup, 4,620 steps, 8 s after the budget). Until session 25 the budget was 14.0 minutes of fit()
# alone and the setup came on top of it: 48 s on that CPU (16 s of them reading dataset columns row by row), 14m56s.
DEFAULT_TIME_BUDGET_MINUTES = 14.5
DEFAULT_PRESET = "small"
DEFAULT_BATCH_SIZE = 16  # 16 beat 32 and 8 at equal wall-clock (docs/experiments.md, session 4)
DEFAULT_LEARNING_RATE = 3.5e-4  # beat 5e-4 at batch 16 on both seeds (docs/experiments.md, session 5)
DEFAULT_NUM_EPOCHS = 2
# The training mix of later epochs: sentiment is learnt within the first epoch and qa (the capitals, by repetition,
# docs/experiments.md session 9) within the first two, so later epochs keep a fresh half of the sentiment rows from
# the second epoch and a fresh quarter of the qa rows from the third, and give the time to math (docs/experiments.md,
# sessions 15-16: qa thinned from the second epoch came before the qa switch on a slow machine). `--oversample qa=1`
# keeps a task's rows. The shipped train split holds five times the mix's word problems (liquid/data/build.py,
# WORD_PROBLEM_POOL), and every epoch draws a fresh fifth of them (docs/experiments.md, session 20: at equal steps on
# seeds 0 / 1 test math 0.824 -> 0.860 and 0.880 -> 0.902, speed problems 17 -> 13 and 19 -> 13 of 28 wrong).
DEFAULT_OVERSAMPLE: tuple[str, ...] = (f"word_problem={1 / WORD_PROBLEM_POOL:g}", "qa=0.25@2", "sentiment=0.5@1")
UNLIMITED_EPOCHS = 10**6  # `--max_steps N` alone: the step count is the only limit
DEFAULT_WARMUP_STEPS = 100
DEFAULT_WEIGHT_DECAY = 0.01
DEFAULT_ADAM_BETA2 = 0.999
DEFAULT_OPTIMIZER = "adamw"
DEFAULT_MAX_GRAD_NORM = 1.0
DEFAULT_GRAD_ACCUM_STEPS = 1
DEFAULT_SEED = 0
HOST_MALLOC_CHOICES = ("keep", "default")  # keep: 1.04x per CPU step, 1,787 -> 2 page faults (benchmarks/bench_malloc.py, session 18)
DEFAULT_LOG_EVERY = 10
DEFAULT_EVAL_EVERY = 750  # steps, for runs of a given length
# With a time budget (and no --eval_every) the run validates every budget / DEFAULT_VALIDATIONS minutes: the same
# learning curve on every machine, and a fast machine no longer spends twice the validations of a slow one.
DEFAULT_VALIDATIONS = 8
DEFAULT_SAVE_EVERY = 750
DEFAULT_EVAL_SAMPLES = 200
DEFAULT_MONITOR_EVERY = 50
DEFAULT_KEEP_LAST = 3
DEFAULT_MAX_BAD_STEPS = 5
DEFAULT_MAX_SOURCE_LENGTH = 128
DEFAULT_MAX_TARGET_LENGTH = 160  # the longest place-value word-problem answer is 148 tokens
DEFAULT_VOCAB_SIZE = 2000
# Batches of similar length: each epoch's shuffled rows are cut into mega-batches of batch_size * this many rows and
# sorted by length inside each (liquid/data/batching.py). Larger: less padding but batches of one task and one
# template (the lengths sort by task); smaller: mixed batches, more padding (docs/experiments.md, session 23).
DEFAULT_MEGA_BATCH_MULT = 50
DEFAULT_CHECKPOINT_ROOT = "checkpoints"
RUN_NAME_TIME_FORMAT = "%Y%m%d-%H%M%S"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOSSES = ("focal", "ce")
RESUME_AUTO = "auto"
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
NONE_WORDS = ("none", "null")
WRITE_PROBE_BYTES = 1 << 16  # the probe file written (then deleted) to check that --output_dir takes data
LIQUID_MODEL_TYPE = "liquid"


class ArgsError(ValueError):
    """One-line, user-facing problem with the command line."""


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises `ArgsError` instead of printing usage and exiting."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        raise ArgsError(message)


def build_parser() -> argparse.ArgumentParser:
    """All flags of `main.py`, grouped as in `python main.py --help`."""
    parser = _RaisingParser(description="Train the liquid encoder-decoder on Spanish instructions.")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                     help="examples per micro-batch and process (a step sees batch_size * grad_accum * processes)")
    opt.add_argument("--learning_rate", type=float, default=DEFAULT_LEARNING_RATE)
    opt.add_argument("--num_epochs", type=int, default=None,
                     help=f"epochs (default: --max_steps alone decides, else {DEFAULT_NUM_EPOCHS}; with neither, "
                          "the run lasts --max_time_minutes)")
    opt.add_argument("--max_steps", type=int, default=None,
                     help="stop after this many optimizer steps (0: only --num_epochs limits)")
    opt.add_argument("--grad_accum_steps", type=int, default=DEFAULT_GRAD_ACCUM_STEPS)
    opt.add_argument("--warmup_steps", type=int, default=DEFAULT_WARMUP_STEPS)
    opt.add_argument("--weight_decay", type=float, default=DEFAULT_WEIGHT_DECAY)
    opt.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULT_OPTIMIZER,
                     help="adamw, or muon: Muon for the hidden weight matrices and AdamW for the rest, at the same "
                          "learning rate (liquid/training/optim.py)")
    opt.add_argument("--muon_ns_steps", type=int, default=NS_STEPS,
                     help="Newton-Schulz steps per Muon update (--optimizer muon)")
    opt.add_argument("--muon_until", type=float, default=1.0,
                     help="--optimizer muon: share of the run after which the weight matrices move to AdamW")
    opt.add_argument("--lr_schedule", choices=LR_SCHEDULES, default=DEFAULT_LR_SCHEDULE,
                     help="shape of the decay after the warm-up, to 0 at the end of the run (steps or "
                          "--max_time_minutes): cosine, linear, or wsd (constant, then a 1-sqrt decay over the last "
                          "--decay_share of the run); liquid/training/schedule.py")
    opt.add_argument("--decay_share", type=float, default=DEFAULT_DECAY_SHARE,
                     help="--lr_schedule wsd: share of the run spent in the final decay, in (0, 1]")
    opt.add_argument("--adam_beta2", type=float, default=DEFAULT_ADAM_BETA2,
                     help="AdamW's second-moment decay (beta1 stays 0.9)")
    opt.add_argument("--max_grad_norm", type=float, default=DEFAULT_MAX_GRAD_NORM)
    opt.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="auto: bf16 autocast on CUDA, the measured-faster choice on CPU")
    opt.add_argument("--compile", action="store_true", help="torch.compile the model")
    opt.add_argument("--seed", type=int, default=DEFAULT_SEED)
    opt.add_argument("--deterministic", action="store_true",
                     help="deterministic kernels on GPU (torch.use_deterministic_algorithms; slower); CPU runs "
                          "are deterministic without it")
    opt.add_argument("--max_bad_steps", type=int, default=DEFAULT_MAX_BAD_STEPS,
                     help="stop after this many non-finite steps in a row")

    model = parser.add_argument_group("model")
    model.add_argument("--preset", default=DEFAULT_PRESET, help=f"one of {', '.join(PRESETS)}")
    model.add_argument("--set", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a LiquidConfig field (repeatable), e.g. --set dropout=0.1")
    model.add_argument("--loss", choices=LOSSES, default=None, help="token loss (sets config.loss_type)")

    data = parser.add_argument_group("data")
    data.add_argument("--train_file")
    data.add_argument("--validation_file")
    data.add_argument("--test_file")
    data.add_argument("--dataset", help="hub name or local folder of data files")
    data.add_argument("--dataset_config")
    data.add_argument("--instruction_column", default="instruction")
    data.add_argument("--response_column", default="response")
    data.add_argument("--data_dir", default="data")
    data.add_argument("--max_source_length", type=int, default=DEFAULT_MAX_SOURCE_LENGTH)
    data.add_argument("--max_target_length", type=int, default=DEFAULT_MAX_TARGET_LENGTH)
    data.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB_SIZE, help="tokenizer vocabulary")
    data.add_argument("--number_space", choices=NUMBER_SPACES, default=DEFAULT_NUMBER_SPACE,
                      help="tokenizer: the space before a number on its first digit (attached) or a token of its own")
    data.add_argument("--mega_batch_mult", type=int, default=DEFAULT_MEGA_BATCH_MULT,
                      help="length grouping: sort rows by length within chunks of batch_size x this many rows "
                           "(1: no grouping, a plain shuffle)")
    data.add_argument("--num_workers", type=int, default=0)
    data.add_argument("--oversample", action="append", default=None, metavar="TASK=K[@EPOCH]",
                      help="each training row whose `task` (or else `subset`) is TASK appears K times per epoch; "
                           "a fractional K draws that share of the rows afresh each epoch, e.g. qa=0.5; @EPOCH: "
                           "from that epoch on (repeatable; default " + " ".join(DEFAULT_OVERSAMPLE) + ", "
                           "replaced for any task named here)")

    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", help="default: checkpoints/<run-name>")
    run.add_argument("--run_name", help="default: <preset>-<timestamp>")
    run.add_argument("--resume", nargs="?", const=RESUME_AUTO, default=None, metavar="PATH|auto",
                     help="continue from a checkpoint dir, a run dir (its latest checkpoint) or 'auto' "
                          "(latest valid one in --output_dir)")
    run.add_argument("--overwrite_output_dir", action="store_true",
                     help="replace the run already in --output_dir (its checkpoints, best/ and logs are deleted)")
    run.add_argument("--device", default="auto", help="auto: cuda if available, else cpu")
    run.add_argument("--host_malloc", choices=HOST_MALLOC_CHOICES, default="keep",
                     help="keep: glibc keeps freed memory for the next step, no page faults for its temporaries "
                          "(liquid/training/allocator.py; CPU runs); default: the C library's own behaviour")
    run.add_argument("--log_every", type=int, default=DEFAULT_LOG_EVERY)
    run.add_argument("--eval_every", type=int, default=None,
                     help=f"validate every N steps, 0: only at the end (default {DEFAULT_EVAL_EVERY}; with a time "
                          "budget, --eval_every_minutes instead)")
    run.add_argument("--eval_every_minutes", type=float, default=None,
                     help="validate every M minutes of training (default with a time budget and no --eval_every: "
                          f"the budget / {DEFAULT_VALIDATIONS}; 0: off)")
    run.add_argument("--save_every", type=int, default=DEFAULT_SAVE_EVERY, help="0: only at the end")
    run.add_argument("--eval_samples", type=int, default=DEFAULT_EVAL_SAMPLES)
    run.add_argument("--monitor_every", type=int, default=DEFAULT_MONITOR_EVERY)
    run.add_argument("--keep_last", type=int, default=DEFAULT_KEEP_LAST)
    run.add_argument("--max_time_minutes", type=float, default=None,
                     help="wall-clock budget of the run, counted from the start of main.py (data and tokenizer "
                          "included): the learning-rate schedule ends when it is spent, then the run validates and "
                          f"saves (default {DEFAULT_TIME_BUDGET_MINUTES:g} when no step or epoch count is given)")
    return parser


# Flags that must be > 0 and flags that must be >= 0.
POSITIVE_FLAGS = ("batch_size", "learning_rate", "num_epochs", "grad_accum_steps", "max_grad_norm",
                  "log_every", "eval_samples", "monitor_every", "keep_last", "max_bad_steps",
                  "max_source_length", "max_target_length", "vocab_size", "max_time_minutes", "muon_ns_steps",
                  "mega_batch_mult")
NON_NEGATIVE_FLAGS = ("max_steps", "warmup_steps", "weight_decay", "eval_every", "eval_every_minutes", "save_every",
                      "num_workers")


def parse_value(text: str, annotation: str, key: str) -> Any:
    """Convert `text` to the first type of a field annotation (e.g. ``"int | None"``) that accepts it."""
    kinds = [part.strip() for part in str(annotation).split("|")]
    if "None" in kinds and text.lower() in NONE_WORDS:
        return None
    for kind in kinds:
        if kind == "bool":
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
        elif kind == "int":
            try:
                return int(text)
            except ValueError:
                continue
        elif kind == "float":
            try:
                return float(text)
            except ValueError:
                continue
        elif kind == "str":
            return text
    raise ArgsError(f"--set {key}={text}: expected {annotation}")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["dropout=0.1", "top_k=1"]`` -> ``{"dropout": 0.1, "top_k": 1}``, typed by the LiquidConfig fields."""
    fields = {f.name: f for f in dataclasses.fields(LiquidConfig)}
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ArgsError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ArgsError(f"--set {key}: unknown LiquidConfig field")
        overrides[key] = parse_value(text.strip(), fields[key].type, key)
    return overrides


def build_config(args: argparse.Namespace, vocab_size: int | None = None) -> LiquidConfig:
    """The model config of a fresh run: preset, then `--set` overrides, then `--loss` and the vocabulary size."""
    overrides = parse_overrides(args.config_overrides)
    if args.loss is not None:
        overrides["loss_type"] = args.loss
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    try:
        return LiquidConfig.from_preset(args.preset, **overrides)
    except (ValueError, TypeError, StrictDataclassError) as error:
        cause = error.__cause__ if isinstance(error, StrictDataclassError) and error.__cause__ else error
        raise ArgsError(" ".join(str(cause).split())) from error


def _oversample_item(item: str) -> tuple[str, float, int]:
    """``"qa=0.25@1"`` -> ``("qa", 0.25, 1)``; ``"math=2"`` -> ``("math", 2.0, 0)``."""
    task, sep, text = item.partition("=")
    task = task.strip()
    count_text, at, epoch_text = text.partition("@")
    try:
        count = float(count_text)
        epoch = int(epoch_text) if at else 0
    except ValueError:
        count, epoch = 0.0, -1
    if not sep or not task or not 0 < count < float("inf") or epoch < 0:
        raise ArgsError(f"--oversample expects TASK=K (or TASK=K@EPOCH) with a number K > 0 and an epoch >= 0, "
                        f"got {item!r}")
    return task, count, epoch


def parse_oversample(items: Sequence[str] | None) -> dict[int, dict[str, float]]:
    """``["math=2", "qa=0.25@1"]`` -> ``{0: {"math": 2.0}, 1: {"qa": 0.25}}``: from each epoch on, the tasks' K
    (`ArgsError` naming the bad item otherwise)."""
    schedule: dict[int, dict[str, float]] = {}
    for item in items or ():
        task, count, epoch = _oversample_item(item)
        schedule.setdefault(epoch, {})[task] = count
    return dict(sorted(schedule.items()))


def oversample_with_defaults(items: Sequence[str] | None) -> list[str]:
    """The user's --oversample items, then every `DEFAULT_OVERSAMPLE` item for a task the user did not name
    (naming a task replaces its defaults: ``--oversample qa=1`` keeps qa at 1 in every epoch)."""
    items = list(items or ())
    named = {_oversample_item(item)[0] for item in items}
    return items + [item for item in DEFAULT_OVERSAMPLE if _oversample_item(item)[0] not in named]


def _check_ranges(args: argparse.Namespace) -> None:
    for name in POSITIVE_FLAGS:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ArgsError(f"--{name} must be > 0, got {value}")
    for name in NON_NEGATIVE_FLAGS:
        value = getattr(args, name)
        if value < 0:
            raise ArgsError(f"--{name} must be >= 0, got {value}")
    if not 0.0 <= args.muon_until <= 1.0:
        raise ArgsError(f"--muon_until must be in [0, 1], got {args.muon_until}")
    if not 0.0 < args.decay_share <= 1.0:
        raise ArgsError(f"--decay_share must be in (0, 1], got {args.decay_share}")
    if not 0.0 <= args.adam_beta2 < 1.0:
        raise ArgsError(f"--adam_beta2 must be in [0, 1), got {args.adam_beta2}")


def check_writable(directory: Path, flag: str = "--output_dir") -> None:
    """Write (and delete) a probe file in `directory`; refuse an unwritable or full one. Leaves nothing behind:
    directories created for the probe are removed again (the trainer creates them when it starts)."""
    created: Path | None = None
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        created = parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-") as handle:
            handle.write(b"\0" * WRITE_PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise ArgsError(f"{flag} {directory}: no space left on device") from None
        raise ArgsError(f"{flag} {directory} is not writable ({error.strerror or error})") from None
    finally:
        if created is not None and created.exists():
            try:
                for path in sorted(created.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    path.rmdir()
                created.rmdir()
            except OSError:
                pass


def _check_output_dir_is_free(args: argparse.Namespace, resume_requested: bool) -> None:
    """Refuse to start a fresh run on top of another run's checkpoints (they would be replaced).
    `resume_requested`: --resume was given (with 'auto' and no checkpoint yet, the run starts afresh there)."""
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ArgsError(f"--output_dir {output_dir} is a file, not a directory")
    if resume_requested or args.overwrite_output_dir:
        return
    found = looks_like_run_dir(output_dir) + ([LOG_FILE] if (output_dir / LOG_FILE).is_file() else [])
    if found:
        raise ArgsError(f"--output_dir {output_dir} already holds a run ({', '.join(found[:3])}); add --resume auto "
                        f"to continue it or --overwrite_output_dir to replace it")


def _check_data_files(args: argparse.Namespace) -> None:
    from liquid.data import DataError  # the data package is heavy (datasets): import only when needed

    for flag in ("train_file", "validation_file", "test_file"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise DataError(f"{path}: file not found (--{flag})")


def _check_foreign(checkpoint: Path) -> None:
    """Refuse a checkpoint of another architecture (its config.json names another model type)."""
    try:
        config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ArgsError(f"--resume {checkpoint}: no readable config.json") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != LIQUID_MODEL_TYPE:
        raise ArgsError(f"--resume {checkpoint}: a {model_type!r} checkpoint, not a liquid one")


def _resolve_resume(args: argparse.Namespace) -> None:
    """Turn `--resume` into a verified checkpoint directory (or None for 'auto' without any checkpoint yet)."""
    if args.resume is None:
        return
    if args.resume == RESUME_AUTO:
        args.resume = find_latest_checkpoint(Path(args.output_dir))  # skips broken ones, with a warning
        if args.resume is None:
            logger.warning("--resume auto: no valid checkpoint in %s yet, starting a fresh run", args.output_dir)
        else:
            _check_foreign(args.resume)
        return
    path = Path(args.resume)
    if not path.exists():
        raise ArgsError(f"--resume {path}: does not exist")
    try:
        if is_checkpoint(path) or _checkpoint_like(path):
            verify_checkpoint(path)
            found = path
        else:
            found = find_latest_checkpoint(path)
    except CheckpointError as error:
        raise ArgsError(f"--resume {error}") from None
    if found is None:
        raise ArgsError(f"--resume {path}: no checkpoint there (expected checkpoint-*/ with a manifest.json)")
    _check_foreign(found)
    _check_same_run(found, Path(args.output_dir))
    args.resume = found


def _checkpoint_like(path: Path) -> bool:
    """A model or old-format checkpoint directory (config.json or trainer_state.pt) without a manifest."""
    return (path / "config.json").is_file() or (path / "trainer_state.pt").is_file()


def _check_same_run(checkpoint: Path, output_dir: Path) -> None:
    """Resuming into a directory that holds a different run would mix two runs' checkpoints: refuse."""
    if output_dir.resolve() == checkpoint.parent.resolve():
        return
    latest = find_latest_checkpoint(output_dir)
    if latest is None:
        return
    theirs, ours = read_manifest(latest).get("run_id"), read_manifest(checkpoint).get("run_id")
    if theirs != ours:
        raise ArgsError(f"--resume {checkpoint}: --output_dir {output_dir} holds another run ({latest.name}); "
                        f"resume into the checkpoint's own directory or an empty one")


def _fill_run_length(args: argparse.Namespace) -> None:
    """No length given: the CPU time budget (DEFAULT_TIME_BUDGET_MINUTES). `--max_time_minutes T` alone: T
    minutes, however many steps that is. A step or epoch count given: it decides (`--num_epochs 10` really
    runs 10 epochs; `--max_steps N` runs N steps whatever the epochs), and a time budget given with it
    ends the run (and the schedule) early if it is spent first."""
    if args.num_epochs is None and args.max_steps is None:
        if args.max_time_minutes is None:
            args.max_time_minutes = DEFAULT_TIME_BUDGET_MINUTES
        args.num_epochs, args.max_steps = UNLIMITED_EPOCHS, 0
    elif args.num_epochs is None:
        args.num_epochs = UNLIMITED_EPOCHS if args.max_steps else DEFAULT_NUM_EPOCHS
    elif args.max_steps is None:
        args.max_steps = 0
    if args.eval_every is None:
        by_time = args.max_time_minutes is not None and args.eval_every_minutes is None
        args.eval_every = 0 if by_time or args.eval_every_minutes else DEFAULT_EVAL_EVERY
        if by_time:
            args.eval_every_minutes = args.max_time_minutes / DEFAULT_VALIDATIONS
    if args.eval_every_minutes is None:
        args.eval_every_minutes = 0.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and validate; raises `ArgsError` / `DataError` (one line) for any bad value.

    Fills `output_dir` (``checkpoints/<run-name>``, or the run directory of `--resume PATH`) and
    `run_name`, and resolves `resume` to a checkpoint directory.
    """
    args = build_parser().parse_args(argv)
    _fill_run_length(args)
    _check_ranges(args)
    parse_oversample(args.oversample)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ArgsError(f"--device {args.device}: CUDA is not available here (use --device cpu or auto)")
    if args.preset not in PRESETS:
        raise ArgsError(f"--preset {args.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    build_config(args)  # refuses unknown fields and impossible combinations now, not after loading data
    if args.run_name is None:
        args.run_name = f"{args.preset}-{time.strftime(RUN_NAME_TIME_FORMAT)}"
    if args.output_dir is None:
        resume_dir = Path(args.resume) if args.resume not in (None, RESUME_AUTO) else None
        if resume_dir is not None and is_checkpoint(resume_dir):
            args.output_dir = str(resume_dir.parent)
        elif resume_dir is not None:
            args.output_dir = str(resume_dir)
        else:
            args.output_dir = os.path.join(DEFAULT_CHECKPOINT_ROOT, args.run_name)
    if args.overwrite_output_dir and args.resume is not None:
        raise ArgsError("give --resume (continue the run) or --overwrite_output_dir (replace it), not both")
    _check_data_files(args)
    resume_requested = args.resume is not None
    _resolve_resume(args)
    _check_output_dir_is_free(args, resume_requested)
    check_writable(Path(args.output_dir))
    return args


__all__ = ["ArgsError", "build_parser", "check_writable", "build_config", "parse_args", "parse_overrides", "parse_value"]
