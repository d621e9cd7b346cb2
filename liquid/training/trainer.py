"""The training loop: data, model, AdamW + cosine schedule, mixed precision, DDP, validation, checkpoints.

One optimizer step consumes one global batch split into `grad_accum_steps` micro-batches:

    g = (1/A) sum_{a=1..A} grad L(micro-batch a)      (A = grad_accum_steps; DDP also averages over ranks)
    g <- g * min(1, max_grad_norm / ||g||_2)           (clipping)
    AdamW step with lr_t = lr * t / warmup                       for t < warmup
                     lr_t = lr * 0.5 * (1 + cos(pi * progress))  after (progress from 0 to 1 over the rest)

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
import random
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from liquid.config import LiquidConfig
from liquid.modeling import LiquidFoundationModelOptimized
from liquid.monitor import ActivationMonitor
from liquid.training import checkpoint as ckpt
from liquid.training import plots
from liquid.training.args import build_config
from liquid.training.distributed import (
    DistributedContext, RankSliceBatchSampler, all_reduce_sum, barrier, broadcast_object,
    cleanup_distributed, init_distributed,
)

logger = logging.getLogger(__name__)

# Measured by benchmarks/bench_precision.py on this project's 2-core AMD CPU (no AVX512-BF16 / AMX):
# bf16 autocast is slower than fp32 there, so fp32 is --precision auto on a CPU without bf16 matrix units.
CPU_AUTO_PRECISION = "fp32"
# CPUs with these run bf16 matmuls several times faster than fp32 (issue 10: AMX 1.9 TFLOP/s vs 270 GFLOP/s
# fp32), so auto picks bf16 there: (name, probe in torch.cpu), first match wins.
CPU_BF16_UNITS = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FUSED_ADAMW_DEVICES = ("cpu", "cuda")
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tb"
PLOTS_DIR = "plots"
MONITOR_CSV = "monitor.csv"
MONITOR_PLOT = "monitor.png"
TOKENIZER_DIR = "tokenizer"
EVAL_SAMPLE_SEED_OFFSET = 1  # the validation sample is drawn with seed + this, apart from the data order
NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
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


# --- pieces that tests and benchmarks use on their own ------------------------------------------------
def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_bf16_units() -> str | None:
    """The CPU's bf16 matrix instructions ("AMX" or "AVX512-BF16") as torch detects them, None without."""
    for name, probe in CPU_BF16_UNITS:
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return name
    return None


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on CUDA (fp16 where bf16 is unsupported); on CPU bf16 where it has bf16 matrix
    units (`cpu_bf16_units`), else `CPU_AUTO_PRECISION`. Logs what auto chose and why."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    units = cpu_bf16_units()
    chosen = "bf16" if units else CPU_AUTO_PRECISION
    logger.info("--precision auto on CPU (capability %s, bf16 matrix units: %s): %s",
                torch.backends.cpu.get_cpu_capability(), units or "none", chosen)
    return chosen


def autocast_context(precision: str, device: torch.device):
    """The forward-pass context of a precision (fp32: none)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with decay on parameters of ndim >= 2, except embedding tables and norm weights."""
    no_decay = {id(p) for module in model.modules() if isinstance(module, NO_DECAY_MODULES)
                for p in module.parameters(recurse=False)}
    decay, rest = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 and id(param) not in no_decay else rest).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    # fused AdamW (one kernel over all tensors, same update) is about 4x faster than foreach on CPU
    # (benchmarks/NOTES.md); used where every parameter is a float tensor on CPU or CUDA
    fused = all(p.device.type in FUSED_ADAMW_DEVICES and p.is_floating_point() for p in decay + rest)
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused or None)


def steps_per_epoch(batches_per_epoch: int, grad_accum_steps: int) -> int:
    return math.ceil(batches_per_epoch / grad_accum_steps)


def total_steps(batches_per_epoch: int, args: argparse.Namespace) -> int:
    """Optimizer steps of the run: `num_epochs` epochs, capped by `max_steps` when it is > 0."""
    steps = args.num_epochs * steps_per_epoch(batches_per_epoch, args.grad_accum_steps)
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
        with self.path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- data -----------------------------------------------------------------------------------------------
@dataclass
class RunData:
    tokenizer: Any
    train: Any  # tokenized datasets.Dataset
    eval_rows: list[dict[str, Any]]  # the validation sample (raw rows, with tokenized columns)


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

    def texts() -> Iterator[str]:
        for row in train_split:
            yield row["instruction"]
            yield row["response"]

    directory = Path(args.output_dir) / TOKENIZER_DIR
    if ctx.is_main:
        tokenizer = load_or_train_tokenizer(directory, texts, args.vocab_size)
    barrier(ctx)
    if not ctx.is_main:
        tokenizer = load_or_train_tokenizer(directory, texts, args.vocab_size)
    return tokenizer


def prepare_data(args, ctx: DistributedContext, resume: Path | None) -> RunData:
    from liquid.data import tokenize_dataset

    splits = _load_splits(args)
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
    return RunData(tokenizer=tokenizer, train=train, eval_rows=eval_rows)


def build_model(args, tokenizer, resume: Path | None) -> LiquidFoundationModelOptimized:
    """A fresh model for the run's config, or the checkpoint's model (its own config, not today's defaults)."""
    if resume is not None:
        if args.config_overrides or args.loss:
            logger.warning("--resume: the checkpoint's config is used; --set/--loss are ignored")
        return LiquidFoundationModelOptimized.from_pretrained(resume)
    config: LiquidConfig = build_config(args, vocab_size=len(tokenizer))
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.decoder_start_token_id = tokenizer.bos_token_id
    return LiquidFoundationModelOptimized(config)


# --- the trainer -------------------------------------------------------------------------------------
class Trainer:
    """Runs one training job; `train(args)` is the usual entry point."""

    def __init__(self, args: argparse.Namespace, ctx: DistributedContext):
        self.args = args
        self.ctx = ctx
        self.output_dir = Path(args.output_dir)
        resume = Path(args.resume) if args.resume else None
        self.precision = resolve_precision(args.precision, ctx.device)
        self.state = ckpt.load_trainer_state(resume) if resume else ckpt.TrainerState()
        self.state.args = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}

        set_seed(args.seed)
        self.data = prepare_data(args, ctx, resume)
        self.tokenizer = self.data.tokenizer
        self.model = build_model(args, self.tokenizer, resume).to(ctx.device)
        self.collator = self._make_collator()
        self.sampler, self.loader = self._make_loader()
        self.batches_per_epoch = len(self.sampler)
        self.total_steps = total_steps(self.batches_per_epoch, args)
        if args.warmup_steps >= self.total_steps:
            logger.warning("--warmup_steps %d >= total steps %d: the learning rate never reaches its peak",
                           args.warmup_steps, self.total_steps)

        self.optimizer = build_optimizer(self.model, args.learning_rate, args.weight_decay)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, args.warmup_steps, self.total_steps)
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
        self.best_checkpoint: Path | None = (self.output_dir / ckpt.BEST_DIR
                                             if (self.output_dir / ckpt.BEST_DIR).is_dir() else None)
        self.last_checkpoint: Path | None = None
        if resume is not None:
            ckpt.restore_rng_state(self.state.rng)  # last: everything above may have drawn random numbers

    def _make_collator(self) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
        from liquid.data import Seq2SeqCollator

        return Seq2SeqCollator(self.tokenizer, self.args.max_source_length, self.args.max_target_length)

    def _make_loader(self):
        from liquid.data import LengthGroupedBatchSampler

        lengths = [len(s) + len(t) for s, t in zip(self.data.train["input_ids"], self.data.train["labels"])]
        global_batch = self.args.batch_size * self.ctx.world_size
        global_sampler = LengthGroupedBatchSampler(lengths, global_batch, shuffle=True, seed=self.args.seed,
                                                   drop_last=self.ctx.is_distributed)
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
            parts += torch.stack([output.loss.detach().float(), output.lm_loss.detach().float(),
                                  output.ce_loss.detach().float(), output.aux_loss.detach().float(),
                                  output.reconstruction_loss.detach().float(),
                                  output.experts_per_token.detach().float().mean()]) / count
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != IGNORE_INDEX).sum())
        flags = torch.tensor([tokens, float(not torch.isfinite(parts[0])), float(stop_requested)],
                             device=self.ctx.device)
        reduced = all_reduce_sum(self.ctx, torch.cat([parts, flags])).tolist()
        world = self.ctx.world_size
        stats = StepStats(*[value / world for value in reduced[:6]], tokens=int(reduced[6]),
                          finite=reduced[7] == 0, stop_requested=reduced[8] > 0)
        stats.expert_load = [load.detach().float().tolist() for load in output.expert_load]
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
        with ActivationMonitor(self.model, every_n_steps=1) as monitor:
            self.model.train()
            for batch in micro_batches:
                self._backward(self._forward(self.model, self._to_device(batch)).loss)
            monitor.step()
            alerts = list(monitor.alerts)
        self.optimizer.zero_grad(set_to_none=True)
        return alerts

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
            sums["val_lm_loss"] += float(output.lm_loss) * weight
            sums["val_ce_loss"] += float(output.ce_loss) * weight
            weight_total += weight
        result = {key: value / max(weight_total, 1) for key, value in sums.items()}
        with autocast_context(self.precision, self.ctx.device):
            predictions = generate_answers(
                self.model, self.tokenizer, [row["instruction"] for row in rows], batch_size=self.args.batch_size,
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
            self.log.write("eval", self.state.step, result)
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
        bar.set_postfix(loss=f"{stats.loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")
        if self.state.step % self.args.log_every and stats.finite:
            return
        values = {"epoch": self.state.epoch, "loss": stats.loss, "lm_loss": stats.lm_loss,
                  "ce_loss": stats.ce_loss, "aux_loss": stats.aux_loss,
                  "reconstruction_loss": stats.reconstruction_loss, "experts_per_token": stats.experts_per_token,
                  "grad_norm": stats.grad_norm, "lr": lr, "tokens_per_s": tokens_per_s,
                  "finite": stats.finite, "expert_load": stats.expert_load}
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
        while position < self.batches_per_epoch:
            size = min(self.args.grad_accum_steps, self.batches_per_epoch - position)
            yield [next(iterator) for _ in range(size)]
            position += size

    def _time_is_up(self, start: float) -> bool:
        limit = self.args.max_time_minutes
        return limit is not None and time.monotonic() - start >= limit * 60

    def _stop_on_bad_steps(self, stats: StepStats, group) -> None:
        self.state.bad_steps_in_row = 0 if stats.finite else self.state.bad_steps_in_row + 1
        if not stats.finite:
            logger.warning("step %d: non-finite loss or gradient (loss %s, grad norm %s): step skipped",
                           self.state.step, stats.loss, stats.grad_norm)
        if self.state.bad_steps_in_row >= self.args.max_bad_steps:
            alerts = self.diagnose(group)
            raise NonFiniteLossError(
                f"stopping: {self.state.bad_steps_in_row} non-finite steps in a row (last at step "
                f"{self.state.step}); monitor: {'; '.join(alerts) if alerts else 'no alerts'}"
            )

    def fit(self, stop: StopRequest) -> TrainResult:
        start = time.monotonic()
        self._alerts_seen = 0
        reason = "completed"
        bar = tqdm(total=self.total_steps, initial=self.state.step, desc="training", unit="step",
                   disable=not self.ctx.is_main, dynamic_ncols=True)
        saved_at = evaluated_at = None
        while self.state.step < self.total_steps and reason == "completed":
            for group in self._micro_batch_groups():
                tick = time.perf_counter()
                stats = self.train_step(group, stop.requested or self._time_is_up(start))
                self.state.step += 1
                self.state.batch_in_epoch += len(group)
                if self.state.batch_in_epoch >= self.batches_per_epoch:
                    self.state.epoch, self.state.batch_in_epoch = self.state.epoch + 1, 0
                bar.update(1)
                self._log_step(stats, time.perf_counter() - tick, bar)
                self._stop_on_bad_steps(stats, group)
                step = self.state.step
                if self.args.eval_every and step % self.args.eval_every == 0:
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
        if reason == "completed" and evaluated_at != self.state.step:
            final_eval = self._validate()
        if saved_at != self.state.step:
            self.last_checkpoint = self.save()
        self._finish()
        return TrainResult(output_dir=self.output_dir, stop_reason=reason, step=self.state.step,
                           last_checkpoint=self.last_checkpoint, best_checkpoint=self.best_checkpoint,
                           best_metric=self.state.best_metric, final_eval=final_eval)

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


def train(args: argparse.Namespace) -> TrainResult:
    """Run a training job described by `parse_args`' namespace (single process or under torchrun)."""
    ctx = init_distributed(args.device)
    try:
        args.output_dir = broadcast_object(ctx, args.output_dir)  # ranks may have stamped different times
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        trainer = Trainer(args, ctx)
        with StopRequest() as stop:
            return trainer.fit(stop)
    finally:
        cleanup_distributed()


__all__ = [
    "CPU_AUTO_PRECISION", "NonFiniteLossError", "StepStats", "StopRequest", "TrainResult", "Trainer",
    "autocast_context", "build_optimizer", "cpu_bf16_units", "resolve_precision", "set_seed", "total_steps",
    "train",
]
