"""Checkpoints: a Hugging Face model directory plus the trainer state, written atomically, never unpickled.

Layout of a run directory::

    <output_dir>/checkpoint-<step>/   config.json, model.safetensors, generation_config.json, tokenizer files,
                                      trainer_state.json + trainer_state.safetensors, run_args.json,
                                      manifest.json (written last)
    <output_dir>/best/                the same, for the best validation accuracy so far

Trainer state (optimizer, scheduler, scaler, RNG states, position in the epoch) is split by
`encode_state` into plain JSON and a flat dict of tensors stored with safetensors: loading it never
runs code (no pickle, no `torch.load`). A ``trainer_state.pt`` (the old pickled format, or a planted
file) is refused, never opened.

Integrity: ``manifest.json`` lists the SHA-256 of every other file and the run id. A checkpoint is
valid only if every listed file is present with that digest and no other file is there
(`verify_checkpoint`); `find_latest_checkpoint` skips invalid ones with a warning naming them.

A checkpoint is first written to ``<output_dir>/.tmp-<random>`` and then renamed into place with
`os.replace`, so a crash never leaves a half-written checkpoint under a final name. Only the last
`keep_last` ``checkpoint-*`` directories are kept; ``best/`` is never pruned.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

STATE_JSON_FILE = "trainer_state.json"
STATE_TENSORS_FILE = "trainer_state.safetensors"
LEGACY_PICKLE_FILE = "trainer_state.pt"  # old pickled format: refused, never loaded
MANIFEST_FILE = "manifest.json"
RUN_ARGS_FILE = "run_args.json"
LOG_FILE = "log.jsonl"  # the run's log (written by the trainer): a directory holding one holds a run
MODEL_CONFIG_FILE = "config.json"
CHECKPOINT_PREFIX = "checkpoint-"
BEST_DIR = "best"
TMP_PREFIX = ".tmp-"
MANIFEST_FORMAT = 1
HASH_CHUNK_BYTES = 1 << 20
# Test hook for the kill harness: seconds to sleep after each file of a checkpoint is written, so that a
# kill -9 can land in the middle of a write. Unset in normal runs.
WRITE_DELAY_ENV = "LIQUID_CHECKPOINT_WRITE_DELAY"
_CHECKPOINT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
# Markers of the JSON encoding of values JSON has no type for.
_TENSOR, _NDARRAY, _TUPLE, _ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, incomplete, corrupted, foreign, old pickle format)."""


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
    run_id: str = ""  # stays the same across resumes; tells this run's checkpoints from another run's
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(4).hex()}"


# --- trainer state <-> JSON + tensors (no pickle) ---------------------------------------------------
def encode_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able copy of `value`; tensors and numpy arrays move to `tensors` under numbered keys.

    Allowed: None, bool, int, float, str, list, tuple, dict (any scalar keys), torch.Tensor, np.ndarray.
    Anything else raises TypeError: the state must never need pickle to be read back.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(value.astype(np.int64) if value.dtype == np.uint32 else value.copy())
        return {_NDARRAY: key, "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {_TUPLE: [encode_state(item, tensors) for item in value]}
    if isinstance(value, list):
        return [encode_state(item, tensors) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return {key: encode_state(item, tensors) for key, item in value.items()}
        return {_ITEMS: [[encode_state(key, tensors), encode_state(item, tensors)] for key, item in value.items()]}
    raise TypeError(f"trainer state holds a {type(value).__name__}, which is not saved without pickle")


def decode_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `encode_state`."""
    if isinstance(value, list):
        return [decode_state(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        return tensors[value[_TENSOR]]
    if _NDARRAY in value:
        return tensors[value[_NDARRAY]].numpy().astype(np.dtype(value["dtype"]))
    if _TUPLE in value:
        return tuple(decode_state(item, tensors) for item in value[_TUPLE])
    if _ITEMS in value:
        return {decode_state(key, tensors): decode_state(item, tensors) for key, item in value[_ITEMS]}
    return {key: decode_state(item, tensors) for key, item in value.items()}


def capture_rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU) and every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state` (also after a JSON round trip, which turns tuples into lists)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- discovery and integrity ----------------------------------------------------------------------
def checkpoint_step(path: Path) -> int | None:
    """The step in a ``checkpoint-<step>`` name, None for any other name."""
    match = _CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_checkpoint(path: Path) -> bool:
    """Whether `path` looks like a training checkpoint (has a manifest); see `verify_checkpoint` for validity."""
    return (Path(path) / MANIFEST_FILE).is_file()


def looks_like_run_dir(path: Path) -> list[str]:
    """Names of what marks `path` as holding a run's checkpoints (empty: safe to start a run there)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir()
                  if p.is_dir() and (checkpoint_step(p) is not None or p.name == BEST_DIR))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _relative_files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    """The manifest of a checkpoint; CheckpointError if there is none or it is not valid JSON."""
    path = Path(checkpoint) / MANIFEST_FILE
    if not path.is_file():
        if (Path(checkpoint) / LEGACY_PICKLE_FILE).is_file():
            raise CheckpointError(f"{checkpoint}: old pickled trainer_state.pt, refused (unpickling can run "
                                  f"code); it cannot be resumed, but its weights load with evaluate.py")
        raise CheckpointError(f"{checkpoint}: not a training checkpoint (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{path}: not a checkpoint manifest")
    return manifest


def verify_checkpoint(checkpoint: Path) -> dict[str, Any]:
    """Check every file against the manifest; returns the manifest, raises CheckpointError naming the problem."""
    checkpoint = Path(checkpoint)
    manifest = read_manifest(checkpoint)
    listed = manifest["files"]
    present = [name for name in _relative_files(checkpoint) if name != MANIFEST_FILE]
    unexpected = sorted(set(present) - set(listed))
    if unexpected:
        raise CheckpointError(f"{checkpoint}: file(s) not in its manifest: {', '.join(unexpected)}")
    for name, digest in sorted(listed.items()):
        path = checkpoint / name
        if not path.is_file():
            raise CheckpointError(f"{checkpoint}: {name} is missing (incomplete checkpoint)")
        if _sha256(path) != digest:
            raise CheckpointError(f"{checkpoint}: {name} does not match its checksum (corrupted)")
    return manifest


def list_checkpoints(output_dir: Path) -> list[Path]:
    """``checkpoint-<step>`` directories of a run that have a manifest, oldest first (not verified)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if checkpoint_step(p) is not None and is_checkpoint(p)]
    return sorted(found, key=lambda p: checkpoint_step(p))


def find_latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-*`` that passes `verify_checkpoint`; broken newer ones are skipped with a warning."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = sorted((p for p in output_dir.iterdir() if checkpoint_step(p) is not None and p.is_dir()),
                        key=lambda p: checkpoint_step(p), reverse=True)
    for path in candidates:
        try:
            verify_checkpoint(path)
        except CheckpointError as error:
            logger.warning("skipping %s: %s", path.name, str(error).removeprefix(f"{path}: "))
            continue
        return path
    return None


def resolve_model_dir(path: str | Path) -> Path:
    """A directory holding a saved model: `path` itself, else its latest valid checkpoint, else its ``best/``.

    A run directory stands for its final weights, where the learning-rate schedule ends (a finished run's last
    checkpoint): ``best/`` is picked on the in-run validation sample, 200 rows by default, and at this recipe's
    noise that pick was an earlier, weaker model (docs/experiments.md, session 24). ``<run>/best`` still loads it."""
    path = Path(path)
    if (path / MODEL_CONFIG_FILE).is_file():
        return path
    latest = find_latest_checkpoint(path)
    if latest is not None:
        return latest
    if (path / BEST_DIR / MODEL_CONFIG_FILE).is_file():
        return path / BEST_DIR
    raise FileNotFoundError(f"{path}: no model there (no config.json, checkpoint-* or best/)")


# --- writing ------------------------------------------------------------------------------------------
def _slow_write_hook() -> None:
    delay = os.environ.get(WRITE_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def _replace_dir(source: Path, target: Path) -> None:
    """Atomically move the finished `source` directory to `target`, replacing an older `target`.

    Replacing takes two renames (old target aside, new one in); a crash between them leaves the old
    target inside a ``.tmp-*`` folder, which `recover_interrupted_replace` puts back.
    """
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=TMP_PREFIX))
        os.replace(target, old / target.name)
        _slow_write_hook()
        os.replace(source, target)
        shutil.rmtree(old)
    else:
        os.replace(source, target)


def recover_interrupted_replace(output_dir: Path) -> None:
    """Put back a ``best/`` (or checkpoint) that a crash left aside in ``.tmp-*/``; then drop stale ``.tmp-*``."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return
    for tmp in output_dir.glob(f"{TMP_PREFIX}*"):
        if not tmp.is_dir():
            continue
        for child in tmp.iterdir():
            target = output_dir / child.name
            if child.is_dir() and not target.exists() and is_checkpoint(child):
                logger.warning("restoring %s, left aside by an interrupted save", target)
                os.replace(child, target)
        shutil.rmtree(tmp, ignore_errors=True)


def _write_manifest(directory: Path, run_id: str, step: int) -> None:
    files = {name: _sha256(directory / name) for name in _relative_files(directory)}
    manifest = {"format": MANIFEST_FORMAT, "run_id": run_id, "step": step, "files": files}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def save_checkpoint(target: Path, model, tokenizer, state: TrainerState) -> Path:
    """Write model (HF safetensors), tokenizer, trainer state, run args and, last, the manifest; atomically.

    Raises CheckpointError (one line) when the disk is full.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=TMP_PREFIX))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        _slow_write_hook()
        tokenizer.save_pretrained(tmp)
        tensors: dict[str, torch.Tensor] = {}
        encoded = encode_state(asdict(state), tensors)
        save_file(tensors, str(tmp / STATE_TENSORS_FILE))
        _slow_write_hook()
        (tmp / STATE_JSON_FILE).write_text(json.dumps(encoded), encoding="utf-8")
        (tmp / RUN_ARGS_FILE).write_text(json.dumps(state.args, indent=2, default=str), encoding="utf-8")
        _write_manifest(tmp, state.run_id, state.step)
        _slow_write_hook()
        _replace_dir(tmp, target)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise CheckpointError(f"no space left on device while saving {target} (free space, or choose "
                                  f"another --output_dir); the previous checkpoints are intact") from None
        raise
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


def load_trainer_state(checkpoint: Path, verify: bool = True) -> TrainerState:
    """Read the trainer state from JSON + safetensors (never pickle), after checking the manifest."""
    checkpoint = Path(checkpoint)
    manifest = verify_checkpoint(checkpoint) if verify else read_manifest(checkpoint)
    try:
        tensors = load_file(str(checkpoint / STATE_TENSORS_FILE))
        raw = decode_state(json.loads((checkpoint / STATE_JSON_FILE).read_text(encoding="utf-8")), tensors)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{checkpoint}: unreadable trainer state ({error})") from None
    known = {f.name for f in fields(TrainerState)}
    state = TrainerState(**{key: value for key, value in raw.items() if key in known})
    state.run_id = state.run_id or manifest.get("run_id", "")
    return state


__all__ = [
    "BEST_DIR", "CHECKPOINT_PREFIX", "CheckpointError", "MANIFEST_FILE", "TrainerState", "capture_rng_state",
    "checkpoint_step", "decode_state", "encode_state", "find_latest_checkpoint", "is_checkpoint",
    "list_checkpoints", "load_trainer_state", "looks_like_run_dir", "new_run_id", "prune_checkpoints",
    "recover_interrupted_replace", "resolve_model_dir", "restore_rng_state", "save_checkpoint",
    "verify_checkpoint",
]
