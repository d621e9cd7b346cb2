"""Training loop: exact resume, optimizer groups, schedule, accumulation, non-finite steps, outputs."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from liquid.training import trainer as trainer_module
from liquid.training.args import DEFAULT_MEGA_BATCH_MULT, DEFAULT_TIME_BUDGET_MINUTES, DEFAULT_VALIDATIONS, parse_args
from liquid.training.checkpoint import CheckpointError, load_trainer_state
from liquid.training.trainer import NonFiniteLossError, build_optimizer, train

TINY_FLAGS = ["--preset", "tiny", "--num_epochs", "100", "--vocab_size", "200", "--max_target_length", "24", "--max_source_length", "24",
              "--learning_rate", "0.01", "--warmup_steps", "1", "--log_every", "1", "--eval_every", "0",
              "--device", "cpu", "--precision", "fp32"]



def write_rows(path: Path, count: int, seed: int, equal_lengths: bool = False) -> Path:
    """Tiny math/sentiment rows; with `equal_lengths` every row is the same template with one-digit numbers."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            a, b = rng.randint(1, 4), rng.randint(1, 5)
            if equal_lengths or index % 2 == 0:
                row = {"instruction": f"Suma {a} y {b}.", "response": f"La suma es {a} + {b} = {a + b}.",
                       "task": "math", "answer": str(a + b)}
            else:
                row = {"instruction": f"¿Es bueno el libro número {a}{b}?",
                       "response": "El sentimiento del texto es positivo.", "task": "sentiment",
                       "answer": "positivo"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def train_records(output_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]
    return {row["step"]: row for row in rows if row["type"] == "train"}


def run(argv: list[str]):
    return train(parse_args(argv))


@pytest.mark.parametrize("optimizer", [["adamw"], ["muon"], ["muon", "--muon_until", "0.2"]])
def test_resume_continues_exactly(tmp_path, optimizer):
    """Interrupted at step 3 (mid-epoch) and resumed == uninterrupted, bit for bit, for losses and weights (CPU fp32)."""
    torch.manual_seed(0)
    data = write_rows(tmp_path / "train.jsonl", 7, seed=0)  # 4 batches of 2 per epoch: steps 4-6 cross an epoch
    flags = [*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "6",
             "--save_every", "3", "--monitor_every", "2", "--keep_last", "5", "--optimizer", *optimizer]
    full = run([*flags, "--output_dir", str(tmp_path / "full")])
    assert full.step == 6 and full.stop_reason == "completed"

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-3", resumed_dir / "checkpoint-3")
    resumed = run([*flags, "--output_dir", str(resumed_dir), "--resume", "auto"])
    assert resumed.step == 6

    expected, got = train_records(tmp_path / "full"), train_records(resumed_dir)
    assert sorted(got) == [4, 5, 6]
    for step in (4, 5, 6):
        assert got[step]["epoch"] == expected[step]["epoch"]
        for key in ("loss", "lm_loss", "aux_loss", "grad_norm", "lr"):
            assert got[step][key] == expected[step][key], (step, key)  # bit for bit (MKL_CBWR, see conftest)
    assert expected[6]["loss"] != pytest.approx(expected[4]["loss"], abs=1e-6)  # the run did learn something
    weights_full = load_file(tmp_path / "full" / "checkpoint-6" / "model.safetensors")
    weights_resumed = load_file(resumed_dir / "checkpoint-6" / "model.safetensors")
    for name, tensor in weights_full.items():
        assert torch.equal(weights_resumed[name], tensor), name


def test_resume_with_another_optimizer_is_refused(tmp_path):
    data = write_rows(tmp_path / "train.jsonl", 4, seed=0)
    flags = [*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "2", "--save_every", "2",
             "--output_dir", str(tmp_path / "run")]
    run([*flags, "--optimizer", "muon"])
    with pytest.raises(CheckpointError, match=r"trained with --optimizer muon; resume it with the same --optimizer "
                                              r"\(got adamw\)"):
        run([*flags, "--max_steps", "4", "--resume", "auto"])


def test_run_outputs_logs_plots_and_pruned_checkpoints(tmp_path):
    data = write_rows(tmp_path / "train.jsonl", 6, seed=1)
    out = tmp_path / "run"
    result = run([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "4",
                  "--save_every", "1", "--keep_last", "2", "--monitor_every", "1", "--output_dir", str(out)])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    assert result.last_checkpoint == out / "checkpoint-4"
    assert not list(out.glob(".tmp-*"))
    records = train_records(out)
    assert sorted(records) == [1, 2, 3, 4]
    # the learning rate each step used: linear warmup from 0 over 1 step, then the default wsd: the peak for the first
    # half of the remaining 3 steps' progress p = (step - 2) / 3, then 1 - sqrt((p - 0.5) / 0.5), 0 at step 4
    for step, record in records.items():
        p = (step - 2) / 3
        expected_lr = 0.0 if step == 1 else 0.01 * (1.0 if p <= 0.5 else 1 - math.sqrt((p - 0.5) / 0.5))
        assert record["lr"] == pytest.approx(expected_lr, rel=1e-9, abs=1e-12)
        assert len(record["expert_load"]) == 1 and sum(record["expert_load"][0]) == pytest.approx(1.0, abs=1e-5)
        assert 0 < record["compression_ratio_decoder"] < 1 and record["router_entropy_dec0"] > 0
    for name in ("loss.png", "expert_load.png", "monitor.png", "components.png"):
        assert (out / "plots" / name).stat().st_size > 0
    header = (out / "monitor.csv").read_text().splitlines()[0]
    assert header.startswith("step,module")
    assert list((out / "tb").glob("events.out.tfevents.*"))
    state = load_trainer_state(out / "checkpoint-4")
    assert (state.step, state.epoch, state.batch_in_epoch) == (4, 1, 1)  # 3 batches per epoch


def test_grad_accumulation_equals_the_larger_batch(tmp_path):
    """2 micro-batches of 2 == one batch of 4 when every row has the same length and the loss is a token mean."""
    data = write_rows(tmp_path / "train.jsonl", 8, seed=2, equal_lengths=True)
    common = [*TINY_FLAGS, "--train_file", str(data), "--max_steps", "2", "--save_every", "2",
              "--set", "moe_loss_weight=0", "--set", "reconstruction_weight=0",
              "--number_space", "separate"]  # "▁" + digit: every row the same length, whatever BPE merged
    run([*common, "--batch_size", "4", "--output_dir", str(tmp_path / "big")])
    run([*common, "--batch_size", "2", "--grad_accum_steps", "2", "--output_dir", str(tmp_path / "accum")])
    big = load_file(tmp_path / "big" / "checkpoint-2" / "model.safetensors")
    accum = load_file(tmp_path / "accum" / "checkpoint-2" / "model.safetensors")
    for name, tensor in big.items():
        torch.testing.assert_close(accum[name], tensor, atol=1e-5, rtol=1e-5)
    assert train_records(tmp_path / "big")[1]["loss"] == pytest.approx(
        train_records(tmp_path / "accum")[1]["loss"], abs=1e-5)


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path, monkeypatch):
    original = trainer_module.Trainer._forward

    def poisoned(self, model, batch):
        output = original(self, model, batch)
        output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(trainer_module.Trainer, "_forward", poisoned)
    data = write_rows(tmp_path / "train.jsonl", 6, seed=3)
    out = tmp_path / "bad"
    with pytest.raises(NonFiniteLossError, match="3 non-finite steps in a row.*non-finite") as caught:
        run([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "10",
             "--max_bad_steps", "3", "--output_dir", str(out)])
    assert "monitor:" in str(caught.value)
    records = train_records(out)
    assert sorted(records) == [1, 2, 3] and not any(r["finite"] for r in records.values())


def test_optimizer_decays_only_matrices_outside_embeddings_and_norms():
    model = nn.ModuleDict({"embed": nn.Embedding(5, 4), "proj": nn.Linear(4, 4), "norm": nn.LayerNorm(4),
                           "experts": nn.ParameterList([nn.Parameter(torch.zeros(2, 4, 4))])})
    optimizer = build_optimizer(model, learning_rate=1e-3, weight_decay=0.1)
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed == {id(model["proj"].weight), id(model["experts"][0])}
    assert plain == {id(model["embed"].weight), id(model["proj"].bias), id(model["norm"].weight),
                     id(model["norm"].bias)}


def test_validation_logs_loss_and_accuracy_and_keeps_the_best(tmp_path):
    from liquid.data import Seq2SeqCollator
    from liquid.modeling import LiquidFoundationModelOptimized
    from transformers import AutoTokenizer

    train_file = write_rows(tmp_path / "train.jsonl", 6, seed=4)
    validation_file = write_rows(tmp_path / "validation.jsonl", 3, seed=5)
    out = tmp_path / "run"
    result = run([*TINY_FLAGS, "--train_file", str(train_file), "--validation_file", str(validation_file),
                  "--batch_size", "4", "--max_steps", "2", "--eval_every", "1", "--eval_samples", "50",
                  "--save_every", "0", "--output_dir", str(out)])
    evals = {r["step"]: r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
             if r["type"] == "eval"}
    assert sorted(evals) == [1, 2]
    assert all(0.0 <= r["val_accuracy"] <= 1.0 and "val_accuracy_math" in r for r in evals.values())
    best_step = max(evals, key=lambda s: (evals[s]["val_accuracy"], -evals[s]["val_loss"]))
    assert result.best_checkpoint == out / "best"
    assert load_trainer_state(out / "best").best_step == best_step

    # independent recomputation of the best step's validation cross-entropy from the saved best model
    model = LiquidFoundationModelOptimized.from_pretrained(out / "best").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "best")
    rows = [json.loads(line) for line in validation_file.read_text().splitlines()]
    batch = Seq2SeqCollator(tokenizer, 24, 24)(rows)
    with torch.no_grad():
        logits = model(**batch).logits.double()
    reference = nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    assert evals[best_step]["val_ce_loss"] == pytest.approx(reference.item(), abs=1e-4)


def test_mega_batch_mult_flag_reaches_the_length_grouped_sampler(tmp_path, monkeypatch):
    import liquid.data

    seen = []
    real = liquid.data.LengthGroupedBatchSampler

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.mega_batch_mult)

    monkeypatch.setattr(liquid.data, "LengthGroupedBatchSampler", Recording)
    data = write_rows(tmp_path / "train.jsonl", 8, seed=8)
    for name, extra in (("default", []), ("plain", ["--mega_batch_mult", "1"])):
        run([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "1", "--save_every", "0",
             "--output_dir", str(tmp_path / name), *extra])
    assert seen == [DEFAULT_MEGA_BATCH_MULT, 1]


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path):
    data = write_rows(tmp_path / "train.jsonl", 6, seed=6)
    out = tmp_path / "run"
    result = run([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "50",
                  "--max_time_minutes", "1e-6", "--save_every", "0", "--output_dir", str(out)])
    assert (result.stop_reason, result.step) == ("time_limit", 1)
    assert result.last_checkpoint == out / "checkpoint-1"
    assert load_trainer_state(out / "checkpoint-1").step == 1


@pytest.mark.parametrize("setup_minutes, steps", [(9.0, 1), (None, 4)])
def test_time_budget_counts_the_setup_before_fit(tmp_path, setup_minutes, steps):
    """main.py's clock at process start (`args.started_at`): the time before fit() is part of the budget, so a run
    whose setup already took 9 of its 5 minutes stops after one step with the learning rate at its floor; without
    `started_at` (the library's train()) only fit() counts and the run takes its 4 steps."""
    data = write_rows(tmp_path / "train.jsonl", 6, seed=6)
    args = parse_args([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "4",
                       "--max_time_minutes", "5", "--save_every", "0", "--output_dir", str(tmp_path / "run")])
    if setup_minutes is not None:
        args.started_at = trainer_module.time.monotonic() - setup_minutes * 60
    result = train(args)
    assert result.step == steps
    state = load_trainer_state(result.last_checkpoint)
    if setup_minutes is not None:
        assert result.stop_reason == "time_limit"
        assert state.elapsed_seconds >= setup_minutes * 60
    else:
        assert state.elapsed_seconds < 60


def test_main_passes_its_start_clock_to_train(tmp_path, monkeypatch):
    """`python main.py` hands the clock read at its import (before torch) to train() as `args.started_at`."""
    import main as main_module

    seen = {}

    class Done(Exception):
        pass

    def fake_train(args):
        seen["started_at"] = args.started_at
        raise Done

    monkeypatch.setattr(trainer_module, "train", fake_train)
    with pytest.raises(Done):
        main_module.main(["--preset", "tiny", "--max_steps", "1", "--output_dir", str(tmp_path / "run")])
    assert seen["started_at"] == main_module.STARTED_AT
    assert seen["started_at"] <= trainer_module.time.monotonic()


def test_time_budget_schedule_reaches_its_floor_at_the_budget(tmp_path, monkeypatch):
    """progress = max(step share, elapsed / budget): the cosine is half-way at half the budget, 0 at the end,
    and elapsed time carries over a resume (state.elapsed_seconds)."""
    data = write_rows(tmp_path / "train.jsonl", 6, seed=6)
    args = parse_args([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_time_minutes", "10",
                       "--lr_schedule", "cosine", "--output_dir", str(tmp_path / "run")])
    trainer = trainer_module.Trainer(args, trainer_module.init_distributed(args.device))
    clock = {"now": 1000.0}
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock["now"])
    trainer._fit_start = 1000.0
    step = 2  # past the 1-step warmup, a negligible share of the 300 steps
    assert trainer.lr_factor(0) == 0.0
    clock["now"] = 1000.0 + 5 * 60
    assert trainer.lr_factor(step) == pytest.approx(0.5, abs=0.01)
    clock["now"] = 1000.0 + 10 * 60
    assert trainer.lr_factor(step) == pytest.approx(0.0, abs=1e-9)
    trainer._elapsed_before, trainer._fit_start = 7.5 * 60, clock["now"]  # resumed after 7.5 of 10 minutes
    assert trainer.lr_factor(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)), abs=0.01)


@pytest.mark.parametrize("flags, half, three_quarters", [
    (["--lr_schedule", "cosine"], 0.5, 0.5 * (1 + math.cos(math.pi * 0.75))),
    (["--lr_schedule", "linear"], 0.5, 0.25),
    ([], 1.0, 1 - math.sqrt(0.5)),  # the default: wsd, the peak for the first half, then 1-sqrt to 0
    (["--lr_schedule", "wsd", "--decay_share", "0.4"], 1.0, 1 - math.sqrt(0.15 / 0.4)),  # decay from 0.6 of the budget
])
def test_lr_schedule_flag_shapes_the_time_budget_decay(tmp_path, monkeypatch, flags, half, three_quarters):
    """--lr_schedule picks the shape that lr_factor follows over the time budget (0 at the budget)."""
    data = write_rows(tmp_path / "train.jsonl", 6, seed=6)
    args = parse_args([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_time_minutes", "10",
                       *flags, "--output_dir", str(tmp_path / "run")])
    trainer = trainer_module.Trainer(args, trainer_module.init_distributed(args.device))
    clock = {"now": 1000.0}
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock["now"])
    trainer._fit_start = 1000.0
    for minutes, expected in ((5, half), (7.5, three_quarters), (10, 0.0)):
        clock["now"] = 1000.0 + minutes * 60
        assert trainer.lr_factor(2) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("flags, steps, minutes", [
    ([], 0, DEFAULT_TIME_BUDGET_MINUTES / DEFAULT_VALIDATIONS),  # the default run: validated every eighth of its budget
    (["--max_time_minutes", "16"], 0, 16 / DEFAULT_VALIDATIONS),
    (["--max_steps", "100"], 750, 0.0),  # a run of a given length: every 750 steps
    (["--eval_every", "100"], 100, 0.0),
    (["--eval_every_minutes", "3"], 0, 3.0),
])
def test_validation_schedule_defaults(tmp_path, flags, steps, minutes):
    args = parse_args([*flags, "--output_dir", str(tmp_path / "run")])
    assert (args.eval_every, args.eval_every_minutes) == (steps, pytest.approx(minutes))


def test_validation_by_minutes_comes_once_per_interval_and_carries_over_a_resume(tmp_path, monkeypatch):
    data = write_rows(tmp_path / "train.jsonl", 6, seed=6)
    args = parse_args([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_time_minutes", "10",
                       "--eval_every_minutes", "1", "--output_dir", str(tmp_path / "run")])
    trainer = trainer_module.Trainer(args, trainer_module.init_distributed(args.device))
    clock = {"now": 0.0}
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock["now"])
    trainer._fit_start = 0.0
    due = []
    for seconds in (30, 61, 90, 119, 121, 250, 290, 301):  # 121 -> 250 s passes 3 and 4 minutes: one validation
        clock["now"] = float(seconds)
        due.append(trainer._validation_due(step=1))
    assert due == [False, True, False, False, True, True, False, True]
    clock["now"] = 601.0  # the boundary at the end of the 10-minute budget is the run's final validation, not this one
    trainer._next_validation = 600.0
    assert not trainer._validation_due(step=1)
    resumed = trainer_module.Trainer(args, trainer_module.init_distributed(args.device))
    resumed._elapsed_before, resumed._fit_start = 150.0, 0.0  # resumed after 2.5 minutes
    clock["now"] = 20.0
    assert not resumed._validation_due(step=1)  # 2.83 minutes
    clock["now"] = 31.0
    assert resumed._validation_due(step=1)  # 3.02 minutes


def test_accuracy_plot_is_against_wall_clock_minutes(tmp_path):
    from liquid.training import plots

    records = [{"type": "eval", "step": 10, "elapsed_minutes": 1.5, "val_accuracy": 0.2, "val_accuracy_math": 0.1},
               {"type": "eval", "step": 20, "elapsed_minutes": 3.0, "val_accuracy": 0.6, "val_accuracy_math": 0.5}]
    assert plots.plot_accuracy_vs_time(records, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plots.plot_accuracy_vs_time([{"type": "eval", "step": 1, "val_accuracy": 0.1}], tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()
