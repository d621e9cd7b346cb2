"""main.py: argument validation (one-line errors, exit 2), typed overrides, end-to-end run, SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import main as cli
from liquid.training.args import (
    DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE, DEFAULT_TIME_BUDGET_MINUTES, ArgsError, parse_args,
    parse_overrides,
)

REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                  "HF_DATASETS_OFFLINE": "1"}
TINY_FLAGS = ["--preset", "tiny", "--vocab_size", "200", "--max_target_length", "16", "--max_source_length", "16",
              "--batch_size", "2", "--warmup_steps", "1", "--log_every", "1", "--eval_every", "0",
              "--device", "cpu", "--precision", "fp32"]
STARTUP_TIMEOUT_S = 180


def write_rows(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            a, b = index % 5 + 1, index % 3 + 1
            row = {"instruction": f"Suma {a} y {b}.", "response": f"La suma es {a} + {b} = {a + b}.",
                   "task": "math", "answer": str(a + b)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture
def train_file(tmp_path):
    return write_rows(tmp_path / "train.jsonl", 6)


def bad_argument_cases(tmp_path: Path, train_file: Path) -> list[tuple[list[str], str]]:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    empty_dir = tmp_path / "no_checkpoint_here"
    empty_dir.mkdir()
    return [
        (["--batch_size", "0"], "--batch_size must be > 0"),
        (["--learning_rate", "-0.1"], "--learning_rate must be > 0"),
        (["--num_epochs", "0"], "--num_epochs must be > 0"),
        (["--max_steps", "-1"], "--max_steps must be >= 0"),
        (["--grad_accum_steps", "0"], "--grad_accum_steps must be > 0"),
        (["--batch_size", "two"], "invalid int value"),
        (["--precision", "fp8"], "invalid choice"),
        (["--host_malloc", "jemalloc"], "invalid choice"),
        (["--preset", "huge"], "--preset 'huge' is unknown"),
        (["--set", "no_such_field=1"], "unknown LiquidConfig field"),
        (["--set", "d_model=wide"], "--set d_model=wide: expected int"),
        (["--set", "num_heads=5"], "divisible by num_heads"),
        (["--output_dir", str(blocker / "run")], "is not writable"),
        (["--train_file", str(tmp_path / "missing.jsonl")], "missing.jsonl: file not found"),
        (["--resume", str(empty_dir)], "no checkpoint there"),
        *([(["--device", "cuda"], "CUDA is not available")] if not torch.cuda.is_available() else []),
    ]


def test_bad_arguments_exit_2_with_one_line_before_any_work(tmp_path, train_file, capsys):
    for extra, expected in bad_argument_cases(tmp_path, train_file):
        out = tmp_path / "out"
        argv = ["--output_dir", str(out), "--train_file", str(train_file), *extra]
        assert cli.main(argv) == cli.EXIT_USAGE, extra
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (extra, captured.err)
        assert not (out / "log.jsonl").exists() and not (out / "tokenizer").exists()


def test_overrides_are_typed_by_the_config_fields():
    assert parse_overrides(["dropout=0.1", "moe_top_k=1", "dynamic_k=false", "num_kv_heads=none", "loss_type=ce"]) == {
        "dropout": 0.1, "moe_top_k": 1, "dynamic_k": False, "num_kv_heads": None, "loss_type": "ce"}
    with pytest.raises(ArgsError, match="KEY=VALUE"):
        parse_overrides(["dropout"])
    with pytest.raises(ArgsError, match="expected bool"):
        parse_overrides(["dynamic_k=maybe"])


def test_defaults_and_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse_args([])
    assert (args.batch_size, args.learning_rate, args.preset) == (DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE, "small")
    assert Path(args.output_dir) == Path("checkpoints") / args.run_name and args.run_name.startswith("small-")
    assert parse_args(["--run_name", "mine"]).output_dir == str(Path("checkpoints") / "mine")


@pytest.mark.parametrize(
    "flags, expected",
    [([], (None, 0, DEFAULT_TIME_BUDGET_MINUTES)), (["--max_time_minutes", "3"], (None, 0, 3.0)),
     (["--num_epochs", "10"], (10, 0, None)), (["--max_steps", "50"], (None, 50, None)),
     (["--num_epochs", "3", "--max_steps", "7"], (3, 7, None)), (["--max_steps", "9", "--max_time_minutes", "2"], (None, 9, 2.0))],
)
def test_run_length_defaults_apply_only_when_no_length_is_given(tmp_path, flags, expected):
    args = parse_args([*flags, "--output_dir", str(tmp_path / "run")])
    epochs, steps, minutes = expected
    assert args.max_steps == steps
    assert args.max_time_minutes == minutes
    if epochs is not None:
        assert args.num_epochs == epochs
    else:  # --max_steps alone: epochs never stop the run first
        assert args.num_epochs * 1000 > steps


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path):
    assert parse_args(["--output_dir", str(tmp_path), "--resume"]).resume is None


def test_resume_command_replaces_the_resume_flag():
    command = cli._resume_command(["--preset", "tiny", "--resume", "old", "--batch_size", "2"], "out/checkpoint-7")
    assert command == "python main.py --preset tiny --batch_size 2 --resume out/checkpoint-7"
    assert cli._resume_command(["--resume", "--seed", "1"], "c") == "python main.py --seed 1 --resume c"
    assert cli._resume_command(["--overwrite_output_dir", "--seed", "1"], "c") == "python main.py --seed 1 --resume c"


def run_main(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=REPO, env=SUBPROCESS_ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_end_to_end_run_prints_the_evaluate_command(tmp_path, train_file):
    out = tmp_path / "run"
    process = run_main([*TINY_FLAGS, "--train_file", str(train_file), "--max_steps", "2", "--output_dir", str(out)])
    stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT_S)
    assert process.returncode == 0, stderr[-2000:]
    assert f"python evaluate.py --model_path {out}" in stdout
    assert f"last checkpoint: {out / 'checkpoint-2'}" in stdout
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "trainer_state.json", "manifest.json",
            "run_args.json"} <= {p.name for p in (out / "checkpoint-2").iterdir()}


def test_sigint_saves_a_checkpoint_and_prints_the_resume_command(tmp_path, train_file):
    out = tmp_path / "run"
    process = run_main([*TINY_FLAGS, "--train_file", str(train_file), "--max_steps", "100000", "--num_epochs", "100000",
                        "--save_every", "0", "--output_dir", str(out)])
    log = out / "log.jsonl"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not (log.is_file() and log.read_text().strip()) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-2000:]
    os.kill(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT_S)
    assert process.returncode == 0, stderr[-2000:]
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert len(checkpoints) == 1
    step = int(checkpoints[0].name.split("-")[1])
    assert step >= 1 and f"--resume {checkpoints[0]}" in stdout and "stopped early (signal)" in stdout
    last_logged = max(json.loads(line)["step"] for line in log.read_text().splitlines())
    assert last_logged == step  # the checkpoint holds the last finished step
