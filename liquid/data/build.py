"""Build the shipped Spanish instruction splits deterministically.

Usage::

    python -m liquid.data.build --output_dir data --seed 0

Writes ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` (one `Example` per line, UTF-8), and the
test-only long-input subset ``test_long.jsonl`` (`liquid.data.long_text_tasks`). ``--long_train_rows N``
adds N long texts made of training sentences to ``train.jsonl`` (0, the shipped data, adds none).
Each task draws from its own ``random.Random(f"{seed}:{task}")``, so the output is byte-identical
for a seed. The builder raises if a validation/test instruction occurs in train (or in both
validation and test).
"""

from __future__ import annotations

import argparse
import logging
import random
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

from liquid.data.loading import SPLIT_NAMES, Example
from liquid.data.long_text_tasks import long_text_examples
from liquid.data.math_tasks import (DEFAULT_EQUATION_DIVISION, DEFAULT_EQUATION_LHS, DEFAULT_TRAIN_NUMBERS,
                                    DEFAULT_WORD_DIVISION, DEFAULT_WORD_SUMS, EQUATION_DIVISIONS, EQUATION_LHS,
                                    TRAIN_NUMBERS, WORD_DIVISIONS, WORD_SUMS, division_fact_examples,
                                    equation_examples, fraction_equation_examples, word_problem_examples)
from liquid.data.qa_tasks import qa_examples
from liquid.data.sentiment_tasks import DEFAULT_RESPONSE_FORMAT as DEFAULT_SENTIMENT_RESPONSE
from liquid.data.sentiment_tasks import RESPONSE_FORMATS as SENTIMENT_RESPONSES
from liquid.data.sentiment_tasks import sentiment_examples

logger = logging.getLogger(__name__)

DEFAULT_SEED = 0
TASK_SIZES: dict[str, dict[str, int]] = {  # rows per split and task
    "train": {"math": 18000, "qa": 9000, "sentiment": 9000},
    "validation": {"math": 334, "qa": 334, "sentiment": 334},
    "test": {"math": 500, "qa": 500, "sentiment": 500},
}
LONG_TEST_ROWS = 200
LONG_TEST_FILE = "test_long.jsonl"
EQUATION_SHARE = 2 / 3  # of the math rows; the rest are word problems
# The train split holds this many times the mix's word problems (30,000 for the shipped 6,000), and main.py's default
# mix (`--oversample word_problem=0.2`, liquid/training/args.py) draws a fresh fifth of them each epoch: more distinct
# (distance, hours) pairs and prices than one epoch can memorise (docs/experiments.md, session 20).
WORD_PROBLEM_POOL = 5

Generator = Callable[[random.Random, Mapping[str, int]], dict[str, list[Example]]]


def _math_parts(sizes: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    equations = {split: round(EQUATION_SHARE * sizes[split]["math"]) for split in SPLIT_NAMES}
    words = {split: sizes[split]["math"] - equations[split] for split in SPLIT_NAMES}
    return {"equation": equations, "word_problem": words}


def check_disjoint(splits: Mapping[str, Sequence[Example]]) -> None:
    """Raise ValueError if a held-out instruction occurs in train, or in both validation and test."""
    train = {row.instruction for row in splits["train"]}
    validation = {row.instruction for row in splits["validation"]}
    for name, other in (("validation", train), ("test", train), ("test", validation)):
        leaked = sorted({row.instruction for row in splits[name]} & other)
        if leaked:
            raise ValueError(f"{len(leaked)} {name} instruction(s) also in another split, e.g. {leaked[0]!r}")


def build_splits(seed: int = DEFAULT_SEED, sizes: Mapping[str, Mapping[str, int]] = TASK_SIZES,
                 long_train_rows: int = 0,
                 sentiment_response: str = DEFAULT_SENTIMENT_RESPONSE,
                 train_word_numbers: str = DEFAULT_TRAIN_NUMBERS,
                 word_division: str = DEFAULT_WORD_DIVISION,
                 word_sums: str = DEFAULT_WORD_SUMS,
                 equation_division: str = DEFAULT_EQUATION_DIVISION,
                 equation_lhs: str = DEFAULT_EQUATION_LHS,
                 division_facts: int = 0,
                 fraction_equations: int = 0,
                 train_word_problems: int | None = None,
                 word_problem_pool: int = WORD_PROBLEM_POOL,
                 train_equations: int | str | None = None) -> dict[str, list[Example]]:
    """Generate every split (train with `long_train_rows` long texts of training sentences; sentiment responses
    in the `sentiment_response` format; the train split's word problems on the `train_word_numbers` grid of
    `liquid.data.math_tasks.TRAIN_NUMBERS`; their divisions written in the `word_division` format of
    `liquid.data.math_tasks.WORD_DIVISIONS` and their multiplications' sums in the `word_sums` format of
    `liquid.data.math_tasks.WORD_SUMS`; the equations' divisions in the `equation_division` format of
    `liquid.data.math_tasks.EQUATION_DIVISIONS` and their first step as `equation_lhs` (`EQUATION_LHS`); plus
    `division_facts` rows of `division_fact_examples` and `fraction_equations` of `fraction_equation_examples`; with
    `word_problem_pool` times the mix's share of train word problems, or `train_word_problems` of them when given: a
    pool for `main.py --oversample word_problem=K` with a fractional K to draw from afresh each epoch; with
    `train_equations` train equations, "all" for every non-held-out triple, None for the mix's share), verify
    disjointness and shuffle rows of all tasks together. The sentiment format changes only the sentiment responses,
    the number grid and the drills only the train split: the same seed gives the same validation and test splits
    (the division, sum and equation formats rewrite responses, never an instruction or answer)."""
    if fraction_equations < 0:
        raise ValueError(f"fraction_equations must be >= 0, got {fraction_equations}")
    math_parts = _math_parts(sizes)
    if word_problem_pool < 1:
        raise ValueError(f"word_problem_pool must be >= 1, got {word_problem_pool}")
    math_parts["word_problem"]["train"] *= word_problem_pool
    if train_word_problems is not None:
        if train_word_problems < 0:
            raise ValueError(f"train_word_problems must be >= 0, got {train_word_problems}")
        math_parts["word_problem"]["train"] = train_word_problems
    if train_equations == "all":
        math_parts["equation"]["train"] = None
    elif train_equations is not None:
        if not isinstance(train_equations, int) or train_equations < 0:
            raise ValueError(f"train_equations must be an int >= 0 or 'all', got {train_equations!r}")
        math_parts["equation"]["train"] = train_equations
    generators: tuple[tuple[str, Generator, Mapping[str, int]], ...] = (
        ("equation", partial(equation_examples, division=equation_division, lhs=equation_lhs),
         math_parts["equation"]),
        ("word_problem", partial(word_problem_examples, train_numbers=train_word_numbers, division=word_division,
                                         sums=word_sums),
         math_parts["word_problem"]),
        ("qa", qa_examples, {split: sizes[split]["qa"] for split in SPLIT_NAMES}),
        ("sentiment", partial(sentiment_examples, response_format=sentiment_response),
         {split: sizes[split]["sentiment"] for split in SPLIT_NAMES}),
    )
    splits: dict[str, list[Example]] = {split: [] for split in SPLIT_NAMES}
    for name, generate, counts in generators:
        produced = generate(random.Random(f"{seed}:{name}"), counts)
        for split in SPLIT_NAMES:
            splits[split].extend(produced[split])
    if long_train_rows:
        splits["train"].extend(long_text_examples(seed, long_train_rows, split="train"))
    order_rng = random.Random(f"{seed}:order")
    for split in SPLIT_NAMES:
        order_rng.shuffle(splits[split])
    if division_facts:  # mixed in after the shuffle above, with their own generator: the other rows keep their order
        splits["train"].extend(division_fact_examples(random.Random(f"{seed}:division_facts"), division_facts))
        random.Random(f"{seed}:division_facts:order").shuffle(splits["train"])
    if fraction_equations:  # the same: their own generator, mixed in last
        splits["train"].extend(fraction_equation_examples(random.Random(f"{seed}:fraction_equations"),
                                                          fraction_equations))
        random.Random(f"{seed}:fraction_equations:order").shuffle(splits["train"])
    check_disjoint(splits)
    return splits


def write_splits(splits: Mapping[str, Sequence[Example]], output_dir: str | Path) -> list[Path]:
    """Write ``{split}.jsonl`` files (``\\n`` line ends) and return their paths."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, rows in splits.items():
        path = directory / f"{split}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(row.to_json() + "\n" for row in rows)
        paths.append(path)
    return paths


def write_long_test(seed: int, output_dir: str | Path, count: int = LONG_TEST_ROWS) -> Path:
    """Write the long-input test subset; raise if one of its instructions is a short split's."""
    rows = long_text_examples(seed, count)
    path = Path(output_dir) / LONG_TEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(row.to_json() + "\n" for row in rows)
    return path


def summarize(splits: Mapping[str, Sequence[Example]]) -> dict[str, Counter]:
    """Row counts per (task, subset) for each split."""
    return {split: Counter((row.task, row.subset) for row in rows) for split, rows in splits.items()}


def _count_or_all(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a row count or 'all', got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="data", help="folder for the three JSONL files")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument("--long_train_rows", type=int, default=0,
                        help="long texts of training sentences added to train.jsonl (default 0: none)")
    parser.add_argument("--sentiment_response", choices=SENTIMENT_RESPONSES, default=DEFAULT_SENTIMENT_RESPONSE,
                        help="sentiment answers: the label alone, or the deciding words quoted before it (cue)")
    parser.add_argument("--train_word_numbers", choices=tuple(TRAIN_NUMBERS), default=DEFAULT_TRAIN_NUMBERS,
                        help="number grid of the train split's word problems: the held-out splits' (shipped), a "
                             "denser one (dense: speeds in steps of 1 km/h, unit prices up to 49 euros), or half of "
                             "the speeds on each grid (mixed), or a grid several times the rows (wide: 2-19 items at "
                             "2-59 euros, percentage bases to 990, 2-9 hours, vehicles to 250 km/h); held-out keys "
                             "stay out of train either way")
    parser.add_argument("--word_division", choices=tuple(WORD_DIVISIONS), default=DEFAULT_WORD_DIVISION,
                        help="how word problems write a division: one place-value chain (place: 680 / 8 = (640 + 40) "
                             "/ 8 = 80 + 5 = 85) or long division, one step per quotient digit (long: 68 = 8 * 8 + 4. "
                             "40 = 8 * 5. 680 / 8 = 85; multiples for two-digit divisors), or always two parts for a "
                             "quotient of 10 or more (tens: 320 / 8 = (320 + 0) / 8 = 40 + 0 = 40), one per quotient "
                             "digit (digits: 440 / 4 = (400 + 40 + 0) / 4 = 100 + 10 + 0 = 110), or the rest first as "
                             "a subtraction (rest, the default: 760 - 720 = ... = 40. 760 / 8 = (720 + 40) / 8 = 90 + 5 = "
                             "95); all splits change")
    parser.add_argument("--word_sums", choices=tuple(WORD_SUMS), default=DEFAULT_WORD_SUMS,
                        help="how word problems add the products of a multiplication: one place value of each "
                             "later term per link (place: 560 + 40 = 600) or the hundreds kept apart while the tens "
                             "are added (column: 560 + 40 = 500 + 60 + 40 = 500 + 100 = 600); all splits change")
    parser.add_argument("--equation_division", choices=EQUATION_DIVISIONS, default=DEFAULT_EQUATION_DIVISION,
                        help="how equations write a division: one place-value chain (place: -(120 / 8) = -((80 + 40) "
                             "/ 8) = -(10 + 5) = -15) or the rest of a two-digit quotient first, as its own "
                             "subtraction (rest: 120 - 80 = 40. x - 19 = -120 / 8 = -(120 / 8) = -((80 + 40) / 8) = "
                             "...); all splits change")
    parser.add_argument("--equation_lhs", choices=EQUATION_LHS, default=DEFAULT_EQUATION_LHS,
                        help="the first step of an equation that undoes b first: with the side it computes (write: "
                             "-2x = 13 - 17 = -(17 - 13) = ... = -4) or the arithmetic alone (omit: 13 - 17 = ... = "
                             "-4); all splits change")
    parser.add_argument("--division_facts", type=int, default=0,
                        help="train rows drilling the step of long division, 'Divide 68 entre 8 con resto.' -> "
                             "'68 = 8 * 8 + 4.' (the 440 facts with a one-digit divisor, cycled; default 0: none)")
    parser.add_argument("--fraction_equations", type=int, default=0,
                        help="train rows of equations whose solution is not an integer (the first step's result "
                             "not a multiple of a: 'Resuelve la ecuación 2x + 3 = 16.' -> '... x = 13 / 2. La solución "
                             "es x = 13/2.'); default 0: none")
    parser.add_argument("--train_word_problems", type=int, default=None,
                        help="train rows of word problems (default: %d times the mix's 6,000, the pool from which "
                             "main.py's default --oversample word_problem=%g draws a fresh share each epoch)"
                             % (WORD_PROBLEM_POOL, 1 / WORD_PROBLEM_POOL))
    parser.add_argument("--train_equations", type=_count_or_all, default=None,
                        help="train rows of equations, or 'all' for every (form, a, b, c) triple the held-out "
                             "splits leave (22,964; default: the mix's 12,000)")
    args = parser.parse_args(argv)
    if args.train_word_problems is not None and args.train_word_problems < 0:
        parser.error(f"--train_word_problems must be >= 0, got {args.train_word_problems}")
    if isinstance(args.train_equations, int) and args.train_equations < 0:
        parser.error(f"--train_equations must be >= 0 or 'all', got {args.train_equations}")
    if args.fraction_equations < 0:
        parser.error(f"--fraction_equations must be >= 0, got {args.fraction_equations}")
    if args.division_facts < 0:
        parser.error(f"--division_facts must be >= 0, got {args.division_facts}")
    if args.long_train_rows < 0:
        parser.error(f"--long_train_rows must be >= 0, got {args.long_train_rows}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    splits = build_splits(args.seed, long_train_rows=args.long_train_rows, sentiment_response=args.sentiment_response,
                          train_word_numbers=args.train_word_numbers, word_division=args.word_division,
                          word_sums=args.word_sums, equation_division=args.equation_division,
                          equation_lhs=args.equation_lhs, division_facts=args.division_facts,
                          fraction_equations=args.fraction_equations,
                          train_word_problems=args.train_word_problems, train_equations=args.train_equations)
    for path in write_splits(splits, args.output_dir):
        logger.info("wrote %s", path)
    logger.info("wrote %s (%d long texts)", write_long_test(args.seed, args.output_dir), LONG_TEST_ROWS)
    for split, counts in summarize(splits).items():
        logger.info("%s: %d rows %s", split, sum(counts.values()), dict(sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
