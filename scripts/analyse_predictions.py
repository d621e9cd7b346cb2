"""Read an `evaluate.py` predictions.jsonl: per-task accuracy on the ablation's test sample, and where math goes wrong.

    python scripts/analyse_predictions.py <eval dir>/predictions.jsonl                       # both reports
    python scripts/analyse_predictions.py <eval dir>/predictions.jsonl --ablation_rows 600   # the ablation's rows
    python scripts/analyse_predictions.py <eval dir>/predictions.jsonl --samples             # README example rows

* Ablation rows: `python -m liquid.ablate --max_test_rows N` scores every variant on one seeded sample of N
  test rows; this prints a full run's accuracy on the same rows (from the per-row `accuracy` field that
  evaluate.py wrote), so a default run can sit in the ablation's table without training it again.
* Copy errors: a wrong equation whose first step (the text up to its second `=`, e.g.
  `Restamos 15 en ambos lados: -6x = 51 - 15 =`) differs from the reference's copied a number or sign
  from the instruction wrongly; the other wrong equations went wrong later, in the arithmetic.
* Samples (`--samples`): the README's table of example outputs, rows drawn with `random.Random(7)` among the
  right and the wrong answers of each task (`SAMPLE_PLAN`), printed as markdown rows.
* Multiples of the coefficient: of the wrong equations that undo b first and end their first step on a wrong
  result R, how many R are multiples of the coefficient a (the right R always is: it is a * x), against the share
  expected if each wrong R were any integer within 20 of the right one (`coefficient_multiples`), and how many
  equations state a fractional solution (`fraction_answers`; every held-out equation's is an integer).
* Word problems by kind: wrong / rows per kind of word problem (change, total, percent, speed, distance, time),
  the kind read from the reference's first clause (`WORD_PROBLEM_KINDS`).
* First wrong link: for every wrong math answer, the link where the prediction first leaves its reference, as
  the template of the link's left side (numbers of two or more digits read `N`, single digits `d`: `100 / 4 =`
  -> `N / d`), counted per subset; `(text)` when it leaves the reference in words, not in a link's result.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from liquid.ablate import TEST_SAMPLE_SEED  # noqa: E402


def first_step(text: str) -> str:
    """The copied part of an equation answer: everything before its second `=`."""
    parts = text.split("=")
    return "=".join(parts[:2]) if len(parts) > 2 else text


def copy_error_counts(rows: list[dict]) -> dict[str, int]:
    """Over the `equation` rows: how many, how many wrong, how many wrong in the first step."""
    equations = [r for r in rows if r.get("subset") == "equation"]
    wrong = [r for r in equations if r["accuracy"] < 1]
    copy = [r for r in wrong if first_step(r["prediction"]) != first_step(r["response"])]
    return {"equations": len(equations), "wrong": len(wrong), "copy_errors": len(copy),
            "later_errors": len(wrong) - len(copy)}


FIRST_RESULT_RE = re.compile(r"^(?:Restamos|Sumamos) \d+ en ambos lados: [^.]*= (-?\d+)\. ")
COEFFICIENT_RE = re.compile(r"Dividimos ambos lados entre (-?\d+)")
CHANCE_WINDOW = 20  # a wrong result "by chance": any integer within this distance of the right one
SOLUTION_PREFIX = "La solución es x = "


def coefficient_multiples(rows: list[dict]) -> tuple[int, int, float]:
    """Wrong equations that undo b first and whose first step (``Restamos 4 en ambos lados: ... = R.``) ends on a
    wrong R: (how many, how many of those R are multiples of the coefficient a, how many would be if each wrong R
    were any integer within `CHANCE_WINDOW` of the right one). The right R is always a multiple of a (it is a * x);
    a model that writes a * (a guessed x) instead of computing R shows far more multiples than chance."""
    wrong = multiples = 0
    chance = 0.0
    for row in rows:
        if row.get("subset") != "equation" or row["accuracy"] >= 1:
            continue
        predicted, reference = FIRST_RESULT_RE.match(row["prediction"]), FIRST_RESULT_RE.match(row["response"])
        coefficient = COEFFICIENT_RE.search(row["response"])
        if not (predicted and reference and coefficient) or predicted.group(1) == reference.group(1):
            continue
        a, right = abs(int(coefficient.group(1))), int(reference.group(1))
        wrong += 1
        multiples += int(predicted.group(1)) % a == 0
        nearby = [right + offset for offset in range(-CHANCE_WINDOW, CHANCE_WINDOW + 1) if offset]
        chance += sum(value % a == 0 for value in nearby) / len(nearby)
    return wrong, multiples, chance


def fraction_answers(rows: list[dict]) -> tuple[int, int]:
    """Equations (all of which have an integer solution) whose prediction states a fraction, ``La solución es x =
    13/2``, and how many of those the stored accuracy scores right. Predictions scored before session 28 count an
    unreduced fraction equal to the solution (``x = 21/3`` for 7) as solved; the metric now requires lowest terms,
    so this is 0 for files scored since. What a model trained with `--fraction_equations` rows can write."""
    stated = [row for row in rows if row.get("subset") == "equation" and SOLUTION_PREFIX in row["prediction"]
              and "/" in row["prediction"].rpartition(SOLUTION_PREFIX)[2]]
    return len(stated), sum(row["accuracy"] >= 1 for row in stated)


def link_template(expression: str) -> str:
    """``-(81 - 9)`` -> ``-(N - d)``: numbers of two or more digits read N, single digits d."""
    return re.sub(r"\d+", lambda m: "N" if len(m.group()) > 1 else "d", expression).strip()


def first_wrong_link(prediction: str, response: str) -> str | None:
    """The template of the link where `prediction` first differs from `response` (None if they are equal)."""
    if prediction == response:
        return None
    same = next((i for i, (a, b) in enumerate(zip(prediction, response)) if a != b), min(len(prediction), len(response)))
    head, equals, result = response[:same].rpartition("=")
    if not equals or re.search(r"[a-wyzA-Z]", result):  # left in the words, before any link's result
        return "(text)"
    return link_template(re.split(r"[=:]", head)[-1]) + " ="


def first_wrong_links(rows: list[dict]) -> collections.Counter:
    """Over the wrong math rows: (subset, first wrong link template) -> count."""
    return collections.Counter((r.get("subset") or "math", first_wrong_link(r["prediction"], r["response"]))
                               for r in rows if r.get("task") == "math" and r["accuracy"] < 1)


def link_operation(template: str) -> str:
    """The operation a first-wrong-link template asks for: ``N / d =`` division, ``(N + N) / d =`` division split,
    ``N + N + d =`` sum, ``N - N =`` subtraction, ``N * d =`` product; ``(text)`` stays text."""
    if template == "(text)":
        return "text"
    if "/" in template:
        return "division split" if "+" in template.split("/")[0] else "division"
    for sign, name in (("*", "product"), ("+", "sum"), ("-", "subtraction")):
        if sign in template.lstrip("-("):
            return name
    return "other"


def word_problem_operations(rows: list[dict]) -> collections.Counter:
    """Over the wrong word problems: the operation of the first wrong link -> count."""
    return collections.Counter(link_operation(first_wrong_link(r["prediction"], r["response"]) or "")
                               for r in rows if r.get("subset") == "word_problem" and r["accuracy"] < 1)


# first words of a reference word-problem answer -> its kind (the six generators of liquid/data/math_tasks.py)
WORD_PROBLEM_KINDS = (("El cambio", "change"), ("Multiplicamos la cantidad", "total"), ("La velocidad", "speed"),
                      ("La distancia", "distance"), ("El tiempo", "time"), ("El 50%", "percent"),
                      ("El 25%", "percent"), ("Calculamos el 10%", "percent"))


def word_problem_kind(response: str) -> str:
    return next((kind for start, kind in WORD_PROBLEM_KINDS if response.startswith(start)), "other")


def word_problem_errors(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """(wrong, rows) per word-problem kind, kinds sorted by name."""
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for row in rows:
        if row.get("subset") == "word_problem":
            entry = counts[word_problem_kind(row["response"])]
            entry[0] += row["accuracy"] < 1.0
            entry[1] += 1
    return {kind: (wrong, total) for kind, (wrong, total) in sorted(counts.items())}


def ablation_sample(rows: list[dict], count: int) -> list[dict]:
    """The rows `liquid.ablate --max_test_rows count` scores (same seed, same order)."""
    if not count or count >= len(rows):
        return rows
    return [rows[i] for i in sorted(random.Random(TEST_SAMPLE_SEED).sample(range(len(rows)), count))]


def task_accuracy(rows: list[dict]) -> dict[str, float]:
    scores: dict[str, list[float]] = collections.defaultdict(list)
    for row in rows:
        scores[row["task"]].append(row["accuracy"])
        scores["overall"].append(row["accuracy"])
    return {task: sum(values) / len(values) for task, values in scores.items()}


SAMPLE_PLAN = (("sentiment", True, 2), ("qa", True, 2), ("qa", False, 1), ("math", True, 2), ("math", False, 3))
SAMPLE_SEED = 7


def sample_rows(rows: list[dict], plan=SAMPLE_PLAN, seed: int = SAMPLE_SEED) -> list[tuple[dict, bool]]:
    """(row, right) pairs: for each (task, right, k) of `plan`, k rows drawn from that task's right or wrong answers."""
    rng = random.Random(seed)
    chosen = []
    for task, right, count in plan:
        pool = [r for r in rows if r.get("task") == task and (r["accuracy"] == 1.0) == right]
        chosen += [(row, right) for row in rng.sample(pool, min(count, len(pool)))]
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--ablation_rows", type=int, default=600, help="size of the ablation's test sample")
    parser.add_argument("--top", type=int, default=10, help="how many first-wrong-link templates to print")
    parser.add_argument("--samples", action="store_true", help="print the README's example rows instead")
    args = parser.parse_args(argv)
    try:
        rows = [json.loads(line) for line in args.predictions.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: {args.predictions}: {error}") from None
    if not rows or "accuracy" not in rows[0]:
        raise SystemExit(f"error: {args.predictions}: not an evaluate.py predictions.jsonl (no `accuracy` field)")
    if args.samples:
        for row, right in sample_rows(rows):
            print(f"| {row['task']} | {row['instruction']} | {row['prediction']} | {'✓' if right else '✗'} |")
        return
    sample = ablation_sample(rows, args.ablation_rows)
    scores = task_accuracy(sample)
    print(f"accuracy on the ablation's {len(sample)} test rows: "
          + ", ".join(f"{task} {value:.3f}" for task, value in sorted(scores.items())))
    counts = copy_error_counts(rows)
    print(f"equations {counts['equations']}, wrong {counts['wrong']}: copy error in the first step "
          f"{counts['copy_errors']}, wrong later {counts['later_errors']}")
    wrong, multiples, chance = coefficient_multiples(rows)
    if wrong:
        print(f"wrong results of the first step (undo b): {wrong}, multiples of the coefficient a: {multiples} "
              f"({multiples / wrong:.2f}; by chance about {chance / wrong:.2f})")
    fractions, scored_right = fraction_answers(rows)
    if fractions:
        print(f"equations answered with a fraction: {fractions} (scored right, an unreduced fraction equal to the "
              f"solution: {scored_right})")
    kinds = word_problem_errors(rows)
    if kinds:
        print("word problems wrong / rows by kind: "
              + ", ".join(f"{kind} {wrong}/{total}" for kind, (wrong, total) in kinds.items()))
    operations = word_problem_operations(rows)
    if operations:
        print("wrong word problems by the operation of their first wrong link: "
              + ", ".join(f"{name} {count}" for name, count in operations.most_common()))
    links = first_wrong_links(rows)
    print(f"first wrong link of the {sum(links.values())} wrong math answers (most common):")
    for (subset, template), count in links.most_common(args.top):
        print(f"  {count:4d}  {subset:<13} {template}")


if __name__ == "__main__":
    main()
