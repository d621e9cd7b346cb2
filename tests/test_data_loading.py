"""Tests for liquid.data.loading: every source format and every one-line error."""

import csv
import json
from pathlib import Path

import datasets
import pytest

from liquid.data.loading import DataError, load_splits

COLUMNS = ["instruction", "response", "task", "answer", "concepts", "subset"]
ROWS = [
    {"prompt": "Resuelve la ecuación 2x + 1 = 5.", "completion": "Restamos 1 en ambos lados: 2x = 5 - 1 = 4. "
     "Dividimos ambos lados entre 2: x = 4 / 2 = 2. La solución es x = 2."},
    {"prompt": "¿Cuál es la capital de Perú?", "completion": "La capital de Perú es Lima."},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_table(path: Path, rows: list[dict], delimiter: str) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_default_loads_shipped_splits() -> None:
    splits = load_splits()
    assert {name: len(split) for name, split in splits.items()} == {"train": 60000, "validation": 1002, "test": 1500}
    assert splits["test"].column_names == COLUMNS
    first = json.loads((Path(__file__).resolve().parents[1] / "data" / "test.jsonl").open().readline())
    assert splits["test"][0] == first


def test_only_requested_splits(tmp_path: Path) -> None:
    assert list(load_splits(splits=("validation",))) == ["validation"]
    path = _write_jsonl(tmp_path / "mine.jsonl", [{"instruction": "a", "response": "b"}])
    assert list(load_splits(test_file=path, splits=("test",))) == ["test"]


def test_jsonl_renames_columns_and_fills_defaults(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "train.jsonl", ROWS)
    split = load_splits(train_file=path, instruction_column="prompt", response_column="completion")["train"]
    assert split.column_names == COLUMNS
    assert split[1] == {"instruction": ROWS[1]["prompt"], "response": ROWS[1]["completion"], "task": "",
                        "answer": "", "concepts": [], "subset": ""}


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv(tmp_path: Path, suffix: str, delimiter: str) -> None:
    rows = [{"instruction": r["prompt"], "response": r["completion"], "concepts": "Lima|capital"} for r in ROWS]
    path = _write_table(tmp_path / f"train{suffix}", rows, delimiter)
    split = load_splits(train_file=path, splits=("train",))["train"]
    assert split["instruction"] == [r["instruction"] for r in rows]
    assert split[0]["concepts"] == ["Lima", "capital"]


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "validation.parquet"
    datasets.Dataset.from_list([{"q": r["prompt"], "a": r["completion"], "task": "qa"} for r in ROWS]).to_parquet(path)
    split = load_splits(validation_file=path, instruction_column="q", response_column="a",
                        splits=("validation",))["validation"]
    assert split["response"] == [r["completion"] for r in ROWS]
    assert split["task"] == ["qa", "qa"]


def test_local_dataset_folder(tmp_path: Path) -> None:
    for name in ("train", "validation", "test"):
        _write_jsonl(tmp_path / f"{name}.jsonl", [{"instruction": f"{name} {i}", "response": "ok"} for i in range(3)])
    splits = load_splits(dataset=str(tmp_path))
    assert sorted(splits) == ["test", "train", "validation"]
    assert splits["validation"]["instruction"] == ["validation 0", "validation 1", "validation 2"]


def _message(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_splits(train_file=tmp_path / "nope.jsonl", splits=("train",))
    assert "not found" in _message(error) and "nope.jsonl" in _message(error)


def test_malformed_json_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = [json.dumps({"instruction": "a", "response": "b"})] * 16 + ['{"instruction": "a", "response": ']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_splits(train_file=path, splits=("train",))
    assert _message(error).startswith("train.jsonl:17: invalid JSON")


@pytest.mark.parametrize("bad", [{"instruction": "", "response": "b"}, {"instruction": "a", "response": 3},
                                 {"instruction": "a", "response": None}])
def test_non_string_text(tmp_path: Path, bad: dict) -> None:
    path = _write_jsonl(tmp_path / "test.jsonl", [{"instruction": "a", "response": "b"}, bad])
    with pytest.raises(DataError) as error:
        load_splits(test_file=path, splits=("test",))
    assert _message(error).startswith("test.jsonl:2: ") and "non-empty string" in _message(error)


def test_empty_csv_cell_names_line(tmp_path: Path) -> None:
    path = _write_table(tmp_path / "train.csv", [{"instruction": "a", "response": "b"},
                                                 {"instruction": "c", "response": ""}], ",")
    with pytest.raises(DataError) as error:
        load_splits(train_file=path, splits=("train",))
    assert _message(error).startswith("train.csv:3: ")  # header is line 1


def test_missing_columns_lists_present(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "train.jsonl", ROWS)
    with pytest.raises(DataError) as error:
        load_splits(train_file=path, splits=("train",))
    assert "missing column" in _message(error) and "completion" in _message(error) and "prompt" in _message(error)
    table = _write_table(tmp_path / "train.csv", ROWS, ",")
    with pytest.raises(DataError) as error:
        load_splits(train_file=table, splits=("train",))
    assert "['instruction', 'response']" in _message(error) and "'completion', 'prompt'" in _message(error).replace(
        "['prompt', 'completion']", "'completion', 'prompt'")


@pytest.mark.parametrize("name, content", [("train.jsonl", ""), ("train.jsonl", "\n\n"),
                                           ("train.csv", "instruction,response\n")])
def test_empty_split(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_splits(train_file=path, splits=("train",))
    assert "empty split" in _message(error)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("hola\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_splits(train_file=path, splits=("train",))
    assert "unknown extension '.txt'" in _message(error)


def test_dataset_missing_split(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [{"instruction": "a", "response": "b"}])
    with pytest.raises(DataError) as error:
        load_splits(dataset=str(tmp_path))
    assert "no split(s)" in _message(error) and "train" in _message(error)
