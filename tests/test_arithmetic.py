"""Place-value arithmetic chains (liquid/data/arithmetic.py): every link true, one place value per link,
and the metrics accept every math reference of the shipped data as fully valid."""

from __future__ import annotations

import ast
import json
import operator
import random
from fractions import Fraction
from pathlib import Path

import pytest

from liquid.data.arithmetic import (add_chain, column_sum_chain, div_chain, long_division_steps, mul_chain,
                                    multiples_steps, place_terms, sub_chain, sum_chain)
from liquid.metrics import score_row

DATA = Path(__file__).resolve().parents[1] / "data"
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expression: str) -> Fraction:
    """Independent reference: Python's own parser over exact fractions."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp):
            return OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant):
            return Fraction(node.value)
        raise AssertionError(f"unexpected node in {expression!r}")

    return walk(ast.parse(expression, mode="eval").body)


def _cases(seed: int, count: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(0, 1000), rng.randrange(0, 1000)) for _ in range(count)]


@pytest.mark.parametrize("a, b", _cases(0, 300) + [(0, 0), (999, 1), (1000, 999), (5, 17), (110, 17)])
def test_every_link_is_true(a: int, b: int) -> None:
    chains = {a + b: add_chain(a, b), a * b: mul_chain(a, b), a + b + 7: sum_chain([a, b, 7])}
    big, small = max(a, b), min(a, b)
    chains[big - small] = sub_chain(big, small)
    if small:
        chains[big * small // small] = div_chain(big * small, small)
    for result, chain in chains.items():
        assert chain[-1] == str(result), chain
        assert all(evaluate(expression) == result for expression in chain), chain


@pytest.mark.parametrize("a, b", _cases(1, 200))
def test_add_and_sub_take_one_place_value_per_link(a: int, b: int) -> None:
    """Between consecutive links after the expansion, exactly one place value of b is absorbed."""
    big, small = max(a, b), min(a, b)
    for chain, op in ((add_chain(a, b), "+"), (sub_chain(big, small), "-")):
        counts = [expression.count(f" {op} ") for expression in chain[1:]]
        assert counts == sorted(counts, reverse=True), chain
        assert all(before - after >= 1 for before, after in zip(counts, counts[1:])), chain
    assert place_terms(b) == [int(d) * 10 ** (len(str(b)) - 1 - i) for i, d in enumerate(str(b)) if d != "0"] or b == 0


def test_examples_read_as_documented() -> None:
    assert " = ".join(add_chain(283, 149)) == "283 + 149 = 283 + 100 + 40 + 9 = 383 + 40 + 9 = 423 + 9 = 432"
    assert " = ".join(sub_chain(500, 373)) == "500 - 373 = 500 - 300 - 70 - 3 = 200 - 70 - 3 = 130 - 3 = 127"
    assert " = ".join(mul_chain(47, 7)) == "47 * 7 = 40 * 7 + 7 * 7 = 280 + 49 = 280 + 40 + 9 = 320 + 9 = 329"
    assert " = ".join(div_chain(735, 7)) == "735 / 7 = (700 + 35) / 7 = 100 + 5 = 105"
    assert " = ".join(div_chain(960, 120)) == "960 / 120 = 96 / 12 = 8"
    assert " = ".join(div_chain(470, 10)) == "470 / 10 = 47"


@pytest.mark.parametrize("d", range(2, 10))
def test_long_division_is_schoolbook_long_division(d: int) -> None:
    """The properties that define long division: each step ``r = d * q + s`` is true with 0 <= s < d and q one
    digit; the first r is the shortest prefix of n that reaches d; each next r is the previous remainder with n's
    next digit brought down; nothing remains; and the q digits read in order are the quotient."""
    for quotient in range(0, 131):
        n = d * quotient
        text = str(n)
        steps = [step.split(" = ") for step in long_division_steps(n, d)]
        lefts, digits, rests = [], [], []
        for left, right in steps:
            assert evaluate(left) == evaluate(right), steps
            product, _, rest = right.partition(" + ")
            divisor, digit = (int(v) for v in product.split(" * "))
            assert divisor == d and 0 <= digit <= 9 and 0 < int(rest or 1) and int(rest or 0) < d, steps
            lefts.append(int(left)), digits.append(digit), rests.append(int(rest or 0))
        first = next((i for i in range(1, len(text) + 1) if int(text[:i]) >= d), len(text))
        assert lefts[0] == int(text[:first]), (n, steps)
        assert len(steps) == len(text) - first + 1, (n, steps)
        for i, next_digit in enumerate(text[first:]):
            assert lefts[i + 1] == 10 * rests[i] + int(next_digit), (n, steps)
        assert rests[-1] == 0 and int("".join(map(str, digits))) == quotient, (n, steps)


def test_multiples_count_up_to_the_dividend() -> None:
    for d in (12, 25, 45, 75, 115):
        for quotient in range(2, 9):
            steps = multiples_steps(d * quotient, d)
            assert len(steps) == quotient - 1
            for k, step in enumerate(steps, start=2):
                parts = step.split(" = ")
                assert parts[0] == f"{d} * {k}" and parts[-1] == str(d * k), step
                assert all(evaluate(part) == d * k for part in parts), step


def test_long_forms_read_as_documented() -> None:
    assert long_division_steps(680, 8) == ["68 = 8 * 8 + 4", "40 = 8 * 5"]
    assert long_division_steps(100, 4) == ["10 = 4 * 2 + 2", "20 = 4 * 5"]
    assert long_division_steps(408, 4) == ["4 = 4 * 1", "0 = 4 * 0", "8 = 4 * 2"]
    assert multiples_steps(225, 75) == ["75 * 2 = 75 + 75 = 150", "75 * 3 = 150 + 75 = 225"]


@pytest.mark.parametrize("call", [lambda: sub_chain(3, 5), lambda: div_chain(7, 2), lambda: div_chain(4, 0),
                                  lambda: add_chain(-1, 2), lambda: place_terms(-3),
                                  lambda: long_division_steps(7, 2), lambda: long_division_steps(120, 12),
                                  lambda: multiples_steps(75, 75), lambda: multiples_steps(100, 30)])
def test_impossible_operands_are_refused(call) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("split", ["validation", "test"])
def test_metrics_accept_every_math_reference(split: str) -> None:
    """The coherence metric parses the place-value format: every reference step valid, the answer right."""
    rows = [json.loads(line) for line in (DATA / f"{split}.jsonl").open(encoding="utf-8")]
    math_rows = [row for row in rows if row["task"] == "math"]
    assert math_rows
    for row in math_rows:
        scores = score_row(row["response"], row)
        assert (scores["accuracy"], scores["coherence"], scores["coverage"]) == (1.0, 1.0, 1.0), row["response"]


def test_tens_forms_read_as_documented() -> None:
    from liquid.data.math_tasks import tens_division

    assert tens_division(680, 8) == "680 / 8 = (640 + 40) / 8 = 80 + 5 = 85"
    assert tens_division(320, 8) == "320 / 8 = (320 + 0) / 8 = 40 + 0 = 40"
    assert tens_division(460, 4) == "460 / 4 = (440 + 20) / 4 = 110 + 5 = 115"
    assert tens_division(960, 80) == "960 / 80 = 96 / 8 = (80 + 16) / 8 = 10 + 2 = 12"
    assert tens_division(40, 8) == "40 / 8 = 5" and tens_division(225, 75) == "225 / 75 = 3"



@pytest.mark.parametrize("kind", ["tens", "digits"])
@pytest.mark.parametrize("d", [2, 3, 4, 5, 6, 7, 8, 9, 20, 40, 80])
def test_uniform_divisions_keep_zero_parts(kind: str, d: int) -> None:
    """--word_division tens / digits: every link true. A one-digit divisor e (after cancelling zeros) with a
    quotient of 10 or more is split the same way whatever the digits: tens into ``(T + R) / e = T/e + R/e`` with T
    the largest multiple of 10e and R < 10e (0 included), digits into one term per quotient digit (zeros included,
    ``(e*q_1*10^k + ... + e*q_k) / e = q_1*10^k + ... + q_k``). Everything else is written as `place_division`."""
    from liquid.data.math_tasks import WORD_DIVISIONS, place_division

    divide = WORD_DIVISIONS[kind]
    for quotient in range(0, 131):
        n = quotient * d
        text = divide(n, d)
        chain = text.split(" = ")
        assert chain[0] == f"{n} / {d}" and chain[-1] == str(quotient), text
        assert all(evaluate(expression) == quotient for expression in chain), text
        if quotient < 10:
            assert text == place_division(n, d)
            continue
        e, m = (d // 10, n // 10) if d >= 10 else (d, n)
        if kind == "tens":
            tens, rest = 10 * e * (m // (10 * e)), m % (10 * e)
            parts, terms = [tens, rest], [tens // e, rest // e]
        else:
            digits = str(quotient)
            terms = [int(c) * 10 ** (len(digits) - 1 - i) for i, c in enumerate(digits)]
            parts = [e * t for t in terms]
        assert chain[-3] == f"({' + '.join(map(str, parts))}) / {e}" and chain[-2] == " + ".join(map(str, terms)), text


def _two_digit_quotients(divide, d: int):
    """Yield (n, quotient, divide(n, d)) for the two-digit quotients of a one-digit d, after checking that every
    other quotient in 0-130 is written as `place_division`."""
    from liquid.data.math_tasks import place_division

    for quotient in range(0, 131):
        n = quotient * d
        text = divide(n, d)
        if d > 9 or not 10 <= quotient <= 99:
            assert text == place_division(n, d)
            continue
        yield n, quotient, text


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6, 7, 8, 9, 20])
def test_rest_division_computes_the_rest_before_using_it(d: int) -> None:
    """--word_division rest: a two-digit quotient of a one-digit divisor is a subtraction chain n - T = R (T the
    largest multiple of 10d, every link true), then ``n / d = (T + R) / d = T/d + R/d = q``; every other division
    is `place_division`."""
    from liquid.data.math_tasks import rest_division

    for n, quotient, text in _two_digit_quotients(rest_division, d):
        subtraction, division = text.split(". ")
        tens, rest = 10 * d * (quotient // 10), n - 10 * d * (quotient // 10)
        links = subtraction.split(" = ")
        assert links[0] == f"{n} - {tens}" and links[-1] == str(rest), text
        assert all(evaluate(expression) == rest for expression in links), text
        assert division == f"{n} / {d} = ({tens} + {rest}) / {d} = {tens // d} + {rest // d} = {quotient}", text


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6, 7, 8, 9, 20])
def test_table_division_lists_the_divisor_up_to_the_first_multiple_above_the_tens(d: int) -> None:
    """--word_division table: a two-digit quotient of a one-digit divisor is ``tabla del d: d, 2d, ..., kd`` with
    (k - 1) d <= n // 10 < k d, then `place_division`; every other division is `place_division`; the metric
    checks the table (a wrong entry makes the step invalid)."""
    from liquid.data.math_tasks import place_division, table_division
    from liquid.metrics.scores import table_step

    for n, quotient, text in _two_digit_quotients(table_division, d):
        table, division = text.split(". ")
        assert division == place_division(n, d) and table.startswith(f"tabla del {d}: "), text
        entries = [int(v) for v in table.split(": ")[1].split(", ")]
        assert entries == [d * k for k in range(1, len(entries) + 1)], text
        assert entries[-2] <= n // 10 < entries[-1] and entries[-2] * 10 == 10 * d * (quotient // 10), text
        step = table_step(f"La velocidad es la distancia dividida entre el tiempo: {table}")
        assert step is not None and step.kind == "table" and step.valid, text
        wrong = table.replace(f" {entries[-1]}", f" {entries[-1] + 1}")
        assert table_step(wrong).valid is False, wrong


def test_column_sums_read_as_documented() -> None:
    assert " = ".join(column_sum_chain([630, 35])) == "630 + 35 = 600 + 30 + 30 + 5 = 600 + 60 + 5 = 665"
    assert " = ".join(column_sum_chain([180, 24])) == "180 + 24 = 100 + 80 + 20 + 4 = 100 + 100 + 4 = 204"
    assert " = ".join(column_sum_chain([600, 60, 30])) == "600 + 60 + 30 = 600 + 90 = 690"
    assert " = ".join(mul_chain(75, 8, column_sum_chain)) == \
        "75 * 8 = 70 * 8 + 5 * 8 = 560 + 40 = 500 + 60 + 40 = 500 + 100 = 600"
    assert column_sum_chain([90, 27]) == sum_chain([90, 27])  # no hundreds: place
    assert column_sum_chain([120, 2]) == sum_chain([120, 2])  # one tens term: nothing to add at the tens


@pytest.mark.parametrize("b", range(2, 13))
def test_column_sums_add_tens_apart_from_the_hundreds(b: int) -> None:
    """--word_sums column on every multiplication of the word problems' sizes (a < 250, one- and two-digit b):
    every link true; where it differs from place, the hundreds term stays the same through every link but the
    last, and each link before the last adds exactly two tens terms of the one before (a fact of two-digit tens)."""
    for a in range(0, 250):
        chain = mul_chain(a, b, column_sum_chain)
        assert chain[-1] == str(a * b) and all(evaluate(e) == a * b for e in chain), chain
        if chain == mul_chain(a, b):
            continue
        sums = [[int(t) for t in e.split(" + ")] for e in chain[2:-1]]  # after "a * b" and the products
        grouped = next(s for s in sums if s[0] % 100 == 0 and all(t < 100 and place_terms(t) == [t] for t in s[1:]))
        assert grouped[0] % 100 == 0 and all(t < 100 for t in grouped[1:]), chain
        steps = sums[sums.index(grouped):]
        for before, after in zip(steps, steps[1:]):
            assert after[0] == before[0] and len(after) == len(before) - 1, chain
            assert after[1] == before[1] + before[2] and before[1] % 10 == before[2] % 10 == 0, chain
