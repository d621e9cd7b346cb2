"""Tests for the data generator and the shipped splits in data/."""

import ast
import json
import operator
import random
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from liquid.data.build import (LONG_TEST_FILE, LONG_TEST_ROWS, WORD_PROBLEM_POOL, build_splits, check_disjoint,
                               write_long_test, write_splits)
from liquid.data.build import main as build_main
from liquid.data.facts import CAPITALS
from liquid.data.loading import Example
from liquid.data.long_text_tasks import MAX_SENTENCES, MIN_SENTENCES, long_text_examples
from liquid.data.math_tasks import A_RANGE, B_RANGE, EQUATION_FORMS, X_RANGE, division_fact_examples
from liquid.data.sentiment_tasks import NEGATIVE_ADJECTIVES, POSITIVE_ADJECTIVES, SUBJECTS, inflect
from liquid.metrics import score_row

DATA = Path(__file__).resolve().parents[1] / "data"
SPLITS = ("train", "validation", "test")
KEYS = ["instruction", "response", "task", "answer", "concepts", "subset"]


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in (DATA / f"{s}.jsonl").open(encoding="utf-8")] for s in SPLITS}


def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    write_splits(build_splits(seed=0), tmp_path)
    for split in SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (DATA / f"{split}.jsonl").read_bytes(), split


def test_other_seed_changes_data_but_not_sizes() -> None:
    small = {"train": {"math": 60, "qa": 30, "sentiment": 30},
             "validation": {"math": 12, "qa": 12, "sentiment": 10},
             "test": {"math": 12, "qa": 12, "sentiment": 10}}
    a, b, a_again = build_splits(0, small), build_splits(1, small), build_splits(0, small)
    assert [r.to_json() for r in a["train"]] == [r.to_json() for r in a_again["train"]]
    assert [r.to_json() for r in a["train"]] != [r.to_json() for r in b["train"]]
    # train: 40 equations, 5 x 20 word problems (the pool, WORD_PROBLEM_POOL), 30 qa, 30 sentiment
    assert {s: len(v) for s, v in a.items()} == {s: len(v) for s, v in b.items()} == {"train": 200, "validation": 34,
                                                                                      "test": 34}


def test_sizes(rows: dict[str, list[dict]]) -> None:
    expected = {
        "train": {("math", "equation"): 12000, ("math", "word_problem"): 30000, "qa": 9000, "sentiment": 9000},
        "validation": {"math": 334, "qa": 334, "sentiment": 334},
        "test": {"math": 500, "qa": 500, "sentiment": 500},
    }
    for split, wanted in expected.items():
        by_task = Counter(r["task"] for r in rows[split])
        by_subset = Counter((r["task"], r["subset"]) for r in rows[split])
        for key, count in wanted.items():
            assert (by_subset[key] if isinstance(key, tuple) else by_task[key]) == count, (split, key)
    assert [len(rows[s]) for s in SPLITS] == [60000, 1002, 1500]


def test_schema(rows: dict[str, list[dict]]) -> None:
    allowed_subsets = {
        ("train", "math"): {"equation", "word_problem"}, ("train", "qa"): {"seen_fact"},
        ("train", "sentiment"): {"sentiment"},
    }
    for split in SPLITS:
        for row in rows[split]:
            assert list(row) == KEYS
            assert all(isinstance(row[k], str) and row[k] for k in ("instruction", "response", "task", "answer"))
            assert isinstance(row["concepts"], list) and all(isinstance(c, str) for c in row["concepts"])
            assert row["task"] in {"math", "qa", "sentiment"}
            default = {"math": {"equation", "word_problem"}, "qa": {"seen_fact", "unseen_fact"},
                       "sentiment": {"novel_combination"}}[row["task"]]
            assert row["subset"] in allowed_subsets.get((split, row["task"]), default)
    line = (DATA / "test.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert line == json.dumps(json.loads(line), ensure_ascii=False)


def test_instructions_disjoint(rows: dict[str, list[dict]]) -> None:
    train = {r["instruction"] for r in rows["train"]}
    validation = {r["instruction"] for r in rows["validation"]}
    test = {r["instruction"] for r in rows["test"]}
    assert not train & validation and not train & test and not validation & test
    assert len(test) == len(rows["test"]) and len(validation) == len(rows["validation"])


def test_builder_raises_on_leak() -> None:
    row = Example("¿Cuánto es el 10% de 50?", "Calculamos el 10% de 50: 50 / 10 = 5. El 10% de 50 es 5.", "math", "5")
    with pytest.raises(ValueError, match="test instruction"):
        check_disjoint({"train": [row], "validation": [], "test": [row]})


EQUATION = re.compile(r"([-\d(x][\dx+\-() ]*)=\s*(-?\d+)")


def _equation(instruction: str) -> tuple[str, int]:
    """The equation's left side and right-hand integer, read from the instruction text."""
    left, right = EQUATION.search(instruction).groups()
    return left.strip(), int(right)


def _triple(instruction: str) -> tuple:
    """(form signature, a, b, c) read from the instruction text, independently of the generator."""
    left, c = _equation(instruction)
    return re.sub(r"\d+", "N", left), tuple(int(n) for n in re.findall(r"\d+", left)), c


def test_equation_triples_disjoint(rows: dict[str, list[dict]]) -> None:
    triples = {s: {_triple(r["instruction"]) for r in rows[s] if r["subset"] == "equation"} for s in SPLITS}
    assert not triples["train"] & triples["test"]
    assert not triples["train"] & triples["validation"]
    assert not triples["validation"] & triples["test"]
    signatures = {t[0] for t in triples["train"]}
    assert len(signatures) >= 7  # every form is present in training


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(expression: str, x: Fraction | None = None) -> Fraction:
    """Plain evaluator for + - * / ( ) integers and ``x`` (implicit products ``3x``, ``3(``)."""
    expression = re.sub(r"(\d)\s*(x|\()", r"\1*\2", expression)

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        if isinstance(node, ast.Name) and node.id == "x" and x is not None:
            return x
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(ast.dump(node))

    return walk(ast.parse(expression, mode="eval").body)


def _assert_math_steps(row: dict) -> None:
    """Every arithmetic link of a math response is exactly true, and the last sentence gives the answer."""
    sentences = row["response"].removesuffix(".").split(". ")
    answer = Fraction(int(row["answer"]))
    steps = 0
    for sentence in sentences:
        body = sentence.split(":", 1)[1] if ":" in sentence else sentence
        if "=" not in body or "%" in body:
            continue
        parts = [p.strip() for p in body.split("=")]
        for left, right in zip(parts, parts[1:]):
            if "x" in left or "x" in right:
                continue  # an equation link: the question check below covers x
            assert _evaluate(left) == _evaluate(right), (row["response"], left, right)
            steps += 1
    assert steps >= 1
    assert row["answer"] in sentences[-1]
    if row["subset"] == "equation":
        left, right = _equation(row["instruction"])
        assert _evaluate(left, answer) == right, row["instruction"]
        assert sentences[-1] == f"La solución es x = {row['answer']}"
        assert -10 <= answer <= 10


def test_math_steps_are_correct(rows: dict[str, list[dict]]) -> None:
    for split in SPLITS:
        checked = rows[split][::4] if split == "train" else rows[split]  # a quarter of train keeps this fast
        for row in (r for r in checked if r["task"] == "math"):
            _assert_math_steps(row)


# small splits with enough word problems to meet every division kind
DIVISION_SIZES = {"train": {"math": 600, "qa": 12, "sentiment": 12},
                  "validation": {"math": 120, "qa": 12, "sentiment": 12},
                  "test": {"math": 120, "qa": 12, "sentiment": 12}}


def _word_key(row: Example) -> tuple:
    """What a word problem is about, phrasing aside: the percentage it asks for, if any, its response's first
    clause and the first expression it computes (``760 / 8``: the numbers in the generator's order; for a division
    whose rest comes first, ``760 - 720 = ... = 40. 760 / 8 = ...``, the division, since the subtraction drops d)."""
    clause, rest = row.response.split(": ", 1)
    division = re.match(r"\d+ - \d+ = [^.]*\. (\d+ / \d+) =", rest)
    first = division.group(1) if division else rest.split(" =", 1)[0]
    return tuple(re.findall(r"(\d+)%", row.instruction)), clause, first


@pytest.mark.parametrize("grid", ["dense", "mixed", "wide"])
def test_denser_train_numbers_change_train_word_problems_only(grid: str) -> None:
    """--train_word_numbers dense, mixed (the default) or wide: validation and test are those of the shipped grid; the
    train split's word problems draw speeds off the 5 km/h grid and prices above 25, every link still true, no
    held-out problem in train."""
    small = {"train": {"math": 1800, "qa": 30, "sentiment": 30},
             "validation": {"math": 120, "qa": 12, "sentiment": 12},
             "test": {"math": 120, "qa": 12, "sentiment": 12}}
    shipped, dense = build_splits(0, small, train_word_numbers="shipped"), build_splits(0, small, train_word_numbers=grid)
    for split in ("validation", "test"):
        assert [r.to_json() for r in shipped[split]] == [r.to_json() for r in dense[split]]
    words = [r for r in dense["train"] if r.subset == "word_problem"]
    assert sorted(r.to_json() for r in shipped["train"] if r.subset != "word_problem") == \
           sorted(r.to_json() for r in dense["train"] if r.subset != "word_problem")
    speeds = [int(m) for r in words for m in re.findall(r"(\d+) km/h", r.instruction + " " + r.response)]
    assert any(v % 5 for v in speeds) and all(v % 5 == 0 for r in shipped["train"]
                                              for v in map(int, re.findall(r"(\d+) km/h", r.instruction)))
    assert max(int(re.search(r"(\d+) euros cada", r.instruction).group(1)) for r in words
               if re.search(r"(\d+) euros cada", r.instruction)) > 25
    held = {_word_key(r) for split in ("validation", "test") for r in dense[split] if r.subset == "word_problem"}
    assert not held & {_word_key(r) for r in words}
    for row in words:
        _assert_math_steps(json.loads(row.to_json()))
    with pytest.raises(ValueError, match="unknown train_numbers"):
        build_splits(0, small, train_word_numbers="sparse")


def test_wide_grid_pool_of_train_word_problems() -> None:
    """--train_word_numbers wide --train_word_problems N: exactly N train word problems, drawn beyond every range of
    the held-out grid (items, prices, percentage bases, hours, speeds), every link true, none a held-out problem,
    and more distinct problems than the mixed grid gives from as many rows; the other rows and splits unchanged."""
    small = {"train": {"math": 300, "qa": 12, "sentiment": 12},
             "validation": {"math": 120, "qa": 12, "sentiment": 12},
             "test": {"math": 120, "qa": 12, "sentiment": 12}}
    mixed = build_splits(0, small, train_word_problems=1500)
    wide = build_splits(0, small, train_word_numbers="wide", train_word_problems=1500)
    plain = build_splits(0, small, train_word_numbers="wide")
    assert sum(r.subset == "word_problem" for r in plain["train"]) == 500  # 5 x a third of the math rows (the pool)
    for split in ("validation", "test"):
        assert [r.to_json() for r in mixed[split]] == [r.to_json() for r in wide[split]]
    assert sorted(r.to_json() for r in mixed["train"] if r.subset != "word_problem") == \
           sorted(r.to_json() for r in wide["train"] if r.subset != "word_problem")
    words = [r for r in wide["train"] if r.subset == "word_problem"]
    assert len(words) == 1500
    held = {_word_key(r) for split in ("validation", "test") for r in wide[split] if r.subset == "word_problem"}
    assert not held & {_word_key(r) for r in words}
    for row in words:
        _assert_math_steps(json.loads(row.to_json()))
    text = " ".join(r.instruction for r in words)
    assert max(int(n) for n in re.findall(r"(\d+) km/h", text)) > 120
    assert max(int(n) for n in re.findall(r"(\d+) horas", text)) == 9
    assert max(int(n) for n in re.findall(r"% de (\d+)", text)) > 500
    products = (re.search(r"precio: (\d+) \* (\d+)", r.response) for r in words)
    totals = [tuple(map(int, m.groups())) for m in products if m]
    assert max(n for n, _ in totals) > 12 and max(price for _, price in totals) > 49
    mixed_words = [r for r in mixed["train"] if r.subset == "word_problem"]
    assert len({_word_key(r) for r in words}) > len({_word_key(r) for r in mixed_words})
    with pytest.raises(ValueError, match="train_word_problems"):
        build_splits(0, small, train_word_problems=-1)


def test_word_problem_pool_holds_more_distinct_problems_and_keeps_the_held_out_splits() -> None:
    """The default train split holds WORD_PROBLEM_POOL times the mix's word problems (main.py draws a fresh share of
    them each epoch): that many rows, more distinct (kind, numbers) keys than the mix's share, none a held-out key,
    every link true; validation, test and the other train rows are the same rows as with a pool of 1."""
    small = {"train": {"math": 300, "qa": 12, "sentiment": 12},
             "validation": {"math": 120, "qa": 12, "sentiment": 12},
             "test": {"math": 120, "qa": 12, "sentiment": 12}}
    share, pool = build_splits(0, small, word_problem_pool=1), build_splits(0, small)
    assert WORD_PROBLEM_POOL > 2
    words = [r for r in pool["train"] if r.subset == "word_problem"]
    share_words = [r for r in share["train"] if r.subset == "word_problem"]
    assert (len(share_words), len(words)) == (100, 100 * WORD_PROBLEM_POOL)
    assert len({_word_key(r) for r in words}) > 2 * len({_word_key(r) for r in share_words})
    held = {_word_key(r) for split in ("validation", "test") for r in pool[split] if r.subset == "word_problem"}
    assert not held & {_word_key(r) for r in words}
    for row in words:
        _assert_math_steps(json.loads(row.to_json()))
    for split in ("validation", "test"):
        assert sorted(r.to_json() for r in share[split]) == sorted(r.to_json() for r in pool[split])
    assert sorted(r.to_json() for r in share["train"] if r.subset != "word_problem") == \
           sorted(r.to_json() for r in pool["train"] if r.subset != "word_problem")
    with pytest.raises(ValueError, match="word_problem_pool"):
        build_splits(0, small, word_problem_pool=0)


def test_train_equations_all_takes_every_non_held_out_triple_and_keeps_the_held_out_splits() -> None:
    """--train_equations all: train holds every (form, a, b, c) triple of the equation space that validation and test
    do not, each once, every step true; the held-out splits and the other train rows are unchanged."""
    small = {"train": {"math": 30, "qa": 6, "sentiment": 6},
             "validation": {"math": 60, "qa": 6, "sentiment": 6},
             "test": {"math": 90, "qa": 6, "sentiment": 6}}
    share, every = build_splits(0, small), build_splits(0, small, train_equations="all")
    space = len(EQUATION_FORMS) * len(A_RANGE) * len(B_RANGE) * len(X_RANGE)
    held = {_triple(r.instruction) for split in ("validation", "test") for r in every[split] if r.subset == "equation"}
    train = [_triple(r.instruction) for r in every["train"] if r.subset == "equation"]
    assert len(held) == 100 and len(train) == len(set(train)) == space - len(held)
    assert not held & set(train)
    for row in random.Random(0).sample([r for r in every["train"] if r.subset == "equation"], 300):
        _assert_math_steps(json.loads(row.to_json()))
    for split in ("validation", "test"):
        assert sorted(r.to_json() for r in share[split]) == sorted(r.to_json() for r in every[split])
    assert sorted(r.to_json() for r in share["train"] if r.subset != "equation") == \
           sorted(r.to_json() for r in every["train"] if r.subset != "equation")
    assert len([r for r in build_splits(0, small, train_equations=7)["train"] if r.subset == "equation"]) == 7
    with pytest.raises(ValueError, match="train_equations"):
        build_splits(0, small, train_equations=-1)


def _changed_division_responses(division: str) -> tuple[dict, list]:
    """Build DIVISION_SIZES with place and with `division`: check that only responses differ, and only for word
    problems that divide, each link true; return the `division` splits and the changed rows."""
    return _changed_word_responses(" / ", word_division=division)


def _response_changes(base: dict, **option) -> tuple[dict, list[tuple[Example, Example]]]:
    """Build DIVISION_SIZES with the `base` formats and with `option` (`build_splits` keywords) changed: check that
    every row keeps its instruction, answer, concepts and subset; return the splits built with `option` and the
    (before, after) pairs whose response changed (more than 20)."""
    before_splits, after_splits = build_splits(0, DIVISION_SIZES, **base), build_splits(0, DIVISION_SIZES,
                                                                                          **{**base, **option})
    changed = []
    for split in SPLITS:
        for before, after in zip(before_splits[split], after_splits[split], strict=True):
            assert (before.instruction, before.answer, before.concepts, before.subset) == \
                   (after.instruction, after.answer, after.concepts, after.subset)
            if before.response != after.response:
                changed.append((before, after))
    assert len(changed) > 20
    return after_splits, changed


def _changed_word_responses(operation: str, **option: str) -> tuple[dict, list]:
    """Build DIVISION_SIZES with the place formats and with `option` (a `build_splits` keyword) changed: check that
    only responses differ, and only for word problems with `operation`, each link true; return the splits built
    with `option` and the changed rows."""
    other, pairs = _response_changes({"word_division": "place", "word_sums": "place"}, **option)
    for before, after in pairs:
        assert after.subset == "word_problem" and operation in before.response, after.response
        _assert_math_steps(json.loads(after.to_json()))
    return other, [after for _, after in pairs]


def test_word_division_formats_change_division_responses_only() -> None:
    """--word_division place / long: the same rows (instruction, answer, concepts) in every split; only word-problem
    responses that divide differ, each link true in both formats, and a long response states the quotient's
    digits one per step (``68 = 8 * 8 + 4. 40 = 8 * 5. 680 / 8 = 85``)."""
    long, changed = _changed_division_responses("long")
    for row in changed:
        quotient = re.search(r"(\d+) / (\d+)\. ", row.response)
        assert quotient, row.response
        n, d = map(int, quotient.groups())
        assert f"{n} / {d} = " in row.response and str(n // d) in row.response.split(f"{n} / {d} = ")[-1]
    speed = next(r.response for r in long["train"] if "velocidad es la distancia" in r.response and " + " in
                 r.response.split(": ", 1)[1].split(". ")[1])
    step = speed.split(": ", 1)[1].split(". ")[1]  # "68 = 8 * 8 + 4"
    left, right = step.split(" = ")
    assert int(left) == _evaluate(right) and int(right.split(" + ")[1]) < int(right.split(" * ")[0])
    with pytest.raises(ValueError, match="unknown division"):
        build_splits(0, DIVISION_SIZES, word_division="short")


@pytest.mark.parametrize("division", ["tens", "digits", "rest"])
def test_uniform_divisions_change_only_divisions_with_a_quotient_of_ten_or_more(division: str) -> None:
    """--word_division tens / digits / rest: the same rows in every split; a changed response is a word problem
    whose division now reads ``(T + R) / d`` (or one term per quotient digit) with zero terms kept, every link
    true (rest: after the subtraction that computes R)."""
    _, changed = _changed_division_responses(division)
    assert all(re.search(r"\(\d+( \+ \d+)+\) / \d ", row.response) for row in changed)
    assert sum(" + 0) / " in row.response for row in changed) > 5


def test_table_divisions_write_the_divisor_table_before_two_digit_quotients() -> None:
    """--word_division table: the same rows in every split; a changed response is a word problem whose division
    of a two-digit quotient by a one-digit divisor is now preceded by that divisor's table, every link and every
    table entry true, and the reference scores coherence 1."""
    _, changed = _changed_division_responses("table")
    for row in changed:
        row = json.loads(row.to_json())
        assert re.search(r"tabla del (\d): \1(, \d+)+\. \d+ / \1 = ", row["response"]), row["response"]
        assert score_row(row["response"], row)["coherence"] == 1.0, row["response"]
    kinds = {row.response.split(":", 1)[0] for row in changed}
    assert {"La velocidad es la distancia dividida entre el tiempo", "El 25% es la cuarta parte"} <= kinds, kinds


def _assert_true_and_fully_scored(example: Example) -> None:
    """Every link of a math example true, and the metric scores its reference accuracy 1 and coherence 1."""
    row = json.loads(example.to_json())
    _assert_math_steps(row)
    scores = score_row(row["response"], row)
    assert scores["accuracy"] == 1.0 and scores["coherence"] == 1.0, row["response"]


def test_equation_rest_division_changes_only_equations_with_a_two_digit_quotient() -> None:
    """--equation_division rest: the same rows (instruction, answer, concepts, key) in every split, so the splits stay
    disjoint; a changed response is an equation whose division of |n| by a one-digit |d| has a quotient of 10-99,
    now preceded by ``|n| - T = ... = R.`` and written ``(T + R) / |d|``; every link true, and the metric scores the
    reference accuracy 1 and coherence 1."""
    for _, after in _response_changes({}, equation_division="rest")[1]:
        assert after.subset == "equation", after.response
        step = re.search(r"Dividimos ambos lados entre (-?\d+): (\d+) - (\d+) = (?:[^.]* = )?(\d+)\. x", after.response)
        assert step, after.response
        d, n, tens, remainder = (abs(int(value)) for value in step.groups())
        assert 2 <= d <= 9 and 10 * d <= n < 100 * d and tens == 10 * d * (n // (10 * d)), after.response
        assert remainder == n - tens and f"({tens} + {remainder}) / {d}" in after.response, after.response
        _assert_true_and_fully_scored(after)
    with pytest.raises(ValueError, match="unknown equation division"):
        build_splits(0, DIVISION_SIZES, equation_division="long")


def test_equation_rest_division_writes_every_equation_truly() -> None:
    """A tenth of the equation space, and every largest quotient of the divide-first forms, in the rest format:
    each link true, the reference scores coherence 1, and exactly the divisions of |n| by a one-digit |d| with a
    quotient of 10-99 changed."""
    from liquid.data.math_tasks import Equation

    rng = random.Random(0)
    checked = 0
    for form in range(len(EQUATION_FORMS)):
        for a in A_RANGE:
            for b in B_RANGE:
                for x in X_RANGE:
                    if rng.random() > 0.1 and not (form in (2, 3) and b == 20):
                        continue
                    equation = Equation(form, a, b, x)
                    place = equation.example(random.Random(0), "place").response
                    row = json.loads(equation.example(random.Random(0), "rest").to_json())
                    _assert_math_steps(row)
                    assert score_row(row["response"], row)["coherence"] == 1.0, row["response"]
                    division = re.search(r"Dividimos ambos lados entre -?\d+: [^=]*= (-?\d+) / \(?(-?\d+)\)?", place)
                    n, d = (abs(int(value)) for value in division.groups())
                    assert (place != row["response"]) == (2 <= d <= 9 and 10 * d <= n < 100 * d), row["response"]
                    checked += 1
    assert checked > 2000


def test_equation_lhs_omit_drops_only_the_coefficient_before_the_first_step() -> None:
    """--equation_lhs omit: the same rows in every split; the changed responses are exactly the equations that undo
    b first, whose first step is now the arithmetic alone (``Restamos 17 en ambos lados: 13 - 17 = ...``), the rest
    unchanged; every link true, and the metric scores the reference accuracy 1 and coherence 1."""
    first_side = re.compile(r"(?:Restamos|Sumamos) \d+ en ambos lados: (-?\d+x = )")
    changed = _response_changes({}, equation_lhs="omit")[1]
    written = build_splits(0, DIVISION_SIZES)
    assert len(changed) == sum(bool(first_side.match(r.response)) for split in SPLITS for r in written[split])
    for before, after in changed:
        coefficient = first_side.match(before.response)
        assert coefficient and after.response == before.response.replace(coefficient.group(1), "", 1)
        _assert_true_and_fully_scored(after)
    with pytest.raises(ValueError, match="unknown equation lhs"):
        build_splits(0, DIVISION_SIZES, equation_lhs="both")


def test_fraction_equations_are_true_train_only_and_break_the_multiple_of_a() -> None:
    """--fraction_equations N: N train rows (subset fraction_equation) of the forms that undo b first, whose first
    result R is not a multiple of a; every link true, the answer p/q in lowest terms solves the instruction's
    equation, the reference scores accuracy 1 and coherence 1; validation and test are unchanged."""
    base = build_splits(0, DIVISION_SIZES)
    mixed = build_splits(0, DIVISION_SIZES, fraction_equations=300)
    for split in ("validation", "test"):
        assert [r.to_json() for r in mixed[split]] == [r.to_json() for r in base[split]]
    fractions = [r for r in mixed["train"] if r.subset == "fraction_equation"]
    assert len(fractions) == 300 and len(mixed["train"]) == len(base["train"]) + 300
    assert sum("/" in r.answer for r in fractions) == 300  # never an integer
    for example in fractions:
        row = json.loads(example.to_json())
        first, division, solution = row["response"].removesuffix(".").split(". ")
        links = [part.strip() for part in first.split(": ", 1)[1].split("=")[1:]]
        assert len({_evaluate(link) for link in links}) == 1, row["response"]
        result = _evaluate(links[-1])
        coefficient = int(re.match(r"Dividimos ambos lados entre (-?\d+): x = ", division).group(1))
        assert result.denominator == 1 and result % coefficient != 0, row["response"]
        quotients = [_evaluate(link) for link in division.split(": x = ", 1)[1].split(" = ")]
        answer = Fraction(row["answer"])
        assert set(quotients) == {answer} and answer == result / coefficient, row["response"]
        assert answer.denominator > 1 and row["answer"] == f"{answer.numerator}/{answer.denominator}"
        assert solution == f"La solución es x = {row['answer']}"
        left, right = _equation(row["instruction"])
        assert _evaluate(left, answer) == right, row["instruction"]
        scores = score_row(row["response"], row)
        assert scores["accuracy"] == 1.0 and scores["coherence"] == 1.0, row["response"]
    with pytest.raises(ValueError, match="fraction_equations"):
        build_splits(0, DIVISION_SIZES, fraction_equations=-1)


def test_column_sums_change_only_multiplications_with_hundreds() -> None:
    """--word_sums column: the same rows in every split; a changed response is a word problem with a
    multiplication whose products now add their tens apart from the hundreds (``720 + 40 = 700 + 20 + 40 = 700 +
    60 = 760``), every link true; an unknown format is refused."""
    _, changed = _changed_word_responses(" * ", word_sums="column")
    assert all(re.search(r"= (\d)00 \+ \d0 \+ \d0 ", row.response) for row in changed)
    assert any(" = 720 + 40 = 700 + 20 + 40 = 700 + 60 = 760." in row.response for row in changed)
    with pytest.raises(ValueError, match="unknown sums"):
        build_splits(0, DIVISION_SIZES, word_sums="rows")


def test_division_facts_drill_every_long_division_step_in_train_only() -> None:
    """--division_facts N: N train rows 'r = d * q + s' covering all 440 (r, d) of one-digit long division
    before any repeats, every one true with 0 <= s < d; validation and test unchanged, the other train rows too."""
    small = {"train": {"math": 60, "qa": 12, "sentiment": 12},
             "validation": {"math": 30, "qa": 12, "sentiment": 12},
             "test": {"math": 30, "qa": 12, "sentiment": 12}}
    plain, drilled = build_splits(0, small), build_splits(0, small, division_facts=500)
    for split in ("validation", "test"):
        assert [r.to_json() for r in plain[split]] == [r.to_json() for r in drilled[split]]
    facts = [r for r in drilled["train"] if r.subset == "drill"]
    assert len(facts) == 500 and len(drilled["train"]) == len(plain["train"]) + 500
    assert sorted(r.to_json() for r in plain["train"]) == sorted(r.to_json() for r in drilled["train"]
                                                                if r.subset != "drill")
    for row in facts:
        left, right = row.response.removesuffix(".").split(" = ")
        product, _, rest = right.partition(" + ")
        d, q = (int(v) for v in product.split(" * "))
        assert int(left) == d * q + int(rest or 0) and 0 < int(rest or 1) and int(rest or 0) < d, row.response
        assert str(q) == row.answer and f"{left} / {d}" in row.instruction.replace(" entre ", " / ")
    cycle = division_fact_examples(random.Random(0), 440)
    assert {(int(r.response.split(" = ")[0]), int(r.response.split(" = ")[1].split(" * ")[0])) for r in cycle} == \
           {(n, d) for d in range(2, 10) for n in range(10 * d)}
    assert [r.subset for r in drilled["train"][:40]] != ["drill"] * 40  # mixed in, not appended as a block


def test_word_problem_numbers_are_small(rows: dict[str, list[dict]]) -> None:
    for row in (r for r in rows["train"] if r["subset"] == "word_problem"):
        assert all(len(n) <= 3 for n in re.findall(r"\d+", row["instruction"] + row["response"]))


def test_qa_unseen_facts_never_in_train(rows: dict[str, list[dict]]) -> None:
    train_capitals = {r["answer"] for r in rows["train"] if r["task"] == "qa"}
    for split in ("validation", "test"):
        qa = [r for r in rows[split] if r["task"] == "qa"]
        unseen = {r["answer"] for r in qa if r["subset"] == "unseen_fact"}
        seen = {r["answer"] for r in qa if r["subset"] == "seen_fact"}
        assert unseen and not unseen & train_capitals
        assert seen <= train_capitals
    assert len(train_capitals) + len({r["answer"] for r in rows["test"] if r["subset"] == "unseen_fact"}) >= 110


def test_qa_responses_match_facts(rows: dict[str, list[dict]]) -> None:
    capital_of = {f.capital: f for f in CAPITALS}
    for row in (r for s in SPLITS for r in rows[s] if r["task"] == "qa"):
        fact = capital_of[row["answer"]]
        assert row["response"].startswith(f"La capital {fact.de} es {fact.capital}. Es importante porque ")
        assert fact.country in row["instruction"]
        assert row["concepts"][0] == fact.capital and {fact.country, "capital"} <= set(row["concepts"])
        assert all(c.lower() in row["response"].lower() for c in row["concepts"])


def test_spanish_speaking_countries_included() -> None:
    required = {"España", "México", "Argentina", "Colombia", "Perú", "Venezuela", "Chile", "Ecuador", "Guatemala",
                "Cuba", "Bolivia", "República Dominicana", "Honduras", "Paraguay", "El Salvador", "Nicaragua",
                "Costa Rica", "Panamá", "Uruguay", "Guinea Ecuatorial"}
    countries = {f.country for f in CAPITALS}
    assert required <= countries and len(countries) >= 110
    assert {f.capital for f in CAPITALS if f.country in {"España", "Perú", "Colombia"}} == {"Madrid", "Lima", "Bogotá"}


def _forms(lemmas: tuple[str, ...]) -> dict[str, str]:
    return {inflect(a, fem): a for a in lemmas for fem in (False, True)}


POSITIVE_FORMS, NEGATIVE_FORMS = _forms(POSITIVE_ADJECTIVES), _forms(NEGATIVE_ADJECTIVES)


def _text(instruction: str) -> str:
    return re.search(r'"(.*)"', instruction).group(1)


def _reference_label(text: str) -> str:
    """Independent labelling by the documented rules (last clause after "pero" decides, "no" flips)."""
    clause = text.rstrip(".").split("pero")[-1]
    words = clause.replace(",", " ").split()
    if not (set(words) & (POSITIVE_FORMS.keys() | NEGATIVE_FORMS.keys())):
        return "neutro"
    positive = words[-1] in POSITIVE_FORMS
    if " no " in f" {text} " and "pero" not in text:
        positive = not positive
    return "positivo" if positive else "negativo"


def _pairs(text: str) -> set[tuple[str, str]]:
    subject = next(s for s, _ in sorted(SUBJECTS, key=lambda s: -len(s[0])) if text.startswith(s))
    words = text.rstrip(".").replace(",", " ").split()
    return {(subject, (POSITIVE_FORMS | NEGATIVE_FORMS)[w]) for w in words if w in POSITIVE_FORMS | NEGATIVE_FORMS}


def test_sentiment_labels_follow_rules(rows: dict[str, list[dict]]) -> None:
    for split in SPLITS:
        for row in (r for r in rows[split] if r["task"] == "sentiment"):
            text = _text(row["instruction"])
            assert row["answer"] == _reference_label(text), text
            assert row["response"] == f"El sentimiento del texto es {row['answer']}."


def test_cue_responses_quote_the_deciding_words_and_change_nothing_else() -> None:
    """--sentiment_response cue: same instructions, answers and splits; each polar response quotes a span of its
    text that decides the label by the documented rules, and the metrics read exactly the row's label from it."""
    from liquid.metrics.scores import accuracy, asserted_labels

    small = {"train": {"math": 30, "qa": 30, "sentiment": 200},
             "validation": {"math": 12, "qa": 12, "sentiment": 60},
             "test": {"math": 12, "qa": 12, "sentiment": 60}}
    plain, cue = build_splits(0, small), build_splits(0, small, sentiment_response="cue")
    for split in SPLITS:
        assert len(plain[split]) == len(cue[split])
        for before, after in zip(plain[split], cue[split]):
            assert (before.instruction, before.answer, before.task, before.subset) == \
                   (after.instruction, after.answer, after.task, after.subset)
            if after.task != "sentiment":
                assert before.response == after.response
                continue
            row = {"task": after.task, "answer": after.answer}
            assert asserted_labels(after.response) == [after.answer] and accuracy(after.response, row) == 1.0
            if after.answer == "neutro":
                assert '"' not in after.response
                continue
            quoted = re.fullmatch(r'Lo decisivo es "(.*)": el sentimiento del texto es (\w+)\.', after.response)
            assert quoted and quoted.group(2) == after.answer, after.response
            text = _text(after.instruction)
            assert text.rstrip(".").endswith(quoted.group(1)), (text, after.response)
            # the quoted words alone give the label: "no" flips, the clause after "pero" decides
            assert _reference_label(quoted.group(1).removeprefix("pero ")
                                    if quoted.group(1).startswith("pero ") else f"X {quoted.group(1)}") == after.answer


def test_sentiment_combinations_are_novel(rows: dict[str, list[dict]]) -> None:
    polar = {s: [_text(r["instruction"]) for r in rows[s] if r["task"] == "sentiment" and r["answer"] != "neutro"]
             for s in SPLITS}
    train_pairs = set().union(*(_pairs(t) for t in polar["train"]))
    train_texts = {_text(r["instruction"]) for r in rows["train"] if r["task"] == "sentiment"}
    for split in ("validation", "test"):
        for text in polar[split]:
            pairs = _pairs(text)
            assert pairs - train_pairs, text
            assert {s for s, _ in pairs} <= {s for s, _ in train_pairs}
            assert {a for _, a in pairs} <= {a for _, a in train_pairs}
        neutral = [_text(r["instruction"]) for r in rows[split] if r["answer"] == "neutro"]
        assert neutral and not set(neutral) & train_texts


def test_sentiment_label_balance(rows: dict[str, list[dict]]) -> None:
    for split in SPLITS:
        labels = Counter(r["answer"] for r in rows[split] if r["task"] == "sentiment")
        total = sum(labels.values())
        assert abs(labels["positivo"] / total - 0.4) < 0.01
        assert abs(labels["negativo"] / total - 0.4) < 0.01
        assert abs(labels["neutro"] / total - 0.2) < 0.01


def test_long_text_subset(tmp_path: Path, rows: dict[str, list[dict]]) -> None:
    """data/test_long.jsonl: rebuilt byte-identical; 24-44 held-out neutral sentences plus, for a polar label,
    one held-out opinion sentence whose label (by the reference rules) is the row's; nothing from training."""
    assert write_long_test(0, tmp_path).read_bytes() == (DATA / LONG_TEST_FILE).read_bytes()
    long_rows = [json.loads(line) for line in (DATA / LONG_TEST_FILE).open(encoding="utf-8")]
    assert len(long_rows) == LONG_TEST_ROWS
    assert Counter(r["answer"] for r in long_rows) == {"positivo": 80, "negativo": 80, "neutro": 40}
    train_texts = {_text(r["instruction"]) for r in rows["train"] if r["task"] == "sentiment"}
    short_instructions = {r["instruction"] for split in SPLITS for r in rows[split]}
    for row in long_rows:
        assert (list(row), row["task"], row["subset"]) == (KEYS, "sentiment", "long_text")
        assert row["instruction"] not in short_instructions
        sentences = [s + "." for s in _text(row["instruction"]).rstrip(".").split(". ")]
        polar = [s for s in sentences if _reference_label(s) != "neutro"]
        assert MIN_SENTENCES <= len(sentences) - len(polar) <= MAX_SENTENCES
        assert len(polar) == (row["answer"] != "neutro")
        assert not polar or _reference_label(polar[0]) == row["answer"]
        assert not set(sentences) & train_texts, row["instruction"][:80]
        assert row["response"] == f"El sentimiento del texto es {row['answer']}."


def test_long_text_training_rows_use_training_sentences_only(rows: dict[str, list[dict]]) -> None:
    """`--long_train_rows`: long texts for train.jsonl hold no validation or test sentence, and their labels
    follow the same rule as the test subset's."""
    held_out = {_text(r["instruction"]) for split in ("validation", "test") for r in rows[split]
                if r["task"] == "sentiment"}
    test_sentences = {s + "." for line in (DATA / LONG_TEST_FILE).open(encoding="utf-8")
                      for s in _text(json.loads(line)["instruction"]).rstrip(".").split(". ")}
    long_rows = long_text_examples(0, 40, split="train")
    assert Counter(r.answer for r in long_rows) == {"positivo": 16, "negativo": 16, "neutro": 8}
    for row in long_rows:
        sentences = [s + "." for s in _text(row.instruction).rstrip(".").split(". ")]
        polar = [s for s in sentences if _reference_label(s) != "neutro"]
        assert len(polar) == (row.answer != "neutro")
        assert not polar or _reference_label(polar[0]) == row.answer
        assert not set(sentences) & (held_out | test_sentences), row.instruction[:80]
    with pytest.raises(ValueError, match="split must be one of"):
        long_text_examples(0, 4, split="dev")


@pytest.mark.parametrize("value", ["some", "-3"])
def test_build_cli_rejects_a_bad_train_equations_count(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_main(["--output_dir", "unused", "--train_equations", value])
    assert "--train_equations" in capsys.readouterr().err
