"""The training loop: data, model, AdamW + a learning-rate schedule, mixed precision, DDP, validation, checkpoints.

One optimizer step consumes one global batch split into `grad_accum_steps` micro-batches:

    g = (1/A) sum_{a=1..A} grad L(micro-batch a)      (A = grad_accum_steps; DDP also averages over ranks)
    g <- g * min(1, max_grad_norm / ||g||_2)           (clipping)
    AdamW step with lr_t = lr * t / warmup                       for t < warmup
                     lr_t = lr * 0.5 * (1 + cos(pi * progress))  after, with
    progress = max((t - warmup) / (T - warmup), elapsed / budget)   (T total steps; budget = max_time_minutes)

so with a time budget the learning rate reaches its floor (0) exactly when the budget is spent, whatever
the machine's speed, and equal-wall-clock runs are one flag (`--max_time_minutes`).

Weight decay applies only to parameters with ndim >= 2 that are not embeddings or norms.
A step whose loss (or gradient norm) is not finite is skipped (gradients dropped) and logged;
`max_bad_steps` of them in a row stop the run with `NonFiniteLossError`, naming what an
`ActivationMonitor` saw on that step. SIGINT/SIGTERM and `max_time_minutes` finish the current step,
save a checkpoint and return. Resuming restores weights, optimizer, scheduler, RNG states and the
position in the epoch, so a CPU fp32 run continues exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from liquid.config import LiquidConfig
from liquid.modeling import LiquidFoundationModelOptimized
from liquid.monitor import ActivationMonitor, describe_nonfinite, nonfinite_parameters
from liquid.training import checkpoint as ckpt
from liquid.training import plots
from liquid.training.allocator import keep_freed_memory
from liquid.training.args import (DEFAULT_ADAM_BETA2, DEFAULT_OPTIMIZER, DEFAULT_OVERSAMPLE, build_config,
                                  oversample_with_defaults, parse_oversample)
from liquid.training.distributed import (
    DistributedContext, RankSliceBatchSampler, all_reduce_sum, barrier, broadcast_object,
    cleanup_distributed, init_distributed,
)
from liquid.training.optim import NS_STEPS, build_optimizer
from liquid.training.schedule import DEFAULT_DECAY_SHARE, DEFAULT_LR_SCHEDULE, lr_multiplier

logger = logging.getLogger(__name__)

# `--precision auto` on CPU: fp32, on every CPU. bf16 autocast was slower on both kinds of machine this project
# runs on (benchmarks/bench_precision.py, the default run's batch shapes): 8x on the 2-core AMD EPYC (no bf16
# units) and 1.9x on a 2-core Intel Xeon with AMX, where the bf16 default run made 4,785 steps in its budget
# against fp32's 10,501 (docs/experiments.md, session 11): at this model's sizes the casts cost more than the
# faster matmuls give. The CPU's bf16 units are still detected and logged; `--precision bf16` uses them.
CPU_AUTO_PRECISION = "fp32"
CPU_BF16_UNITS = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tb"
PLOTS_DIR = "plots"
MONITOR_CSV = "monitor.csv"
MONITOR_PLOT = "monitor.png"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_TEXT_BATCH = 1000  # rows read at a time from the train split for the tokenizer's training texts
EVAL_SAMPLE_SEED_OFFSET = 1  # the validation sample is drawn with seed + this, apart from the data order
# Rows per generate() call during validation: a decode step costs little more at 64 rows than at 16 on a CPU, so
# the in-run validations (part of the time budget) get 1.8x faster (benchmarks/bench_validation.py).
EVAL_GENERATION_BATCH_SIZE = 64
IGNORE_INDEX = -100


class NonFiniteLossError(RuntimeError):
    """Too many non-finite steps in a row; the message names the monitor's alerts."""


@dataclass
class TrainResult:
    """What a finished (or cleanly stopped) run left behind."""

    output_dir: Path
    stop_reason: str  # "completed", "signal" or "time_limit"
    step: int
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    best_metric: float | None = None
    final_eval: dict[str, float] | None = None


@dataclass
class StepStats:
    """One optimizer step, averaged over micro-batches and ranks."""

    loss: float
    lm_loss: float
    ce_loss: float
    aux_loss: float
    reconstruction_loss: float
    experts_per_token: float
    tokens: int
    finite: bool
    stop_requested: bool
    grad_norm: float = float("nan")
    lr: float = float("nan")  # the learning rate this step used
    expert_load: list[list[float]] = field(default_factory=list)
    diagnostics: dict[str, float] = field(default_factory=dict)  # the model's `training_diagnostics`, if any


# --- pieces that tests and benchmarks use on their own ------------------------------------------------
def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"  # required by cuBLAS for deterministic GEMMs (CUDA >= 10.2)


def use_deterministic_kernels() -> None:
    """--deterministic: same seed -> same bits on the same GPU and software too, at some speed cost. Ops with an
    atomic-add CUDA kernel (the MoE dispatch's `index_add_`, cuBLAS split-K GEMMs) switch to deterministic
    ones; an op that has none warns (warn_only) instead of varying silently."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def cpu_bf16_units() -> str | None:
    """The CPU's bf16 matrix instructions ("AMX" or "AVX512-BF16") as torch detects them, None without."""
    for name, probe in CPU_BF16_UNITS:
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return name
    return None


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA (fp16 where bf16 is unsupported); on CPU `CPU_AUTO_PRECISION` (fp32), whatever
    bf16 matrix units it has (`cpu_bf16_units`, logged). Logs what auto chose and why."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    units = cpu_bf16_units()
    logger.info("--precision auto on CPU (capability %s, bf16 matrix units: %s): %s (bf16 autocast measured "
                "1.9-8x slower per training step at this project's sizes; --precision bf16 to use it anyway)",
                torch.backends.cpu.get_cpu_capability(), units or "none", CPU_AUTO_PRECISION)
    return CPU_AUTO_PRECISION


def autocast_context(precision: str, device: torch.device):
    """The forward-pass context of a precision (fp32: none)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def steps_per_epoch(batches_per_epoch: int, grad_accum_steps: int) -> int:
    return math.ceil(batches_per_epoch / grad_accum_steps)


def total_steps(batches_in_epoch: Callable[[int], int], args: argparse.Namespace, last_change: int = 0) -> int:
    """Optimizer steps of the run: `num_epochs` epochs of `batches_in_epoch(epoch)` batches (the same for every
    epoch from `last_change` on), capped by `max_steps` when it is > 0."""
    varying = min(args.num_epochs, last_change)
    steps = sum(steps_per_epoch(batches_in_epoch(epoch), args.grad_accum_steps) for epoch in range(varying))
    steps += (args.num_epochs - varying) * steps_per_epoch(batches_in_epoch(varying), args.grad_accum_steps)
    return min(steps, args.max_steps) if args.max_steps > 0 else steps


class StopRequest:
    """Set by SIGINT/SIGTERM; a second signal interrupts at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("received %s: finishing the current step, then saving a checkpoint",
                       signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class RunLog:
    """Rank 0's records: ``log.jsonl`` (one JSON object per line) and TensorBoard scalars."""

    def __init__(self, output_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = output_dir / LOG_FILE
        self.writer = None
        if enabled and self.path.is_file():
            _end_torn_line(self.path)
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # heavy import: only where it writes

            self.writer = SummaryWriter(log_dir=str(output_dir / TENSORBOARD_DIR))

    def write(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"type": kind, "step": step, "time": time.time(), **values}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = []
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line torn by a kill before a resume
                    continue
        return records

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _end_torn_line(path: Path) -> None:
    """A process killed mid-write can leave a last line without its newline: end it, so the next record
    starts on a line of its own (the torn line is then skipped by `RunLog.records`)."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) != b"\n":
            handle.write(b"\n")


# --- data -----------------------------------------------------------------------------------------------
@dataclass
class RunData:
    tokenizer: Any
    train: Any  # tokenized datasets.Dataset
    eval_rows: list[dict[str, Any]]  # the validation sample (raw rows, with tokenized columns)
    repeats: list[float] | None = None  # per training row: appearances per epoch (--oversample); None: all 1
    later_repeats: dict[int, list[float]] | None = None  # {epoch: per-row repeats from that epoch on} (TASK=K@EPOCH)


def _load_splits(args: argparse.Namespace):
    from liquid.data import load_splits

    wanted = ("train", "validation") if args.validation_file or not args.train_file else ("train",)
    return load_splits(
        args.train_file, args.validation_file, None, dataset=args.dataset, dataset_config=args.dataset_config,
        data_dir=args.data_dir, instruction_column=args.instruction_column,
        response_column=args.response_column, splits=wanted,
    )


def _load_tokenizer(args, ctx: DistributedContext, resume: Path | None, train_split):
    """The checkpoint's tokenizer when resuming; else rank 0 trains (or reloads) it, then the others load it."""
    from liquid.data import load_or_train_tokenizer
    from transformers import AutoTokenizer

    if resume is not None:
        return AutoTokenizer.from_pretrained(resume)
    if args.overwrite_output_dir and ctx.is_main:
        clear_previous_run(Path(args.output_dir))

    def texts() -> Iterator[str]:
        for batch in train_split.iter(batch_size=TOKENIZER_TEXT_BATCH):  # whole batches: no per-row decoding
            for instruction, response in zip(batch["instruction"], batch["response"]):
                yield instruction
                yield response

    directory = Path(args.output_dir) / TOKENIZER_DIR
    if ctx.is_main:
        tokenizer = load_or_train_tokenizer(directory, texts, args.vocab_size, args.number_space)
    barrier(ctx)
    if not ctx.is_main:
        tokenizer = load_or_train_tokenizer(directory, texts, args.vocab_size, args.number_space)
    return tokenizer


RUN_OUTPUTS = (LOG_FILE, TENSORBOARD_DIR, PLOTS_DIR, MONITOR_CSV, TOKENIZER_DIR, ckpt.BEST_DIR)


def clear_previous_run(output_dir: Path) -> list[str]:
    """--overwrite_output_dir: delete what an earlier run left in `output_dir` (only the names a run writes)."""
    removed = []
    for path in sorted(output_dir.glob("*")) + sorted(output_dir.glob(f"{ckpt.TMP_PREFIX}*")):
        if path.name in RUN_OUTPUTS or ckpt.checkpoint_step(path) is not None or path.name.startswith(ckpt.TMP_PREFIX):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path.name)
    if removed:
        logger.warning("--overwrite_output_dir: deleted %s from %s", ", ".join(removed), output_dir)
    return removed


def _columns(dataset, *names: str) -> list[list[Any]]:
    """Whole columns of a `datasets.Dataset` as Python lists, in one Arrow conversion. (`dataset[name]` is a lazy
    column whose iteration decodes row by row: seconds per pass over the shipped 60,000 rows on a 2-core CPU, and the
    setup is part of the time budget.)"""
    if not names:
        return []
    table = dataset.select_columns(list(names)).to_dict()
    return [table[name] for name in names]


def batch_sort_keys(train) -> list[int]:
    """The length-grouped sampler's key per row: label length first, then input length. The decoder's padded length
    sets most of a step's cost; against input + label length this key cuts the padding of one epoch of the shipped
    data from 7.3% to 2.8% of the label tokens and from 21.1% to 19.6% of the input tokens
    (benchmarks/bench_padding.py)."""
    sources, targets = _columns(train, "input_ids", "labels")
    base = 1 + max((len(ids) for ids in sources), default=0)
    return [len(target) * base + len(source) for source, target in zip(sources, targets)]


def oversample_repeats(train, repeats: Mapping[str, float], optional: Iterable[str] = ()) -> list[float]:
    """How often each training row appears per epoch (the sampler's ``repeats``): ``repeats[T]`` for a row whose
    `task` (or else `subset`) is T, 1 for the others. A name that no row has is a `DataError` naming the
    tasks and subsets there are, unless it is in `optional` (a default mix entry: skipped)."""
    from liquid.data import DataError

    present = [name for name in ("task", "subset") if name in train.column_names]
    by_name = dict(zip(present, _columns(train, *present)))
    columns = [by_name.get(name, [""] * len(train)) for name in ("task", "subset")]
    per_row = [1.0] * len(train)
    for name, count in repeats.items():
        for column, kind in zip(columns, ("task", "subset")):
            rows = [i for i, value in enumerate(column) if value == name]
            if rows:
                break
        if not rows and name in optional:
            continue
        if not rows:
            there = sorted(set(columns[0]) - {""})
            subsets = sorted(set(columns[1]) - {""} - set(there))
            raise DataError(f"--oversample {name}={count:g}: no training row has task or subset {name!r} "
                            f"(tasks there: {', '.join(there) or 'none'}"
                            + (f"; subsets: {', '.join(subsets)})" if subsets else ")"))
        for i in rows:
            per_row[i] = count
        logger.info("oversample: the %d rows of %s %r appear %g times per epoch", len(rows), kind, name, count)
    return per_row


def prepare_data(args, ctx: DistributedContext, resume: Path | None) -> RunData:
    from liquid.data import tokenize_dataset

    splits = _load_splits(args)
    user_items = getattr(args, "oversample", None)
    schedule = parse_oversample(oversample_with_defaults(user_items))  # checked before anything is written
    defaults_only = {name for mix in parse_oversample(DEFAULT_OVERSAMPLE).values() for name in mix}
    defaults_only -= {name for mix in parse_oversample(user_items).values() for name in mix}
    row_repeats, later_repeats, in_force = None, {}, {}
    for first_epoch, mix in schedule.items():  # the mix of each epoch that changes it: the earlier entries, updated
        in_force = {**in_force, **mix}
        per_row = oversample_repeats(splits["train"], in_force, optional=defaults_only)
        if first_epoch == 0:
            row_repeats = per_row
        else:
            later_repeats[first_epoch] = per_row
    tokenizer = _load_tokenizer(args, ctx, resume, splits["train"])
    train = tokenize_dataset(splits["train"], tokenizer, args.max_source_length, args.max_target_length)
    eval_rows: list[dict[str, Any]] = []
    if "validation" in splits:
        validation = splits["validation"]
        count = min(args.eval_samples, len(validation))
        indices = sorted(random.Random(args.seed + EVAL_SAMPLE_SEED_OFFSET).sample(range(len(validation)), count))
        sample = tokenize_dataset(validation.select(indices), tokenizer, args.max_source_length,
                                  args.max_target_length)
        eval_rows = [dict(row) for row in sample]
    else:
        logger.warning("no validation split: no validation, no best checkpoint")
    return RunData(tokenizer=tokenizer, train=train, eval_rows=eval_rows, repeats=row_repeats,
                   later_repeats=later_repeats or None)


def build_model(args, tokenizer, resume: Path | None) -> LiquidFoundationModelOptimized:
    """A fresh model for the run's config, or the checkpoint's model (its own config, not today's defaults)."""
    if resume is not None:
        if args.config_overrides or args.loss:
            logger.warning("--resume: the checkpoint's config is used; --set/--loss are ignored")
        model = LiquidFoundationModelOptimized.from_pretrained(resume, use_safetensors=True)
        if len(tokenizer) != model.config.vocab_size:
            raise ckpt.CheckpointError(f"{resume}: its tokenizer has {len(tokenizer)} tokens but the model expects "
                                       f"{model.config.vocab_size}")
        return model
    config: LiquidConfig = build_config(args, vocab_size=len(tokenizer))
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.decoder_start_token_id = tokenizer.bos_token_id
    return LiquidFoundationModelOptimized(config)


def _or_loss(output, name: str) -> torch.Tensor:
    """`output.<name>` of the liquid model, or the plain `loss` of a model that has no such part (e.g. T5)."""
    value = getattr(output, name, None)
    return output.loss if value is None else value


def _loss_parts(output) -> torch.Tensor:
    """(loss, lm, ce, aux, reconstruction, experts/token) of one forward; 0 for parts a model does not have."""
    zero = output.loss.new_zeros(())
    parts = [output.loss, _or_loss(output, "lm_loss"), _or_loss(output, "ce_loss"),
             getattr(output, "aux_loss", None), getattr(output, "reconstruction_loss", None),
             getattr(output, "experts_per_token", None)]
    return torch.stack([(zero if part is None else part).detach().float().mean() for part in parts])


# --- the trainer -------------------------------------------------------------------------------------
class Trainer:
    """Runs one training job; `train(args)` is the usual entry point."""

    def __init__(self, args: argparse.Namespace, ctx: DistributedContext,
                 model_factory: Callable[[argparse.Namespace, Any], nn.Module] | None = None):
        """`model_factory(args, tokenizer)` builds a fresh model instead of `build_model` (any HF seq2seq model:
        the loop only needs `loss` and `logits`; the liquid model's extra losses are logged when present)."""
        self.args = args
        self.ctx = ctx
        self.output_dir = Path(args.output_dir)
        resume = Path(args.resume) if args.resume else None
        self.precision = resolve_precision(args.precision, ctx.device)
        if ctx.device.type == "cpu" and getattr(args, "host_malloc", "keep") == "keep":
            keep_freed_memory()
        self.state = ckpt.load_trainer_state(resume) if resume else ckpt.TrainerState(run_id=ckpt.new_run_id())
        trained_with = (self.state.args or {}).get("optimizer", DEFAULT_OPTIMIZER)
        if resume is not None and trained_with != getattr(args, "optimizer", DEFAULT_OPTIMIZER):
            raise ckpt.CheckpointError(f"{resume}: trained with --optimizer {trained_with}; resume it with the same "
                                       f"--optimizer (got {args.optimizer})")
        self.state.args = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}

        if ctx.is_main:
            ckpt.recover_interrupted_replace(self.output_dir)  # a best/ set aside by a kill goes back first
        barrier(ctx)
        self.best_checkpoint: Path | None = self._existing_best(resuming=resume is not None,
                                                                replacing=args.overwrite_output_dir)

        set_seed(args.seed)
        if getattr(args, "deterministic", False):
            use_deterministic_kernels()
        self.data = prepare_data(args, ctx, resume)  # refuses bad data before anything is written
        self.tokenizer = self.data.tokenizer
        fresh = model_factory is not None and resume is None
        self.model = (model_factory(args, self.tokenizer) if fresh  # refuses a mismatched tokenizer:
                      else build_model(args, self.tokenizer, resume)).to(ctx.device)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.collator = self._make_collator()
        self.sampler, self.loader = self._make_loader()
        self.total_steps = total_steps(self.sampler.batches_in_epoch, args, max(self.data.later_repeats or [0]))
        if args.warmup_steps >= self.total_steps:
            logger.warning("--warmup_steps %d >= total steps %d: the learning rate never reaches its peak",
                           args.warmup_steps, self.total_steps)

        self.optimizer = build_optimizer(self.model, args.learning_rate, args.weight_decay,
                                         getattr(args, "adam_beta2", DEFAULT_ADAM_BETA2),
                                         getattr(args, "optimizer", DEFAULT_OPTIMIZER),
                                         getattr(args, "muon_ns_steps", NS_STEPS),
                                         getattr(args, "muon_until", 1.0))
        self._fit_start: float | None = None  # monotonic clock at the start of fit(); elapsed time is
        self._elapsed_before = self.state.elapsed_seconds  # ... this plus the time since then
        self._next_validation: float | None = None  # elapsed seconds of the next --eval_every_minutes validation
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.scaler = torch.amp.GradScaler(ctx.device.type) if self.precision == "fp16" else None
        if resume is not None:
            self.optimizer.load_state_dict(self.state.optimizer)
            self.scheduler.load_state_dict(self.state.scheduler)
            if self.scaler is not None and self.state.scaler:
                self.scaler.load_state_dict(self.state.scaler)
            logger.info("resuming from %s at step %d (epoch %d, batch %d)", resume, self.state.step,
                        self.state.epoch, self.state.batch_in_epoch)

        self.train_model: nn.Module = self.model
        if ctx.is_distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=device_ids)
        if args.compile:
            self.train_model = torch.compile(self.train_model)
        self.monitor = ActivationMonitor(self.model, every_n_steps=args.monitor_every) if ctx.is_main else None
        self.log = RunLog(self.output_dir, enabled=ctx.is_main)
        self.last_checkpoint: Path | None = None
        if resume is not None:
            ckpt.restore_rng_state(self.state.rng)  # last: everything above may have drawn random numbers

    # --- schedule -------------------------------------------------------------------------------------
    def elapsed_seconds(self) -> float:
        """Wall-clock time of the run so far, across resumes: training, validations and checkpoints, and under
        main.py the setup before fit() too (`_count_setup_time`)."""
        running = time.monotonic() - self._fit_start if self._fit_start is not None else 0.0
        return self._elapsed_before + running

    def progress(self, step: int) -> float:
        """Share of the run done after `step` steps: the larger of the step share and the time share."""
        warmup = self.args.warmup_steps
        by_steps = (step - warmup) / max(1, self.total_steps - warmup)
        budget = self.args.max_time_minutes
        by_time = self.elapsed_seconds() / (budget * 60) if budget else 0.0
        return min(1.0, max(by_steps, by_time, 0.0))

    def lr_factor(self, step: int) -> float:
        """Learning-rate multiplier: linear warmup over `warmup_steps`, then `--lr_schedule` over `progress`."""
        if step < self.args.warmup_steps:
            return step / max(1, self.args.warmup_steps)
        return lr_multiplier(self.progress(step), getattr(self.args, "lr_schedule", DEFAULT_LR_SCHEDULE),
                             getattr(self.args, "decay_share", DEFAULT_DECAY_SHARE))

    def _existing_best(self, resuming: bool = True, replacing: bool = False) -> Path | None:
        """This run's ``best/`` if there is one; its score becomes the bar a new best must pass.

        The checkpoint resumed from may predate ``best/`` (best saved after the last checkpoint), so
        the better of the two scores is kept: ``best/`` is only ever replaced by a better model of the
        same run. Not `resuming` (``--resume auto`` found no checkpoint: the run restarts from step 0),
        the run keeps ``best/``'s run id. An unreadable ``best/`` is refused, never replaced.
        `replacing` (--overwrite_output_dir): the old run, ``best/`` included, is deleted once the data loads.
        """
        best = self.output_dir / ckpt.BEST_DIR
        if replacing or not best.is_dir():
            return None
        try:
            saved = ckpt.load_trainer_state(best)
        except ckpt.CheckpointError as error:
            raise ckpt.CheckpointError(f"{error}; it is kept: use --overwrite_output_dir to replace it, or "
                                       f"another --output_dir") from None
        if not resuming:
            logger.warning("no checkpoint to resume: restarting run %s from step 0; %s stays the bar to beat",
                           saved.run_id, best)
            self.state.run_id = saved.run_id
        elif saved.run_id != self.state.run_id:
            raise ckpt.CheckpointError(f"{best} belongs to another run; use --overwrite_output_dir to replace it")
        if saved.best_metric is not None and (
                self.state.best_metric is None
                or (saved.best_metric, -saved.best_loss) > (self.state.best_metric, -self.state.best_loss)):
            self.state.best_metric, self.state.best_loss = saved.best_metric, saved.best_loss
            self.state.best_step = saved.best_step
        return best

    def _make_collator(self) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
        from liquid.data import Seq2SeqCollator

        return Seq2SeqCollator(self.tokenizer, self.args.max_source_length, self.args.max_target_length)

    def _make_loader(self):
        from liquid.data import LengthGroupedBatchSampler

        global_batch = self.args.batch_size * self.ctx.world_size
        global_sampler = LengthGroupedBatchSampler(batch_sort_keys(self.data.train), global_batch, shuffle=True,
                                                   seed=self.args.seed, mega_batch_mult=self.args.mega_batch_mult,
                                                   drop_last=self.ctx.is_distributed, repeats=self.data.repeats,
                                                   later_repeats=self.data.later_repeats)
        sampler = RankSliceBatchSampler(global_sampler, self.ctx.rank, self.ctx.world_size)
        loader = DataLoader(self.data.train, batch_sampler=sampler, collate_fn=self.collator,
                            num_workers=self.args.num_workers,
                            # own generator: iterating never draws from the global RNG (exact resume)
                            generator=torch.Generator().manual_seed(self.args.seed))
        return sampler, loader

    # --- one step -------------------------------------------------------------------------------------
    def _forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]):
        with autocast_context(self.precision, self.ctx.device):
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"])

    def _to_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(self.ctx.device, non_blocking=True) for key, value in batch.items()}

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def train_step(self, micro_batches: Sequence[Mapping[str, torch.Tensor]], stop_requested: bool) -> StepStats:
        """Forward/backward over the micro-batches, then (if finite) clip and update. Returns global stats."""
        self.train_model.train()
        count = len(micro_batches)
        parts = torch.zeros(6, device=self.ctx.device)  # loss, lm, ce, aux, reconstruction, experts/token
        tokens = 0
        output = None
        for index, batch in enumerate(micro_batches):
            batch = self._to_device(batch)
            last = index == count - 1
            sync = self.train_model.no_sync() if self.ctx.is_distributed and not last else nullcontext()
            with sync:
                output = self._forward(self.train_model, batch)
                self._backward(output.loss / count)
            parts += _loss_parts(output) / count
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != IGNORE_INDEX).sum())
        flags = torch.tensor([tokens, float(not torch.isfinite(parts[0])), float(stop_requested)],
                             device=self.ctx.device)
        reduced = all_reduce_sum(self.ctx, torch.cat([parts, flags])).tolist()
        world = self.ctx.world_size
        stats = StepStats(*[value / world for value in reduced[:6]], tokens=int(reduced[6]),
                          finite=reduced[7] == 0, stop_requested=reduced[8] > 0)
        stats.expert_load = [load.detach().float().tolist() for load in getattr(output, "expert_load", None) or ()]
        if hasattr(self.model, "training_diagnostics"):
            stats.diagnostics = self.model.training_diagnostics(output)
        stats.lr = self.scheduler.get_last_lr()[0]
        if stats.finite:
            stats.finite = self._update(stats)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.monitor is not None:
            self.monitor.step()
        return stats

    def _update(self, stats: StepStats) -> bool:
        """Clip and apply the gradients; False (nothing applied) when the gradient norm is not finite."""
        if hasattr(self.optimizer, "set_progress"):  # --optimizer muon: Muon -> AdamW at --muon_until
            self.optimizer.set_progress(self.progress(self.state.step))
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        stats.grad_norm = float(grad_norm)
        if self.scaler is not None:  # the scaler skips non-finite steps itself and lowers its scale
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif math.isfinite(stats.grad_norm):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self.scaler is not None or math.isfinite(stats.grad_norm)

    def diagnose(self, micro_batches: Sequence[Mapping[str, torch.Tensor]]) -> list[str]:
        """Re-run a step's forward/backward under a monitor that records every module; its alerts."""
        bad_parameters = nonfinite_parameters(self.model)  # values first: a NaN weight is the usual culprit
        with ActivationMonitor(self.model, every_n_steps=1) as monitor:
            self.model.train()
            for batch in micro_batches:
                self._backward(self._forward(self.model, self._to_device(batch)).loss)
            monitor.step()
            alerts = list(monitor.alerts)
        bad_gradients = nonfinite_parameters(self.model, gradients=True)
        self.optimizer.zero_grad(set_to_none=True)
        named = []
        if bad_parameters:
            named.append(describe_nonfinite("parameter", bad_parameters))
        if bad_gradients:
            named.append(describe_nonfinite("gradient", bad_gradients))
        return named + alerts

    # --- validation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss (target-token weighted) and answer accuracy (greedy decoding) on the validation sample."""
        from liquid.evaluation import generate_answers
        from liquid.metrics import accuracy

        rows = self.data.eval_rows
        self.model.eval()
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]) + len(rows[i]["labels"]))
        sums = {"val_loss": 0.0, "val_lm_loss": 0.0, "val_ce_loss": 0.0}
        weight_total = 0
        for start in range(0, len(order), self.args.batch_size):
            batch = self._to_device(self.collator([rows[i] for i in order[start:start + self.args.batch_size]]))
            output = self._forward(self.model, batch)
            weight = int((batch["labels"] != IGNORE_INDEX).sum())
            sums["val_loss"] += float(output.loss) * weight
            sums["val_lm_loss"] += float(_or_loss(output, "lm_loss")) * weight
            sums["val_ce_loss"] += float(_or_loss(output, "ce_loss")) * weight
            weight_total += weight
        result = {key: value / max(weight_total, 1) for key, value in sums.items()}
        with autocast_context(self.precision, self.ctx.device):
            predictions = generate_answers(
                self.model, self.tokenizer, [row["instruction"] for row in rows],
                batch_size=max(self.args.batch_size, EVAL_GENERATION_BATCH_SIZE),
                max_source_length=self.args.max_source_length, progress=False,
                max_new_tokens=self.args.max_target_length, do_sample=False, num_beams=1,
            )
        scores = [accuracy(prediction, row) for prediction, row in zip(predictions, rows)]
        result["val_accuracy"] = sum(scores) / max(len(scores), 1)
        per_task: dict[str, list[float]] = {}
        for score, row in zip(scores, rows):
            per_task.setdefault(row.get("task") or "other", []).append(score)
        for task, values in sorted(per_task.items()):
            result[f"val_accuracy_{task}"] = sum(values) / len(values)
        return result

    # --- checkpoints ----------------------------------------------------------------------------------
    def _snapshot(self) -> None:
        self.state.optimizer = self.optimizer.state_dict()
        self.state.scheduler = self.scheduler.state_dict()
        self.state.scaler = self.scaler.state_dict() if self.scaler is not None else None
        self.state.rng = ckpt.capture_rng_state()

    def save(self, name: str | None = None) -> Path:
        """Save ``checkpoint-<step>`` (or `name`) on rank 0, prune old ones; all ranks wait for it."""
        target = self.output_dir / (name or f"{ckpt.CHECKPOINT_PREFIX}{self.state.step}")
        barrier(self.ctx)
        if self.ctx.is_main:
            self._snapshot()
            ckpt.save_checkpoint(target, self.model, self.tokenizer, self.state)
            if name is None:
                ckpt.prune_checkpoints(self.output_dir, self.args.keep_last)
        barrier(self.ctx)
        return target

    def _is_best(self, result: Mapping[str, float]) -> bool:
        """Higher validation accuracy wins; on a tie, lower validation loss."""
        if self.state.best_metric is None:
            return True
        return (result["val_accuracy"], -result["val_loss"]) > (self.state.best_metric, -self.state.best_loss)

    def _validate(self) -> dict[str, float] | None:
        """Rank 0 evaluates, logs, and keeps ``best/``; the other ranks wait."""
        if not self.data.eval_rows:
            return None
        result = None
        if self.ctx.is_main:
            result = self.evaluate()
            self.log.write("eval", self.state.step, {**result, "elapsed_minutes": self.elapsed_seconds() / 60})
            logger.info("step %d: %s", self.state.step,
                        ", ".join(f"{key} {value:.4f}" for key, value in result.items()))
            if self._is_best(result):
                self.state.best_metric, self.state.best_loss = result["val_accuracy"], result["val_loss"]
                self.state.best_step = self.state.step
                self._snapshot()
                self.best_checkpoint = ckpt.save_checkpoint(self.output_dir / ckpt.BEST_DIR, self.model,
                                                            self.tokenizer, self.state)
        barrier(self.ctx)
        return result

    # --- the loop -------------------------------------------------------------------------------------
    def _log_step(self, stats: StepStats, seconds: float, bar) -> None:
        lr = stats.lr
        tokens_per_s = stats.tokens / max(seconds, 1e-9)
        bar.set_postfix(step=self.state.step, loss=f"{stats.loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")
        if self.state.step % self.args.log_every and stats.finite:
            return
        values = {"epoch": self.state.epoch, "loss": stats.loss, "lm_loss": stats.lm_loss,
                  "ce_loss": stats.ce_loss, "aux_loss": stats.aux_loss,
                  "reconstruction_loss": stats.reconstruction_loss, "experts_per_token": stats.experts_per_token,
                  "grad_norm": stats.grad_norm, "lr": lr, "tokens_per_s": tokens_per_s,
                  "finite": stats.finite, "expert_load": stats.expert_load, **stats.diagnostics}
        self.log.write("train", self.state.step, values)
        if self.monitor is not None:
            for alert in self.monitor.alerts[self._alerts_seen:]:
                logger.warning("monitor: %s", alert)
                self.log.write("alert", self.state.step, {"message": alert})
            self._alerts_seen = len(self.monitor.alerts)

    def _micro_batch_groups(self) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Groups of `grad_accum_steps` micro-batches from the current position to the end of the epoch."""
        self.sampler.set_epoch(self.state.epoch)
        self.sampler.set_start_batch(self.state.batch_in_epoch)
        iterator = iter(self.loader)
        position = self.state.batch_in_epoch
        batches = self.sampler.batches_in_epoch(self.state.epoch)
        while position < batches:
            size = min(self.args.grad_accum_steps, batches - position)
            yield [next(iterator) for _ in range(size)]
            position += size

    def _validation_due(self, step: int) -> bool:
        """Every --eval_every steps, and/or each time another --eval_every_minutes of training have passed."""
        if self.args.eval_every and step % self.args.eval_every == 0:
            return True
        interval = 60 * (getattr(self.args, "eval_every_minutes", 0.0) or 0.0)
        if not interval:
            return False
        elapsed = self.elapsed_seconds()
        if self._next_validation is None:  # the first interval boundary after where this run (or resume) started
            self._next_validation = interval * (math.floor(self._elapsed_before / interval) + 1)
        budget = 60 * (self.args.max_time_minutes or math.inf)
        if elapsed < self._next_validation or self._next_validation >= budget:  # the end of the budget: fit() validates
            return False
        self._next_validation = interval * (math.floor(elapsed / interval) + 1)
        return True

    def _time_is_up(self) -> bool:
        limit = self.args.max_time_minutes
        return limit is not None and self.elapsed_seconds() >= limit * 60

    def _stop_on_bad_steps(self, stats: StepStats, group) -> None:
        self.state.bad_steps_in_row = 0 if stats.finite else self.state.bad_steps_in_row + 1
        if not stats.finite:
            bad = nonfinite_parameters(self.model)
            logger.warning("step %d: non-finite loss or gradient (loss %s, grad norm %s): step skipped%s",
                           self.state.step, stats.loss, stats.grad_norm,
                           f"; {describe_nonfinite('parameter', bad)}" if bad else "")
        if self.state.bad_steps_in_row >= self.args.max_bad_steps:
            alerts = self.diagnose(group)
            raise NonFiniteLossError(
                f"stopping: {self.state.bad_steps_in_row} non-finite steps in a row (last at step "
                f"{self.state.step}); monitor: {'; '.join(alerts) if alerts else 'no alerts'}"
            )

    def _progress_bar(self):
        """Steps out of the total; with a time budget, seconds out of the budget (the run's real length)."""
        common = dict(disable=not self.ctx.is_main, dynamic_ncols=True)
        if self.args.max_time_minutes is not None:
            return tqdm(total=round(self.args.max_time_minutes * 60), initial=round(self._elapsed_before),
                        desc="training (time budget)", unit="s", **common)
        return tqdm(total=self.total_steps, initial=self.state.step, desc="training", unit="step", **common)

    def _advance_bar(self, bar) -> None:
        if self.args.max_time_minutes is None:
            bar.update(1)
        else:
            bar.update(max(0, min(bar.total, round(self.elapsed_seconds())) - bar.n))

    def fit(self, stop: StopRequest) -> TrainResult:
        self._fit_start = time.monotonic()
        self._count_setup_time()
        self._alerts_seen = 0
        reason = "completed"
        bar = self._progress_bar()
        saved_at = evaluated_at = None
        while self.state.step < self.total_steps and reason == "completed":
            for group in self._micro_batch_groups():
                tick = time.perf_counter()
                stats = self.train_step(group, stop.requested or self._time_is_up())
                self.state.step += 1
                self.state.batch_in_epoch += len(group)
                if self.state.batch_in_epoch >= self.sampler.batches_in_epoch(self.state.epoch):
                    self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
                self.state.elapsed_seconds = self.elapsed_seconds()
                self._advance_bar(bar)
                self._log_step(stats, time.perf_counter() - tick, bar)
                self._stop_on_bad_steps(stats, group)
                step = self.state.step
                if self._validation_due(step):
                    self._validate()
                    evaluated_at = step
                if self.args.save_every and step % self.args.save_every == 0:
                    self.last_checkpoint, saved_at = self.save(), step
                if stats.stop_requested:
                    reason = "signal" if stop.requested else "time_limit"
                if reason != "completed" or step >= self.total_steps:
                    break
        bar.close()
        final_eval = None
        if reason in ("completed", "time_limit") and evaluated_at != self.state.step:  # the budget is the plan
            final_eval = self._validate()
        if saved_at != self.state.step:
            self.last_checkpoint = self.save()
        self._finish()
        return TrainResult(output_dir=self.output_dir, stop_reason=reason, step=self.state.step,
                           last_checkpoint=self.last_checkpoint, best_checkpoint=self.best_checkpoint,
                           best_metric=self.state.best_metric, final_eval=final_eval)

    def _count_setup_time(self) -> None:
        """With a time budget and `args.started_at` (main.py's clock at process start), the time before fit() --
        imports, data loading, tokenizer training, model construction -- is part of the elapsed time: the budget
        is the process's wall clock, whatever the machine's speed, not the training loop's alone."""
        started = getattr(self.args, "started_at", None)
        if started is None or self.args.max_time_minutes is None:
            return
        setup = max(0.0, self._fit_start - started)
        self._elapsed_before += setup
        self.state.elapsed_seconds = self._elapsed_before
        logger.info("setup took %.1f s of the %g-minute budget", setup, self.args.max_time_minutes)

    def _finish(self) -> None:
        """Plots, monitor CSV, closed writers (rank 0)."""
        if self.monitor is not None:
            self.monitor.remove()
        if not self.ctx.is_main:
            return
        plot_dir = self.output_dir / PLOTS_DIR
        plots.plot_run(self.log.records(), plot_dir)
        if self.monitor is not None and self.monitor.history:
            self.monitor.to_csv(self.output_dir / MONITOR_CSV)
            self.monitor.plot(plot_dir / MONITOR_PLOT)
        self.log.close()


def train(args: argparse.Namespace, model_factory=None) -> TrainResult:
    """Run a training job described by `parse_args`' namespace (single process or under torchrun);
    `model_factory(args, tokenizer)`, if given, builds the model (see `Trainer`)."""
    ctx = init_distributed(args.device)
    try:
        args.output_dir = broadcast_object(ctx, args.output_dir)  # ranks may have stamped different times
        trainer = Trainer(args, ctx, model_factory)
        with StopRequest() as stop:
            return trainer.fit(stop)
    finally:
        cleanup_distributed()


__all__ = [
    "CPU_AUTO_PRECISION", "NonFiniteLossError", "StepStats", "StopRequest", "TrainResult", "Trainer",
    "autocast_context", "build_optimizer", "cpu_bf16_units", "resolve_precision", "set_seed", "total_steps",
    "train",
]
