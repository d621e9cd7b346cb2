"""Teacher-forced accuracy of every arithmetic link of the math answers, grouped by link template.

    python scripts/link_accuracy.py --model_path checkpoints/<run> [--data_file data/validation.jsonl] [--top 25]

The reference answer is fed to the decoder (teacher forcing) and, for every link ``lhs = rhs`` of an
arithmetic chain (links with ``x`` are skipped), the link counts as right when the arg-max prediction of every
token of ``rhs`` equals the reference token. Links are grouped by template: numbers of two or more digits
become ``N``, single digits ``d`` (``55 - 6 = 49`` -> ``N - d = N``). A row is solved only if all of its
links are, so this says which kinds of step a format or recipe change must make easier, and how often
each kind occurs.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liquid.evaluation import load_model_and_tokenizer  # noqa: E402

IGNORE_INDEX = -100
_NUMBER_RE = re.compile(r"\d+")
_CHAIN_RE = re.compile(r"[^.:]+=[^.]+")  # a sentence part after its last ':' that holds an '='


def template(expression: str) -> str:
    """``-(57 + 6)`` -> ``-(N + d)``: multi-digit numbers become N, single digits d."""
    return _NUMBER_RE.sub(lambda m: "N" if len(m.group()) > 1 else "d", expression.strip())


def link_spans(text: str) -> list[tuple[str, int, int]]:
    """(template ``lhs = rhs``, start, end of rhs in `text`) for every arithmetic link of `text`."""
    spans = []
    for match in _CHAIN_RE.finditer(text):
        parts = match.group().split("=")
        position = match.start() + len(parts[0]) + 1
        for lhs, rhs in zip(parts, parts[1:]):
            start, end = position, position + len(rhs)
            position = end + 1
            if "x" not in lhs and "x" not in rhs:
                spans.append((f"{template(lhs)} = {template(rhs)}", start, end))
    return spans


@torch.no_grad()
def link_accuracy(model, tokenizer, rows: list[dict], batch_size: int = 50) -> dict[str, list[int]]:
    """template -> [right, total] over the math rows' reference links."""
    stats: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for first in range(0, len(rows), batch_size):
        batch = rows[first:first + batch_size]
        source = tokenizer([r["instruction"] for r in batch], return_tensors="pt", padding=True)
        target = tokenizer([r["response"] for r in batch], return_tensors="pt", padding=True,
                           return_offsets_mapping=True)
        labels = target["input_ids"].masked_fill(target["attention_mask"] == 0, IGNORE_INDEX)
        logits = model(input_ids=source["input_ids"], attention_mask=source["attention_mask"], labels=labels).logits
        right = logits.argmax(-1) == labels  # (B, T)
        for row_index, row in enumerate(batch):
            offsets = target["offset_mapping"][row_index].tolist()
            for key, start, end in link_spans(row["response"]):
                tokens = [t for t, (s, e) in enumerate(offsets)
                          if e > s and s >= start and e <= end and labels[row_index, t] != IGNORE_INDEX]
                stats[key][0] += int(all(right[row_index, t] for t in tokens))
                stats[key][1] += 1
    return dict(stats)


def format_report(stats: dict[str, list[int]], top: int) -> str:
    total = sum(n for _, n in stats.values())
    wrong = sum(n - r for r, n in stats.values())
    lines = [f"links {total}, wrong {wrong} ({wrong / max(total, 1):.1%}), templates {len(stats)}", "",
             "| link template | links | accuracy | wrong |", "|---|---|---|---|"]
    ranked = sorted(stats.items(), key=lambda kv: -(kv[1][1] - kv[1][0]))
    for key, (r, n) in ranked[:top]:
        lines.append(f"| `{key}` | {n} | {r / n:.3f} | {n - r} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_path", required=True, help="run or checkpoint directory")
    parser.add_argument("--data_file", default="data/validation.jsonl", help="JSONL with the math rows")
    parser.add_argument("--top", type=int, default=25, help="templates shown, most wrong links first")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.data_file).read_text(encoding="utf-8").splitlines() if line]
    rows = [row for row in rows if row.get("task") == "math"]
    if not rows:
        parser.error(f"{args.data_file}: no math rows")
    model, tokenizer, _ = load_model_and_tokenizer(args.model_path, "cpu")
    model.eval()
    print(format_report(link_accuracy(model, tokenizer, rows), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
