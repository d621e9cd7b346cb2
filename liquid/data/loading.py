"""Row schema and loading of instruction data through `datasets`.

Every split is normalised to the columns of `Example`:
``instruction, response, task, answer, concepts, subset``. Only ``instruction`` and
``response`` are required; the others get defaults (``""`` or ``[]``).

Sources, in order of precedence:
- local files (``train_file`` / ``validation_file`` / ``test_file``): ``.jsonl``/``.json``,
  ``.csv``, ``.tsv`` or ``.parquet``;
- a data set (``dataset``): a hub name, or a local folder of data files;
- the shipped splits ``data/{train,validation,test}.jsonl`` under ``data_dir``.

Every data problem raises `DataError` with a one-line message (``file:line`` where a line is known).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import datasets

logger = logging.getLogger(__name__)

REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SPLIT_NAMES = ("train", "validation", "test")
REQUIRED_COLUMNS = ("instruction", "response")
OPTIONAL_DEFAULTS: dict[str, Any] = {"task": "", "answer": "", "concepts": [], "subset": ""}
JSON_EXTENSIONS = (".jsonl", ".json")
BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}
TSV_DELIMITER = "\t"
MAX_SHOWN_CHARS = 80
CONCEPT_SEPARATOR = "|"
NORMALIZED_FEATURES = datasets.Features({
    "instruction": datasets.Value("string"), "response": datasets.Value("string"),
    "task": datasets.Value("string"), "answer": datasets.Value("string"),
    "concepts": datasets.List(datasets.Value("string")), "subset": datasets.Value("string"),
})


class DataError(ValueError):
    """One-line, user-facing data problem (missing file, malformed row, missing column, empty split)."""


@dataclass
class Example:
    """One instruction/response row; field order is the JSONL key order."""

    instruction: str
    response: str
    task: str
    answer: str
    concepts: list[str] = field(default_factory=list)
    subset: str = ""

    def to_json(self) -> str:
        """Serialise as one JSONL line (UTF-8 letters kept, keys in field order)."""
        return json.dumps(
            {"instruction": self.instruction, "response": self.response, "task": self.task,
             "answer": self.answer, "concepts": list(self.concepts), "subset": self.subset},
            ensure_ascii=False,
        )


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in BUILDERS:
        raise DataError(f"{path}: unknown extension '{ext}' (use one of {', '.join(sorted(BUILDERS))})")
    return ext


def _check_text(value: Any, column: str, where: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: '{column}' must be a non-empty string, got {str(value)[:MAX_SHOWN_CHARS]!r}")


def _validate_json_lines(path: Path, instruction_column: str, response_column: str) -> None:
    """Check a JSONL file line by line so errors can name ``file:line``."""
    rows = 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [c for c in (instruction_column, response_column) if c not in row]
            if missing:
                raise DataError(f"{where}: missing column(s) {missing}; present: {sorted(row)}")
            for column in (instruction_column, response_column):
                _check_text(row[column], column, where)
            rows += 1
    if rows == 0:
        raise DataError(f"{path}: empty split (no rows)")


def _validate_table(split: datasets.Dataset, name: str, instruction_column: str, response_column: str,
                    first_line: int) -> None:
    """Check columns and text cells of a loaded table; ``first_line`` is the file line of row 0."""
    if len(split) == 0:
        raise DataError(f"{name}: empty split (no rows)")
    missing = [c for c in (instruction_column, response_column) if c not in split.column_names]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}; present: {split.column_names}")
    for column in (instruction_column, response_column):
        for index, value in enumerate(split.data.column(column).to_pylist()):
            _check_text(value, column, f"{name}:{index + first_line}")


def _load_file(path: Path, instruction_column: str, response_column: str) -> datasets.Dataset:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    ext = _extension(path)
    if ext != ".parquet":
        _check_utf8(path)
    is_json_lines = ext == ".jsonl" or (ext == ".json" and _looks_like_json_lines(path))
    if is_json_lines:
        _validate_json_lines(path, instruction_column, response_column)
    elif ext in (".csv", ".tsv") and _count_nonblank_lines(path) <= 1:  # a header alone is an empty split
        raise DataError(f"{path}: empty split (no rows)")
    kwargs: dict[str, Any] = {"delimiter": TSV_DELIMITER} if ext == ".tsv" else {}
    try:
        split = datasets.load_dataset(BUILDERS[ext], data_files={"data": str(path)}, split="data", **kwargs)
    except Exception as error:  # datasets raises many types for unreadable files
        raise DataError(f"{path}: cannot read ({type(error).__name__}: {str(error).splitlines()[0][:MAX_SHOWN_CHARS]})") from None
    header_lines = 1 if ext in (".csv", ".tsv") else 0
    _validate_table(split, path.name, instruction_column, response_column, first_line=1 + header_lines)
    return split


def _check_utf8(path: Path) -> None:
    """Refuse a text file that is not UTF-8, naming the first bad line and byte."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path.name}:{number}: not UTF-8 text (byte 0x{line[error.start]:02x} at column "
                                f"{error.start + 1}); save the file as UTF-8") from None


def _count_nonblank_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def _looks_like_json_lines(path: Path) -> bool:
    """A ``.json`` file holds JSON lines unless it starts with a top-level array."""
    with path.open(encoding="utf-8") as handle:
        head = handle.read(1 << 10).lstrip()
    return not head.startswith("[")


def normalize_columns(split: datasets.Dataset, instruction_column: str = "instruction",
                      response_column: str = "response") -> datasets.Dataset:
    """Rename the text columns and add missing optional columns with their defaults."""
    renames = {old: new for old, new in ((instruction_column, "instruction"), (response_column, "response")) if old != new}
    clashing = [new for old, new in renames.items() if new in split.column_names]
    if clashing:
        split = split.remove_columns(clashing)
    if renames:
        split = split.rename_columns(renames)
    for column, default in OPTIONAL_DEFAULTS.items():
        if column not in split.column_names:
            split = split.add_column(column, [list(default) if isinstance(default, list) else default] * len(split))
    keep = list(REQUIRED_COLUMNS) + list(OPTIONAL_DEFAULTS)
    split = split.select_columns(keep)
    if split.features == NORMALIZED_FEATURES:
        return split
    return split.map(_coerce_optional, batched=True, features=NORMALIZED_FEATURES, desc="normalising columns")


def _coerce_concepts(concepts: Any) -> list[str]:
    if isinstance(concepts, str):  # CSV/TSV cells: "a|b|c"
        return [c.strip() for c in concepts.split(CONCEPT_SEPARATOR) if c.strip()]
    return [str(c) for c in (concepts or [])]


def _coerce_optional(batch: Mapping[str, list]) -> dict[str, list]:
    """Give optional columns stable types (CSV cells may be empty/None or numbers)."""
    def text(values: list) -> list[str]:
        return ["" if v is None else str(v) for v in values]

    return {"task": text(batch["task"]), "answer": text(batch["answer"]),
            "concepts": [_coerce_concepts(c) for c in batch["concepts"]], "subset": text(batch["subset"])}


def _resolve_data_dir(data_dir: str | Path) -> Path:
    path = Path(data_dir)
    if path.is_absolute() or path.is_dir():
        return path
    return REPO_DATA_DIR.parent / path if (REPO_DATA_DIR.parent / path).is_dir() else REPO_DATA_DIR


def _load_dataset(dataset: str, dataset_config: str | None, splits: Sequence[str],
                  instruction_column: str, response_column: str) -> dict[str, datasets.Dataset]:
    logger.info("loading data set %s (config %s)", dataset, dataset_config)
    try:
        loaded = datasets.load_dataset(dataset, dataset_config)
    except Exception as error:  # hub/network/script errors: report in one line
        raise DataError(f"cannot load data set '{dataset}': {str(error).splitlines()[0][:MAX_SHOWN_CHARS * 2]}") from None
    absent = [s for s in splits if s not in loaded]
    if absent:
        raise DataError(f"data set '{dataset}' has no split(s) {absent}; present: {sorted(loaded)}")
    for name in splits:
        _validate_table(loaded[name], f"{dataset}[{name}]", instruction_column, response_column, first_line=0)
    return {name: loaded[name] for name in splits}


def load_splits(train_file: str | Path | None = None, validation_file: str | Path | None = None,
                test_file: str | Path | None = None, *, dataset: str | None = None,
                dataset_config: str | None = None, data_dir: str | Path = "data",
                instruction_column: str = "instruction", response_column: str = "response",
                splits: Iterable[str] = SPLIT_NAMES) -> datasets.DatasetDict:
    """Load and normalise the requested splits (see the module docstring for sources)."""
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLIT_NAMES]
    if unknown:
        raise DataError(f"unknown split(s) {unknown}; choose from {list(SPLIT_NAMES)}")
    given = {name: f for name, f in zip(SPLIT_NAMES, (train_file, validation_file, test_file)) if f is not None}
    if given and dataset is not None:
        raise DataError("give either data files or --dataset, not both")
    if dataset is not None:
        raw = _load_dataset(dataset, dataset_config, splits, instruction_column, response_column)
    else:
        if given:
            files = {name: Path(f) for name, f in given.items() if name in splits}
        else:
            root = _resolve_data_dir(data_dir)
            files = {name: root / f"{name}.jsonl" for name in splits}
        raw = {name: _load_file(path, instruction_column, response_column) for name, path in files.items()}
    return datasets.DatasetDict(
        {name: normalize_columns(split, instruction_column, response_column) for name, split in raw.items()}
    )
