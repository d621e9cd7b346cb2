"""Train the liquid encoder-decoder on Spanish instructions.

Examples::

    python main.py                                             # small preset, shipped data, < 15 min on a 2-core CPU
    python main.py --batch_size 16 --learning_rate 0.001 --num_epochs 10 --max_steps 0
    python main.py --preset tiny --max_steps 50 --set dropout=0.1 --set moe_top_k=1 --loss ce
    python main.py --train_file my_train.jsonl --validation_file my_val.jsonl --output_dir checkpoints/mine
    python main.py --output_dir checkpoints/mine --resume auto          # continue the latest checkpoint there
    python main.py --resume checkpoints/mine/checkpoint-400             # continue that checkpoint
    torchrun --nproc_per_node 2 main.py --preset base --precision bf16  # DDP (gloo on CPU, NCCL on CUDA)

`--batch_size` is per process: a step under torchrun sees batch_size * nproc rows.
Outputs in --output_dir (default checkpoints/<preset>-<timestamp>): checkpoint-<step>/ and best/
(Hugging Face format + trainer_state.json/.safetensors + manifest.json), log.jsonl, tb/ (TensorBoard), plots/, monitor.csv.
Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and prints the resume command.
An --output_dir that already holds a run is refused unless --resume or --overwrite_output_dir is given.
Exit status: 0 done or stopped cleanly, 1 diverged (non-finite losses), 2 bad arguments, data or checkpoint.
"""

from __future__ import annotations

import os
import time

# The time budget (`--max_time_minutes`) is the run's wall clock from here: data loading, the tokenizer and the
# model's construction count, so the whole command ends a fixed few seconds (the final validation and save) after the
# budget on any machine. Taken before torch's import, which alone takes 5-10 s on a 2-core CPU.
STARTED_AT = time.monotonic()

# MKL's GEMMs otherwise give results that depend on the memory alignment of their operands, so a resumed run
# (same weights and batch, other addresses) drifts from an uninterrupted one by an ulp (measured by
# scripts/kill_harness.py). AUTO keeps MKL's code path for this CPU but makes it alignment-independent, at
# no measurable cost; MKL reads it once, so it is set before torch is imported.
os.environ.setdefault("MKL_CBWR", "AUTO")

import errno  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from typing import Sequence  # noqa: E402

from liquid.training.args import ArgsError, parse_args  # noqa: E402

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2


def _resume_command(argv: Sequence[str], checkpoint: str) -> str:
    """The command line that continues this run: the same flags (less --overwrite_output_dir), with --resume
    pointing at `checkpoint`."""
    kept: list[str] = []
    skip_value = False
    for index, item in enumerate(argv):
        if skip_value:
            skip_value = False
            continue
        if item == "--resume":
            following = argv[index + 1] if index + 1 < len(argv) else ""
            skip_value = bool(following) and not following.startswith("--")
            continue
        if item.startswith("--resume=") or item == "--overwrite_output_dir":  # resuming must not delete the run
            continue
        kept.append(item)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node {world_size} main.py" if world_size > 1 else "python main.py"
    return " ".join([launcher, *map(shlex.quote, kept), "--resume", shlex.quote(checkpoint)])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from liquid.data import DataError
    from liquid.training.checkpoint import CheckpointError
    from liquid.training.trainer import NonFiniteLossError, train

    try:
        args = parse_args(argv)
        args.started_at = STARTED_AT
        result = train(args)
    except (ArgsError, DataError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        print(f"error: no space left on device ({error.filename or 'writing the run'})", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    if int(os.environ.get("RANK", "0")) != 0:
        return EXIT_OK
    print(f"last checkpoint: {result.last_checkpoint}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint} (validation accuracy {result.best_metric:.4f})")
    if result.stop_reason == "time_limit":  # the planned end of a budgeted run: the schedule reached its floor
        budget = args.max_time_minutes
        print(f"the {budget:g}-minute time budget is spent at step {result.step} (learning rate at its floor); "
              "to train longer, resume with a larger budget:")
        print(f"  {_resume_command(argv, str(result.last_checkpoint))} --max_time_minutes {2 * budget:g}")
    elif result.stop_reason != "completed":
        print(f"stopped early ({result.stop_reason}) at step {result.step}; to continue:")
        print(f"  {_resume_command(argv, str(result.last_checkpoint))}")
    print("next (scores the last checkpoint, the final weights; add /best for the validation pick):")
    print(f"  python evaluate.py --model_path {shlex.quote(str(result.output_dir))}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
