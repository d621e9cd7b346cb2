"""Checkpoints: round trip, atomic writes, pruning, discovery, RNG state."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from liquid.config import LiquidConfig
from liquid.data import train_tokenizer
from liquid.modeling import LiquidFoundationModelOptimized
from liquid.training import checkpoint as ckpt

TEXTS = ["Resuelve la ecuación 3x + 5 = 20.", "La capital de Perú es Lima.", "El sentimiento del texto es positivo."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS * 4, vocab_size=150)


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    return LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=len(tokenizer)))


def make_state(step: int) -> ckpt.TrainerState:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=0.1)
    weight.grad = torch.full((3,), 0.5)
    optimizer.step()
    return ckpt.TrainerState(step=step, epoch=1, batch_in_epoch=7, best_metric=0.25, best_loss=1.5,
                             optimizer=optimizer.state_dict(), scheduler={"last_epoch": step},
                             rng=ckpt.capture_rng_state(), args={"batch_size": 4, "output_dir": "x"})


def test_round_trip_restores_weights_tokenizer_and_state(tmp_path, model, tokenizer):
    state = make_state(12)
    target = ckpt.save_checkpoint(tmp_path / "checkpoint-12", model, tokenizer, state)
    assert {"config.json", "model.safetensors", "trainer_state.json", "trainer_state.safetensors", "run_args.json",
            "tokenizer.json", "manifest.json"} <= {
        p.name for p in target.iterdir()}
    loaded_model = LiquidFoundationModelOptimized.from_pretrained(target)
    for (name, expected), (_, got) in zip(model.state_dict().items(), loaded_model.state_dict().items()):
        assert torch.equal(expected, got), name
    loaded = ckpt.load_trainer_state(target)
    assert (loaded.step, loaded.epoch, loaded.batch_in_epoch, loaded.best_metric) == (12, 1, 7, 0.25)
    exp_avg = state.optimizer["state"][0]["exp_avg"]
    assert torch.equal(loaded.optimizer["state"][0]["exp_avg"], exp_avg)
    assert json.loads((target / "run_args.json").read_text()) == {"batch_size": 4, "output_dir": "x"}
    assert not list(tmp_path.glob(".tmp-*"))


def test_failed_save_leaves_no_partial_checkpoint_and_keeps_the_old_one(tmp_path, model, tokenizer, monkeypatch):
    ckpt.save_checkpoint(tmp_path / "best", model, tokenizer, make_state(1))

    def broken_save(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path / "best", model, tokenizer, make_state(2))
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path / "checkpoint-3", model, tokenizer, make_state(3))
    monkeypatch.undo()
    assert not (tmp_path / "checkpoint-3").exists()
    assert not list(tmp_path.glob(".tmp-*"))
    assert ckpt.load_trainer_state(tmp_path / "best").step == 1


def test_replacing_an_existing_checkpoint(tmp_path, model, tokenizer):
    ckpt.save_checkpoint(tmp_path / "best", model, tokenizer, make_state(1))
    ckpt.save_checkpoint(tmp_path / "best", model, tokenizer, make_state(2))
    assert ckpt.load_trainer_state(tmp_path / "best").step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def fake_checkpoint(directory, run_id="run-a"):
    """A checkpoint-shaped directory with a valid manifest over one small file."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text('{"model_type": "liquid"}')
    ckpt._write_manifest(directory, run_id, 0)
    return directory


def test_prune_keeps_the_newest_by_step_and_never_best(tmp_path):
    for step in (2, 9, 10, 100):
        fake_checkpoint(tmp_path / f"checkpoint-{step}")
    (tmp_path / "best").mkdir()
    (tmp_path / "checkpoint-500").mkdir()  # incomplete: no manifest, never counted
    assert ckpt.find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-100"
    deleted = ckpt.prune_checkpoints(tmp_path, keep_last=2)
    assert sorted(p.name for p in deleted) == ["checkpoint-2", "checkpoint-9"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-10", "checkpoint-100"]
    assert (tmp_path / "best").is_dir()


def test_resolve_model_dir_prefers_the_directory_then_the_latest_checkpoint_then_best(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "config.json").write_text("{}")
    assert ckpt.resolve_model_dir(tmp_path) == tmp_path / "best"  # a run with only best/ left
    for name in ("checkpoint-3", "checkpoint-20"):
        fake_checkpoint(tmp_path / name)
    assert ckpt.resolve_model_dir(tmp_path) == tmp_path / "checkpoint-20"  # the final weights, not best/
    assert ckpt.resolve_model_dir(tmp_path / "best") == tmp_path / "best"
    assert ckpt.resolve_model_dir(tmp_path / "checkpoint-3") == tmp_path / "checkpoint-3"
    with pytest.raises(FileNotFoundError):
        ckpt.resolve_model_dir(tmp_path / "missing")


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = ckpt.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.restore_rng_state(state)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
