"""evaluate.py end to end on a tiny checkpoint, plus its one-line errors."""

import json

import pytest
import torch
from transformers import T5Config

import evaluate
from liquid import LiquidConfig, LiquidFoundationModelOptimized, metrics
from liquid.data import train_tokenizer
from liquid.evaluation import format_table, score_predictions

ROWS = [
    {"instruction": "Resuelve la ecuación 3x + 5 = 20.", "task": "math", "answer": "5", "subset": "equation",
     "response": "Restamos 5 en ambos lados: 3x = 20 - 5 = 15. Dividimos ambos lados entre 3: x = 15 / 3 = 5. "
                 "La solución es x = 5.", "concepts": ["restamos", "dividimos", "x = 5"]},
    {"instruction": "¿Cuál es la capital de Francia?", "task": "qa", "answer": "París", "subset": "seen_fact",
     "response": "La capital de Francia es París. Es importante porque es la sede del gobierno.",
     "concepts": ["París", "Francia", "capital"]},
    {"instruction": "Analiza el sentimiento del siguiente texto: \"El hotel fue muy bueno.\"", "task": "sentiment",
     "answer": "positivo", "subset": "sentiment", "response": "El sentimiento del texto es positivo.",
     "concepts": ["positivo"]},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt")
    tokenizer = train_tokenizer([r["instruction"] + "\n" + r["response"] for r in ROWS] * 20, vocab_size=300)
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=len(tokenizer)))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_report_and_predictions_are_written(checkpoint, tmp_path, capsys):
    test_file = write_jsonl(tmp_path / "test.jsonl", ROWS)
    out = tmp_path / "report"
    code = evaluate.main(["--model_path", str(checkpoint), "--test_file", str(test_file), "--max_new_tokens", "8",
                          "--output_dir", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "overall" in printed and "examples/s" in printed
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["per_task"]) == {"math", "qa", "sentiment"}
    for group in [report["overall"], *report["per_task"].values()]:
        for key in ("accuracy", "coherence", "coverage", "chrf", "rouge_l"):
            assert 0.0 <= group[key] <= 1.0
    assert report["settings"]["max_new_tokens"] == 8
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ROWS) and "prediction" in json.loads(lines[0])


def test_run_directory_resolves_to_its_best_checkpoint(checkpoint, tmp_path):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    for f in checkpoint.iterdir():
        (run / "best" / f.name).write_bytes(f.read_bytes())
    test_file = write_jsonl(tmp_path / "test.jsonl", ROWS[:1])
    assert evaluate.main(["--model_path", str(run), "--test_file", str(test_file), "--max_new_tokens", "4"]) == 0


def test_predictions_of_another_system_score_like_the_metrics(tmp_path, capsys):
    test_file = write_jsonl(tmp_path / "test.jsonl", ROWS)
    predictions = [r["response"] for r in ROWS]
    predictions[0] = predictions[0].replace("x = 5.", "x = 6.")  # valid steps, wrong final answer
    pred_file = write_jsonl(tmp_path / "pred.jsonl", [{"prediction": p} for p in predictions])
    out = tmp_path / "report"
    assert evaluate.main(["--predictions", str(pred_file), "--test_file", str(test_file),
                          "--output_dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    expected = [metrics.accuracy(p, r) for p, r in zip(predictions, ROWS)]
    assert report["overall"]["accuracy"] == pytest.approx(sum(expected) / len(expected))
    assert report["per_task"]["math"]["accuracy"] == 0.0
    assert report["per_task"]["qa"]["accuracy"] == 1.0


def test_prompt_shows_which_steps_check_out(checkpoint, capsys):
    assert evaluate.main(["--model_path", str(checkpoint), "--prompt", "Resuelve la ecuación 3x + 5 = 20.",
                          "--max_new_tokens", "6"]) == 0
    assert "Resuelve la ecuación" in capsys.readouterr().out


def expect_error(argv, capsys, fragment):
    assert evaluate.main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # earlier lines are log records
    assert last.startswith("error: ") and fragment in last, last


def test_missing_model_path(tmp_path, capsys):
    expect_error(["--model_path", str(tmp_path / "nope")], capsys, "does not exist")


def test_foreign_checkpoint(tmp_path, capsys):
    T5Config(vocab_size=10, d_model=8, d_ff=8, num_layers=1, num_heads=1, d_kv=8).save_pretrained(tmp_path)
    expect_error(["--model_path", str(tmp_path)], capsys, "not a liquid checkpoint")


def test_directory_without_checkpoint(tmp_path, capsys):
    expect_error(["--model_path", str(tmp_path)], capsys, "no model there")


def test_test_file_that_does_not_match_the_tokenizer(checkpoint, tmp_path, capsys):
    foreign = [{"instruction": "これは日本語の文です。数学の問題を解いてください。", "response": "答え"}]
    test_file = write_jsonl(tmp_path / "foreign.jsonl", foreign)
    expect_error(["--model_path", str(checkpoint), "--test_file", str(test_file)], capsys,
                 "does not match the checkpoint's tokenizer")


def test_malformed_predictions_file(tmp_path, capsys):
    test_file = write_jsonl(tmp_path / "test.jsonl", ROWS)
    bad = tmp_path / "pred.jsonl"
    bad.write_text('{"prediction": "x = 5"}\n{oops\n', encoding="utf-8")
    expect_error(["--predictions", str(bad), "--test_file", str(test_file)], capsys, "pred.jsonl:2")


def test_format_table_lists_every_task_and_overall():
    scored, report = score_predictions(ROWS, [r["response"] for r in ROWS])
    table = format_table(report)
    for name in ("math", "qa", "sentiment", "overall"):
        assert name in table
    assert all(row["accuracy"] == 1.0 for row in scored)
