"""Training: command-line arguments, the loop, checkpoints, torchrun support and plots.

`main.py` is the command line; `train(parse_args(argv))` is the same run from Python.
"""

from liquid.training.args import ArgsError, build_parser, parse_args
from liquid.training.checkpoint import find_latest_checkpoint, resolve_model_dir
from liquid.training.trainer import NonFiniteLossError, TrainResult, train

__all__ = [
    "ArgsError", "NonFiniteLossError", "TrainResult", "build_parser", "find_latest_checkpoint",
    "parse_args", "resolve_model_dir", "train",
]
