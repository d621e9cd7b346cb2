"""Run safety: no run overwritten, best/ only replaced by a better model of the same run, broken checkpoints
skipped by --resume auto, non-finite parameters named, same seed -> same losses and answers (CPU)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import evaluate
import main as cli
from liquid.training import checkpoint as ckpt
from liquid.training import trainer as trainer_module
from liquid.training.args import parse_args
from liquid.training.trainer import NonFiniteLossError, train

TINY = ["--preset", "tiny", "--vocab_size", "200", "--max_source_length", "24", "--max_target_length", "24",
        "--batch_size", "2", "--learning_rate", "0.01", "--warmup_steps", "1", "--log_every", "1",
        "--device", "cpu", "--precision", "fp32", "--num_epochs", "100"]
NAN_PARAMETER = "decoder.layers.0.cross_attn.q_proj.weight"



def write_rows(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            a, b = index % 4 + 1, index % 3 + 2
            handle.write(json.dumps({"instruction": f"Suma {a} y {b}.", "response": f"La suma es {a} + {b} = {a + b}.",
                                     "task": "math", "answer": str(a + b)}, ensure_ascii=False) + "\n")
    return path


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def losses(output_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if row["type"] == "train"}


def test_a_finished_run_is_never_overwritten_without_a_flag(tmp_path, capsys):
    train_file, val_file = write_rows(tmp_path / "train.jsonl", 6), write_rows(tmp_path / "val.jsonl", 2)
    out = tmp_path / "run"
    flags = [*TINY, "--train_file", str(train_file), "--validation_file", str(val_file), "--output_dir", str(out)]
    assert cli.main([*flags, "--max_steps", "2", "--eval_every", "1", "--save_every", "1"]) == 0
    first_run = ckpt.read_manifest(out / "checkpoint-2")["run_id"]
    before = tree(out)
    capsys.readouterr()

    # The measured data loss: the same command without --resume trained one step and replaced best/.
    assert cli.main([*flags, "--max_steps", "1"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--resume auto" in error[0] and "--overwrite_output_dir" in error[0]
    assert tree(out) == before

    assert cli.main([*flags, "--max_steps", "1", "--eval_every", "0", "--overwrite_output_dir"]) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert ckpt.read_manifest(out / "checkpoint-1")["run_id"] != first_run
    assert ckpt.load_trainer_state(out / "best").run_id != first_run  # the old best/ went with the old run


def test_resume_auto_skips_broken_checkpoints_with_a_warning(tmp_path, caplog):
    out = tmp_path / "run"
    train_file = write_rows(tmp_path / "train.jsonl", 6)
    flags = [*TINY, "--train_file", str(train_file), "--output_dir", str(out), "--eval_every", "0"]
    train(parse_args([*flags, "--max_steps", "3", "--save_every", "1", "--keep_last", "3"]))
    (out / "checkpoint-3" / ckpt.MANIFEST_FILE).unlink()  # incomplete: killed before its manifest
    weights = out / "checkpoint-2" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # corrupted: one flipped byte
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        args = parse_args([*flags, "--max_steps", "3", "--resume", "auto"])
    assert args.resume == out / "checkpoint-1"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("skipping checkpoint-3") and "no manifest.json" in w for w in warnings), warnings
    assert any(w.startswith("skipping checkpoint-2") and "checksum" in w for w in warnings), warnings
    result = train(args)  # continues from step 1 and rewrites the broken checkpoints
    assert result.step == 3
    ckpt.verify_checkpoint(out / "checkpoint-3")


def test_best_is_only_replaced_by_a_better_model_of_the_same_run(tmp_path):
    """Resuming from a checkpoint older than best/ must not lower the bar best/ set."""
    best = tmp_path / ckpt.BEST_DIR
    best.mkdir()
    (best / "config.json").write_text("{}")
    saved = ckpt.TrainerState(step=8, best_metric=0.75, best_loss=1.0, best_step=8, run_id="run-a")
    tensors: dict = {}
    (best / ckpt.STATE_JSON_FILE).write_text(json.dumps(ckpt.encode_state(saved.__dict__, tensors)))
    from safetensors.torch import save_file

    save_file(tensors, str(best / ckpt.STATE_TENSORS_FILE))
    ckpt._write_manifest(best, "run-a", 8)

    # checkpoint-6 of the same run knew only a worse best (0.5)
    fake = SimpleNamespace(output_dir=tmp_path, state=ckpt.TrainerState(step=6, best_metric=0.5, best_loss=2.0,
                                                                         run_id="run-a"))
    assert trainer_module.Trainer._existing_best(fake) == best
    assert (fake.state.best_metric, fake.state.best_loss, fake.state.best_step) == (0.75, 1.0, 8)
    assert not trainer_module.Trainer._is_best(fake, {"val_accuracy": 0.6, "val_loss": 0.5})
    assert trainer_module.Trainer._is_best(fake, {"val_accuracy": 0.75, "val_loss": 0.9})

    other = SimpleNamespace(output_dir=tmp_path, state=ckpt.TrainerState(run_id="run-b"))
    with pytest.raises(ckpt.CheckpointError, match="belongs to another run"):
        trainer_module.Trainer._existing_best(other)
    # --resume auto with no checkpoint yet: the restarted run adopts best/'s id and bar
    restart = SimpleNamespace(output_dir=tmp_path, state=ckpt.TrainerState(run_id="fresh"))
    assert trainer_module.Trainer._existing_best(restart, resuming=False) == best
    assert (restart.state.run_id, restart.state.best_metric) == ("run-a", 0.75)
    # a best/ that is not a valid checkpoint (an old pickled one, a damaged one) is kept and refused
    (best / ckpt.STATE_JSON_FILE).write_text("{}")
    with pytest.raises(ckpt.CheckpointError, match="does not match its checksum.*it is kept"):
        trainer_module.Trainer._existing_best(restart, resuming=False)


def test_nan_in_a_cross_attention_weight_is_named(tmp_path, monkeypatch):
    """The measured bug: a NaN query weight gives a finite loss and NaN gradients everywhere; the stop
    message must name the parameter, not only modules whose gradients went NaN."""
    original = trainer_module.build_model

    def poisoned(args, tokenizer, resume):
        model = original(args, tokenizer, resume)
        with torch.no_grad():
            dict(model.named_parameters())[NAN_PARAMETER][0, 0] = float("nan")
        return model

    monkeypatch.setattr(trainer_module, "build_model", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as caught:
        train(parse_args([*TINY, "--train_file", str(write_rows(tmp_path / "t.jsonl", 6)), "--output_dir", str(out),
                          "--max_steps", "5", "--max_bad_steps", "2", "--eval_every", "0"]))
    message = str(caught.value)
    assert f"monitor: non-finite parameter {NAN_PARAMETER};" in message
    assert "non-finite gradients" in message
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["finite"] for r in records if r["type"] == "train"] == [False, False]  # both steps skipped


def test_same_seed_gives_the_same_losses_and_answers_on_cpu(tmp_path, capsys):
    train_file = write_rows(tmp_path / "train.jsonl", 6)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        train(parse_args([*TINY, "--train_file", str(train_file), "--output_dir", str(out), "--max_steps", "3",
                          "--eval_every", "0", "--seed", "7", "--set", "dropout=0.1"]))
        answers = []
        for extra in ([], ["--do_sample", "--seed", "3", "--temperature", "1.5"]):
            capsys.readouterr()
            assert evaluate.main(["--model_path", str(out / "checkpoint-3"), "--prompt", "Suma 2 y 3.",
                                  "--max_new_tokens", "8", "--device", "cpu", *extra]) == 0
            answers.append(capsys.readouterr().out)
        runs.append((losses(out), load_file(out / "checkpoint-3" / "model.safetensors"), answers))
    (losses_a, weights_a, answers_a), (losses_b, weights_b, answers_b) = runs
    assert losses_a == losses_b and len(losses_a) == 3  # bit-identical floats
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    assert answers_a == answers_b and answers_a[0].startswith("> Suma 2 y 3.")
    other = tmp_path / "seed8"
    train(parse_args([*TINY, "--train_file", str(train_file), "--output_dir", str(other), "--max_steps", "3",
                      "--eval_every", "0", "--seed", "8", "--set", "dropout=0.1"]))
    assert losses(other) != losses_a  # the seed matters: the test could fail


@pytest.mark.parametrize("content, expected", [(b"", b""), (b'{"a": 1}\n', b'{"a": 1}\n'),
                                               (b'{"a": 1}\n{"b', b'{"a": 1}\n{"b\n')])
def test_a_log_line_torn_by_a_kill_is_ended_and_skipped(tmp_path, content, expected):
    log = tmp_path / "log.jsonl"
    log.write_bytes(content)
    run_log = trainer_module.RunLog(tmp_path, enabled=True)  # what a resumed run does first
    assert log.read_bytes() == expected
    run_log.write("train", 3, {"loss": 1.5})
    run_log.close()
    earlier = [{"a": 1}] if content.startswith(b'{"a": 1}') else []
    assert [r.get("a", r.get("step")) for r in run_log.records()] == [r["a"] for r in earlier] + [3]  # torn line skipped
