"""Evaluation pipeline behind `evaluate.py`: find a checkpoint, generate answers in batches, score them.

The metric definitions live in `liquid.metrics`; this module only wires model, tokenizer, data and metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedTokenizerBase

import liquid  # noqa: F401  (registers the liquid model with the Auto classes)
from liquid import metrics
from liquid.training.checkpoint import resolve_model_dir

logger = logging.getLogger(__name__)
MAX_SOURCE_TOKENS = 1024  # instructions are truncated beyond this (the long-text subset reaches ~470 tokens)

MAX_TRUNCATION_WARNINGS = 5  # instructions named one by one before a summary line
MAX_UNKNOWN_SHARE = 0.02  # a test file whose tokens are more than 2% <unk> was not made for this tokenizer


class EvaluationError(ValueError):
    """A one-line, user-facing problem with a checkpoint or a test file."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory itself, or a run directory: its latest `checkpoint-*` (the final weights), else `best/`."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"--model_path {path} does not exist")
    try:
        return resolve_model_dir(path)
    except FileNotFoundError as err:
        raise EvaluationError(str(err)) from None


def load_model_and_tokenizer(path: str | Path, device: str | torch.device = "cpu"):
    """Load a liquid checkpoint and the tokenizer saved beside it; refuse anything else in one line."""
    directory = resolve_checkpoint(path)
    try:
        config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError) as err:
        raise EvaluationError(f"{directory}/config.json is not a readable model config ({err})") from None
    if config.model_type != "liquid":
        raise EvaluationError(f"{directory} holds a {config.model_type!r} model, not a liquid checkpoint")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as err:
        raise EvaluationError(f"{directory} has no tokenizer saved beside the model ({err})") from None
    if len(tokenizer) != config.vocab_size:
        raise EvaluationError(
            f"{directory}: tokenizer has {len(tokenizer)} tokens but the model expects {config.vocab_size}"
        )
    if not (directory / "model.safetensors").is_file():
        raise EvaluationError(f"{directory} has no model.safetensors (pickled weights are refused: loading them "
                              f"can run code)")
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(directory, use_safetensors=True).to(device).eval()
    except Exception as err:  # safetensors/transformers raise many types for a damaged file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise EvaluationError(f"{directory}: cannot load the model ({first})") from None
    return model, tokenizer, directory


def check_tokenizer_matches(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], source: str) -> None:
    """Refuse a test file written in symbols the checkpoint's tokenizer never saw."""
    unknown = total = 0
    for text in texts[:500]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        unknown += sum(i == tokenizer.unk_token_id for i in ids)
        total += len(ids)
    if total and unknown / total > MAX_UNKNOWN_SHARE:
        raise EvaluationError(
            f"{source} does not match the checkpoint's tokenizer: {unknown / total:.0%} of its tokens are "
            f"{tokenizer.unk_token}"
        )


@torch.no_grad()
def generate_answers(
    model,
    tokenizer: PreTrainedTokenizerBase,
    instructions: Sequence[str],
    *,
    batch_size: int = 64,
    max_source_length: int = MAX_SOURCE_TOKENS,
    progress: bool = True,
    **generation_kwargs,
) -> list[str]:
    """Greedy/beam/sampled answers for every instruction, batched by length (returned in input order).

    Instructions longer than the model accepts (min of `max_source_length` and the config's
    `max_position_embeddings`) are truncated to that many tokens, with a warning saying by how much.
    """
    limit = min(max_source_length, getattr(model.config, "max_position_embeddings", None) or max_source_length)
    warn_truncated(tokenizer, instructions, limit)
    order = sorted(range(len(instructions)), key=lambda i: len(instructions[i]))
    answers: list[str] = [""] * len(instructions)
    bar = tqdm(total=len(instructions), desc="generating", unit="ex", disable=not progress)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        enc = tokenizer([instructions[i] for i in chunk], return_tensors="pt", padding=True,
                        truncation=True, max_length=limit).to(model.device)
        out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **generation_kwargs)
        for i, text in zip(chunk, tokenizer.batch_decode(out, skip_special_tokens=True)):
            answers[i] = text.strip()
        bar.update(len(chunk))
    bar.close()
    return answers


def warn_truncated(tokenizer: PreTrainedTokenizerBase, instructions: Sequence[str], limit: int) -> int:
    """Log one warning per instruction longer than `limit` tokens (how many tokens are dropped); returns the count."""
    lengths = [len(ids) for ids in tokenizer(list(instructions), truncation=False)["input_ids"]]
    long = [(i, n) for i, n in enumerate(lengths) if n > limit]
    for index, length in long[:MAX_TRUNCATION_WARNINGS]:
        logger.warning("instruction %d has %d tokens; truncated to the first %d (%d dropped)",
                       index + 1, length, limit, length - limit)
    if len(long) > MAX_TRUNCATION_WARNINGS:
        logger.warning("%d more instructions truncated to %d tokens", len(long) - MAX_TRUNCATION_WARNINGS, limit)
    return len(long)


def score_predictions(rows: Sequence[Mapping], predictions: Sequence[str]) -> tuple[list[dict], dict]:
    """Per-row scores and the aggregate report (overall, per task, per subset, chrF and ROUGE-L)."""
    if len(rows) != len(predictions):
        raise EvaluationError(f"{len(predictions)} predictions for {len(rows)} test rows")
    entity_vocab = {row["answer"] for row in rows if row.get("task") == "qa" and row.get("answer")}
    scored = []
    for row, prediction in zip(rows, predictions):
        scores = metrics.score_row(prediction, row, entity_vocab=entity_vocab or None)
        scored.append({**row, "prediction": prediction, **scores})
    report = metrics.aggregate(scored)
    add_corpus_scores(report, scored)
    return scored, report


def add_corpus_scores(report: dict, scored: Sequence[Mapping]) -> None:
    """chrF and ROUGE-L for the whole set and for each task (corpus-level, so not averaged per row)."""
    groups: dict[str, list[Mapping]] = {"overall": list(scored)}
    for row in scored:
        groups.setdefault(row.get("task") or "other", []).append(row)
    for name, group in groups.items():
        target = report["overall"] if name == "overall" else report["per_task"].setdefault(name, {})
        predictions = [row["prediction"] for row in group]
        references = [row["response"] for row in group]
        target["chrf"] = metrics.corpus_chrf(predictions, references)
        target["rouge_l"] = metrics.corpus_rouge_l(predictions, references)


COLUMNS = (("accuracy", "acc"), ("coherence", "coher"), ("coverage", "cover"), ("chrf", "chrF"),
           ("rouge_l", "ROUGE-L"), ("length", "len"), ("count", "n"))


def format_table(report: Mapping) -> str:
    """A fixed-width table: one line per task, then overall."""
    header = f"{'task':<12}" + "".join(f"{label:>9}" for _, label in COLUMNS)
    lines = [header, "-" * len(header)]
    rows = [*sorted(report["per_task"].items()), ("overall", report["overall"])]
    for name, values in rows:
        cells = []
        for key, _ in COLUMNS:
            value = values.get(key)
            if value is None:
                cells.append(f"{'-':>9}")
            elif key in ("length", "count"):
                cells.append(f"{value:>9.1f}" if key == "length" else f"{int(value):>9d}")
            else:
                cells.append(f"{value:>9.3f}")
        lines.append(f"{name:<12}" + "".join(cells))
    return "\n".join(lines)


class Timer:
    """Wall time of a block, for examples per second."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *_):
        self.seconds = time.perf_counter() - self.start
