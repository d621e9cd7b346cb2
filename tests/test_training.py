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
from liquid.training.args import parse_args
from liquid.training.trainer import NonFiniteLossError, build_optimizer, train

TINY_FLAGS = ["--preset", "tiny", "--num_epochs", "100", "--vocab_size", "200", "--max_target_length", "24", "--max_source_length", "24",
              "--learning_rate", "0.01", "--warmup_steps", "1", "--log_every", "1", "--eval_every", "0",
              "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, spinning thread pools make tiny steps 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_resume_continues_exactly(tmp_path):
    """Interrupted at step 3 (mid-epoch) and resumed == uninterrupted, for losses and weights (CPU fp32)."""
    torch.manual_seed(0)
    data = write_rows(tmp_path / "train.jsonl", 7, seed=0)  # 4 batches of 2 per epoch: steps 4-6 cross an epoch
    flags = [*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "6",
             "--save_every", "3", "--monitor_every", "2", "--keep_last", "5"]
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
            assert got[step][key] == pytest.approx(expected[step][key], abs=1e-6, rel=0), (step, key)
    assert expected[6]["loss"] != pytest.approx(expected[4]["loss"], abs=1e-6)  # the run did learn something
    weights_full = load_file(tmp_path / "full" / "checkpoint-6" / "model.safetensors")
    weights_resumed = load_file(resumed_dir / "checkpoint-6" / "model.safetensors")
    for name, tensor in weights_full.items():
        torch.testing.assert_close(weights_resumed[name], tensor, atol=1e-6, rtol=0)


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
    # the learning rate each step used: linear warmup from 0 over 1 step, then cosine towards 0 at step 4
    for step, record in records.items():
        expected_lr = 0.0 if step == 1 else 0.01 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 3))
        assert record["lr"] == pytest.approx(expected_lr, rel=1e-9, abs=1e-12)
        assert len(record["expert_load"]) == 1 and sum(record["expert_load"][0]) == pytest.approx(1.0, abs=1e-5)
        assert 0 < record["compression_ratio_decoder"] < 1 and record["router_entropy_dec0"] > 0
    for name in ("loss.png", "expert_load.png", "monitor.png", "components.png"):
        assert (out / "plots" / name).stat().st_size > 0
    header = (out / "monitor.csv").read_text().splitlines()[0]
    assert header.startswith("step,module")
    assert list((out / "tb").glob("events.out.tfevents.*"))
    state = torch.load(out / "checkpoint-4" / "trainer_state.pt", weights_only=False)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)  # 3 batches per epoch


def test_grad_accumulation_equals_the_larger_batch(tmp_path):
    """2 micro-batches of 2 == one batch of 4 when every row has the same length and the loss is a token mean."""
    data = write_rows(tmp_path / "train.jsonl", 8, seed=2, equal_lengths=True)
    common = [*TINY_FLAGS, "--train_file", str(data), "--max_steps", "2", "--save_every", "2",
              "--set", "moe_loss_weight=0", "--set", "reconstruction_weight=0"]
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
    state = torch.load(out / "best" / "trainer_state.pt", weights_only=False)
    assert state["best_step"] == best_step

    # independent recomputation of the best step's validation cross-entropy from the saved best model
    model = LiquidFoundationModelOptimized.from_pretrained(out / "best").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "best")
    rows = [json.loads(line) for line in validation_file.read_text().splitlines()]
    batch = Seq2SeqCollator(tokenizer, 24, 24)(rows)
    with torch.no_grad():
        logits = model(**batch).logits.double()
    reference = nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    assert evals[best_step]["val_ce_loss"] == pytest.approx(reference.item(), abs=1e-4)


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path):
    data = write_rows(tmp_path / "train.jsonl", 6, seed=6)
    out = tmp_path / "run"
    result = run([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--max_steps", "50",
                  "--max_time_minutes", "1e-6", "--save_every", "0", "--output_dir", str(out)])
    assert (result.stop_reason, result.step) == ("time_limit", 1)
    assert result.last_checkpoint == out / "checkpoint-1"
    assert torch.load(out / "checkpoint-1" / "trainer_state.pt", weights_only=False)["step"] == 1
