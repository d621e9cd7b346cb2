"""Checkpoints: a Hugging Face model directory plus the trainer state, written atomically.

Layout of a run directory::

    <output_dir>/checkpoint-<step>/   config.json, model.safetensors, generation_config.json,
                                      tokenizer files, trainer_state.pt, run_args.json
    <output_dir>/best/                the same, for the best validation accuracy so far

A checkpoint is first written to ``<output_dir>/.tmp-<random>`` and then renamed into place with
`os.replace`, so a crash never leaves a half-written checkpoint under a final name. Only the last
`keep_last` ``checkpoint-*`` directories are kept; ``best/`` is never pruned.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

TRAINER_STATE_FILE = "trainer_state.pt"
RUN_ARGS_FILE = "run_args.json"
MODEL_CONFIG_FILE = "config.json"
CHECKPOINT_PREFIX = "checkpoint-"
BEST_DIR = "best"
TMP_PREFIX = ".tmp-"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


@dataclass
class TrainerState:
    """Everything beyond the weights that an exact resume needs."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # global batches of the current epoch already consumed
    best_metric: float | None = None  # best validation accuracy so far
    best_loss: float | None = None  # its validation loss (breaks accuracy ties)
    best_step: int | None = None
    bad_steps_in_row: int = 0
    elapsed_seconds: float = 0.0  # training wall-clock time so far (the time-budget schedule resumes from it)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)


def capture_rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU) and every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_step(path: Path) -> int | None:
    """The step in a ``checkpoint-<step>`` name, None for any other name."""
    match = _CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / TRAINER_STATE_FILE).is_file()


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete ``checkpoint-<step>`` directories of a run, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if checkpoint_step(p) is not None and is_checkpoint(p)]
    return sorted(found, key=lambda p: checkpoint_step(p))


def find_latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def resolve_model_dir(path: str | Path) -> Path:
    """A directory holding a saved model: `path` itself, else its ``best/``, else its latest checkpoint."""
    path = Path(path)
    if (path / MODEL_CONFIG_FILE).is_file():
        return path
    if (path / BEST_DIR / MODEL_CONFIG_FILE).is_file():
        return path / BEST_DIR
    latest = find_latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: no model there (no config.json, best/ or checkpoint-*)")
    return latest


def _replace_dir(source: Path, target: Path) -> None:
    """Atomically move the finished `source` directory to `target`, replacing an older `target`."""
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=TMP_PREFIX))
        os.replace(target, old / target.name)
        os.replace(source, target)
        shutil.rmtree(old)
    else:
        os.replace(source, target)


def save_checkpoint(target: Path, model, tokenizer, state: TrainerState) -> Path:
    """Write model (HF format), tokenizer, trainer state and run args to `target`, atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=TMP_PREFIX))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save(asdict(state), tmp / TRAINER_STATE_FILE)
        (tmp / RUN_ARGS_FILE).write_text(json.dumps(state.args, indent=2, default=str), encoding="utf-8")
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved checkpoint %s", target)
    return target


def prune_checkpoints(output_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` ``checkpoint-*`` directories; returns the deleted ones."""
    checkpoints = list_checkpoints(output_dir)
    stale = checkpoints[:-keep_last] if keep_last > 0 else checkpoints
    for path in stale:
        shutil.rmtree(path)
    return stale


def load_trainer_state(checkpoint: Path) -> TrainerState:
    """Read ``trainer_state.pt`` (our own file: it holds numpy RNG state, so not weights-only)."""
    raw = torch.load(Path(checkpoint) / TRAINER_STATE_FILE, map_location="cpu", weights_only=False)
    return TrainerState(**raw)


__all__ = [
    "BEST_DIR", "CHECKPOINT_PREFIX", "TrainerState", "capture_rng_state", "checkpoint_step",
    "find_latest_checkpoint", "is_checkpoint", "list_checkpoints", "load_trainer_state",
    "prune_checkpoints", "resolve_model_dir", "restore_rng_state", "save_checkpoint",
]
