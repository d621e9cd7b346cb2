"""Bad input to main.py and evaluate.py: refused before any work with one line, exit 2, nothing written.

Each case builds its input under tmp_path, then calls the CLI's `main(argv)` in process. The check:
exit status 2, exactly one ``error: ...`` line on stderr holding the expected words, no traceback,
and the files under tmp_path unchanged (nothing written, nothing overwritten). The README's
"Bad input" table lists the same cases.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from transformers import T5Config

import evaluate
import main as cli
from liquid import LiquidConfig, LiquidFoundationModelOptimized
from liquid import evaluation
from liquid.data import train_tokenizer
from liquid.training import checkpoint as ckpt

ROWS = [{"instruction": f"Suma {a} y {b}.", "response": f"La suma es {a} + {b} = {a + b}.", "task": "math",
         "answer": str(a + b)} for a in range(1, 4) for b in range(1, 3)]
TINY = ["--preset", "tiny", "--vocab_size", "200", "--max_source_length", "16", "--max_target_length", "16",
        "--batch_size", "2", "--max_steps", "1", "--eval_every", "0", "--device", "cpu", "--precision", "fp32"]
MARKER = "pickle_ran.txt"


def put(path: Path, data: bytes | str) -> Path:
    """Write `data` (bytes as they are, str as UTF-8) to `path`; returns `path`."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def write_jsonl(path: Path, rows=ROWS) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([r["instruction"] + " " + r["response"] for r in ROWS] * 10, vocab_size=200)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny liquid model + tokenizer, as evaluate.py loads them."""
    directory = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=len(tokenizer))).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class Evil:
    """Unpickling this writes the marker file: the proof that a pickle was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "executed"))


def plant_pickle_checkpoint(directory: Path, marker: Path) -> Path:
    """An old-format checkpoint: config.json + a trainer_state.pt whose unpickling runs code."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "liquid"}))
    torch.save({"step": Evil(marker)}, directory / "trainer_state.pt")
    return directory


def fake_checkpoint(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(b"weights")
    ckpt._write_manifest(directory, "some-run", 5)
    return directory


def mismatched_checkpoint(directory: Path, tokenizer) -> Path:
    """A valid checkpoint whose model expects more tokens than its tokenizer has."""
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=len(tokenizer) + 7))
    return ckpt.save_checkpoint(directory, model, tokenizer, ckpt.TrainerState(step=1, run_id="r"))


def no_space(monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)


# Each case: (tool, build(tmp_path, model_dir, tokenizer, monkeypatch) -> argv, expected words in the error line)
def _main(tmp, *extra, train=None):
    train = train if train is not None else write_jsonl(tmp / "train.jsonl")
    return ["--output_dir", str(tmp / "out"), "--train_file", str(train), *TINY, *extra]


CASES = {
    # --- main.py: data files
    "missing data file": ("main", lambda t, m, k, p: _main(t, train=t / "nope.jsonl"), "nope.jsonl: file not found"),
    "empty data file": ("main", lambda t, m, k, p: _main(t, train=write_jsonl(t / "e.jsonl", [])), "empty split"),
    "non-UTF-8 data file": ("main", lambda t, m, k, p: _main(t, train=put(
        t / "l1.jsonl", write_jsonl(t / "ok.jsonl").read_bytes() + b'{"instruction": "a\xe9"}\n')),
        "l1.jsonl:7: not UTF-8 text (byte 0xe9"),
    "malformed JSON line": ("main", lambda t, m, k, p: _main(t, train=put(
        t / "bad.jsonl", '{"instruction": "a", "response": "b"}\n{"instruction": \n')), "bad.jsonl:2: invalid JSON"),
    "missing column": ("main", lambda t, m, k, p: _main(
        t, train=write_jsonl(t / "nc.jsonl", [{"instruction": "a"}])), "missing column(s) ['response']"),
    "CSV without the column": ("main", lambda t, m, k, p: _main(
        t, train=put(t / "d.csv", "question,answer\nhola,adios\n")), "missing column(s)"),
    # --- main.py: sizes and rates
    "zero batch size": ("main", lambda t, m, k, p: _main(t, "--batch_size", "0"), "--batch_size must be > 0"),
    "negative learning rate": ("main", lambda t, m, k, p: _main(t, "--learning_rate", "-0.001"),
                               "--learning_rate must be > 0"),
    "zero source length": ("main", lambda t, m, k, p: _main(t, "--max_source_length", "0"),
                           "--max_source_length must be > 0"),
    "zero mega batch mult": ("main", lambda t, m, k, p: _main(t, "--mega_batch_mult", "0"),
                             "--mega_batch_mult must be > 0"),
    "negative max_steps": ("main", lambda t, m, k, p: _main(t, "--max_steps", "-5"), "--max_steps must be >= 0"),
    "oversample without a count": ("main", lambda t, m, k, p: _main(t, "--oversample", "math"),
                                   "--oversample expects TASK=K (or TASK=K@EPOCH)"),
    "oversample of a task the data lacks": ("main", lambda t, m, k, p: _main(t, "--oversample", "foo=2"),
                                            "--oversample foo=2: no training row has task or subset 'foo'"),
    "adam beta2 of 1": ("main", lambda t, m, k, p: _main(t, "--adam_beta2", "1"), "--adam_beta2 must be in [0, 1)"),
    "muon handover past the end": ("main", lambda t, m, k, p: _main(t, "--optimizer", "muon", "--muon_until", "1.5"),
                                   "--muon_until must be in [0, 1], got 1.5"),
    "wsd decay share of 0": ("main", lambda t, m, k, p: _main(t, "--lr_schedule", "wsd", "--decay_share", "0"),
                             "--decay_share must be in (0, 1], got 0.0"),
    "negative qk init std": ("main", lambda t, m, k, p: _main(t, "--set", "qk_init_std=-0.1"), "qk_init_std must be >= 0"),
    "zero embedding scale": ("main", lambda t, m, k, p: _main(t, "--set", "embedding_scale=0"),
                             "embedding_scale must be > 0"),
    "zero model width": ("main", lambda t, m, k, p: _main(t, "--set", "d_model=0"), "d_model"),
    # --- main.py: resume and output directory
    "--resume at nothing": ("main", lambda t, m, k, p: _main(t, "--resume", str(t / "missing")), "does not exist"),
    "--resume at an empty directory": ("main", lambda t, m, k, p: (t / "empty").mkdir() or _main(
        t, "--resume", str(t / "empty")), "no checkpoint there"),
    "--resume at a foreign (non-liquid) checkpoint": ("main", lambda t, m, k, p: fake_checkpoint(
        t / "t5", {"model_type": "t5"}) and _main(t, "--resume", str(t / "t5")), "'t5' checkpoint, not a liquid one"),
    "--resume at a plain model directory": ("main", lambda t, m, k, p: _main(t, "--resume", str(m)),
                                            "not a training checkpoint (no manifest.json)"),
    "--resume at a pickled trainer_state.pt": ("main", lambda t, m, k, p: plant_pickle_checkpoint(
        t / "evil", t / MARKER) and _main(t, "--resume", str(t / "evil")), "pickled trainer_state.pt, refused"),
    "--resume at a corrupted checkpoint": ("main", lambda t, m, k, p: (fake_checkpoint(
        t / "run" / "checkpoint-5", {"model_type": "liquid"}) / "model.safetensors").write_bytes(b"weightz") and _main(
        t, "--resume", str(t / "run" / "checkpoint-5")), "model.safetensors does not match its checksum"),
    "tokenizer does not match the model": ("main", lambda t, m, k, p: mismatched_checkpoint(
        t / "run" / "checkpoint-1", k) and _main(t, "--resume", str(t / "run" / "checkpoint-1")),
        "tokens but the model expects"),
    "--output_dir holds another run": ("main", lambda t, m, k, p: fake_checkpoint(
        t / "out" / "best", {"model_type": "liquid"}) and _main(t),
        "already holds a run (best); add --resume auto to continue it or --overwrite_output_dir"),
    "--resume with --overwrite_output_dir": ("main", lambda t, m, k, p: _main(
        t, "--resume", "auto", "--overwrite_output_dir"), "not both"),
    "--output_dir unwritable": ("main", lambda t, m, k, p: put(t / "afile", "x") and _main(
        t, "--output_dir", str(t / "afile" / "run")), "is not writable"),
    "--output_dir on a full disk": ("main", lambda t, m, k, p: no_space(p) or _main(t),
                                    "no space left on device"),
    # --- evaluate.py
    "empty --prompt": ("evaluate", lambda t, m, k, p: ["--model_path", str(m), "--prompt", ""], "--prompt is empty"),
    "blank --prompt": ("evaluate", lambda t, m, k, p: ["--model_path", str(m), "--prompt", "   "],
                       "--prompt is empty"),
    "evaluate --output_dir unwritable": ("evaluate", lambda t, m, k, p: put(t / "afile", "x") and [
        "--model_path", str(m), "--test_file", str(write_jsonl(t / "test.jsonl")),
        "--output_dir", str(t / "afile" / "report")], "is not writable"),
    "evaluate --output_dir on a full disk": ("evaluate", lambda t, m, k, p: no_space(p) or [
        "--model_path", str(m), "--output_dir", str(t / "report")], "no space left on device"),
    "evaluate --test_file not UTF-8": ("evaluate", lambda t, m, k, p: [
        "--model_path", str(m), "--test_file", str(put(t / "test.jsonl", b'{"instruction": "\xff", "response": "x"}\n'))],
        "test.jsonl:1: not UTF-8 text (byte 0xff"),
    "evaluate --test_file missing": ("evaluate", lambda t, m, k, p: [
        "--model_path", str(m), "--test_file", str(t / "none.jsonl")], "file not found"),
    "evaluate --predictions not UTF-8": ("evaluate", lambda t, m, k, p: [
        "--predictions", str(put(t / "p.jsonl", b"\xfe\n")), "--test_file", str(write_jsonl(t / "test.jsonl"))], "not UTF-8"),
    "--model_path of another architecture": ("evaluate", lambda t, m, k, p: T5Config(
        d_model=8, num_layers=1, num_heads=1, d_kv=8, d_ff=8, vocab_size=16).save_pretrained(t / "t5") or [
        "--model_path", str(t / "t5"), "--prompt", "hola"], "holds a 't5' model, not a liquid checkpoint"),
    "--model_path with a tokenizer that does not match": ("evaluate", lambda t, m, k, p: mismatched_checkpoint(
        t / "mm", k) and ["--model_path", str(t / "mm"), "--prompt", "hola"],
        "tokens but the model expects"),
    "--model_path missing": ("evaluate", lambda t, m, k, p: ["--model_path", str(t / "none")], "does not exist"),
    "evaluate zero --num_beams": ("evaluate", lambda t, m, k, p: ["--model_path", str(m), "--num_beams", "0"],
                                  "--num_beams must be >= 1"),
}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under root with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line(case, tmp_path, model_dir, tokenizer, monkeypatch, capsys):
    tool, build, expected = CASES[case]
    argv = build(tmp_path, model_dir, tokenizer, monkeypatch)
    before = tree(tmp_path)
    model_before = tree(model_dir)
    monkeypatch.setattr(evaluation, "generate_answers", _no_generation)  # refusals come before any generation
    capsys.readouterr()
    try:
        code = (cli.main if tool == "main" else evaluate.main)(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, (case, err[-2000:])
    assert len(errors) == 1 and expected in errors[0], (case, err[-2000:])
    assert "Traceback" not in err
    monkeypatch.undo()
    assert tree(tmp_path) == before, case  # nothing written, nothing overwritten
    assert tree(model_dir) == model_before
    assert not (tmp_path / MARKER).exists()  # no pickle was ever executed


def _no_generation(*_args, **_kwargs):
    raise AssertionError("generation started before the bad input was refused")


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_malicious_pickle_is_never_executed(tmp_path, tokenizer):
    """A trainer_state.pt planted in a checkpoint (old or new format) is never unpickled."""
    marker = tmp_path / MARKER
    evil = plant_pickle_checkpoint(tmp_path / "old" / "checkpoint-3", marker)
    with pytest.raises(ckpt.CheckpointError, match="pickled trainer_state.pt, refused"):
        ckpt.load_trainer_state(evil)
    assert ckpt.find_latest_checkpoint(evil.parent) is None

    # A pickle planted beside a valid new-format checkpoint: the manifest does not list it, so it is refused.
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=len(tokenizer)))
    good = ckpt.save_checkpoint(tmp_path / "run" / "checkpoint-4", model, tokenizer, ckpt.TrainerState(step=4))
    torch.save({"step": Evil(marker)}, good / "trainer_state.pt")
    with pytest.raises(ckpt.CheckpointError, match="not in its manifest: trainer_state.pt"):
        ckpt.load_trainer_state(good)
    assert not marker.exists()
    # the planting is real: unpickling that file does run the code
    torch.load(good / "trainer_state.pt", weights_only=False)
    assert marker.read_text() == "executed"


def test_long_prompt_is_truncated_with_a_warning(model_dir, capsys, caplog):
    prompt = " ".join(["Suma 1 y 2."] * 200)
    code = evaluate.main(["--model_path", str(model_dir), "--prompt", prompt, "--max_new_tokens", "3"])
    assert code == 0
    assert capsys.readouterr().out.startswith("> Suma 1 y 2.")
    limit = LiquidConfig.from_preset("tiny").max_position_embeddings
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and f"truncated to the first {min(evaluation.MAX_SOURCE_TOKENS, limit)}" in warnings[0]
    dropped = int(warnings[0].split("(")[1].split()[0])
    total = int(warnings[0].split(" has ")[1].split()[0])
    assert dropped == total - min(evaluation.MAX_SOURCE_TOKENS, limit) > 0
