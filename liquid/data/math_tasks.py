"""Generators for the `math` task: linear equations and one-operation word problems.

Every response is a chain of checkable steps ``Texto: e0 = e1 = ... .`` (integers only, ``*`` and ``/``
for products and quotients, negative operands in parentheses), and the last sentence states the answer.

Equations: all equations of each form with x in [-10, 10], a in 2..9, b in 1..20 are enumerated,
shuffled, and partitioned (test, then validation, then train), so no (form, a, b, c) is shared.
Word problems: the numeric content (kind, numbers) is partitioned the same way, and the
instruction strings of validation/test never occur in train.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Mapping

from liquid.data.arithmetic import (add_chain, cancel_zeros, chain_text, column_sum_chain, div_chain,
                                    long_division_steps, mul_chain, multiples_steps, sub_chain)
from liquid.data.loading import Example

TASK = "math"
EQUATION_SUBSET = "equation"
WORD_SUBSET = "word_problem"
HELD_OUT_ORDER = ("test", "validation", "train")  # held-out splits are drawn first

X_RANGE = range(-10, 11)
A_RANGE = range(2, 10)
B_RANGE = range(1, 21)

EQUATION_PHRASINGS = (
    "Resuelve la ecuación {eq}.",
    "Encuentra el valor de x en {eq}.",
    "¿Cuánto vale x si {eq}?",
    "Despeja x: {eq}.",
    "Halla x en la ecuación {eq}.",
    "Resuelve paso a paso: {eq}.",
    "Calcula x en {eq}.",
    "¿Qué valor de x cumple {eq}?",
)
SOLUTION_SENTENCE = "La solución es x = {x}."
# --equation_division: how the equations write a division. place: one place-value chain (``-(120 / 8) = -((80 + 40)
# / 8) = -(10 + 5) = -15``); rest: the rest of a two-digit quotient of a one-digit divisor first, as its own
# subtraction (``120 - 80 = 40. x - 19 = -120 / 8 = -(120 / 8) = -((80 + 40) / 8) = ...``), as the word problems'
# `rest_division` does
EQUATION_DIVISIONS = ("place", "rest")
DEFAULT_EQUATION_DIVISION = "place"
# --equation_lhs: whether the first step of ``ax + b = c`` (and the other forms that undo b first) writes the side
# it computes, ``-2x = 13 - 17 = ... = -4`` (write), or the arithmetic alone, ``13 - 17 = ... = -4`` (omit), so that
# the number is computed before a coefficient it must be a multiple of is in the response (docs/experiments.md,
# session 27: 60-92% of the wrong results of that step were multiples of a)
EQUATION_LHS = ("write", "omit")
DEFAULT_EQUATION_LHS = "write"


def operand(n: int) -> str:
    """Format an integer that follows an operator: ``(-7)`` for negatives, ``7`` otherwise."""
    return f"({n})" if n < 0 else str(n)


def _negated(chain: list[str], result: int) -> list[str]:
    """``-(e)`` for every expression of an unsigned chain but its last, which becomes ``result``."""
    return [f"-({expression})" for expression in chain[:-1]] + [str(result)]


def signed_arithmetic(left: int, op: str, right: int) -> str:
    """``left op right = ... = result`` for right >= 0, with the sign rule written out as its own step.

    Only unsigned additions and subtractions are ever computed, each as a place-value chain
    (`liquid.data.arithmetic`): ``-28 - 8 = -(28 + 8) = -36``, ``5 - 12 = -(12 - 5) = -7``,
    ``-28 + 8 = -(28 - 8) = -20``, ``-5 + 12 = 12 - 5 = 7``, ``47 - 15 = 47 - 10 - 5 = 37 - 5 = 32``.
    """
    result = left - right if op == "-" else left + right
    head = f"{left} {op} {right}"
    if left >= 0 and (op == "+" or left >= right):
        unsigned = add_chain(left, right) if op == "+" else sub_chain(left, right)
        return chain_text([head, *unsigned[1:]])
    if op == "-":
        inner = sub_chain(right, left) if left >= 0 else add_chain(-left, right)
        return chain_text([head, *_negated(inner, result)])
    if -left >= right:
        return chain_text([head, *_negated(sub_chain(-left, right), result)])
    return chain_text([head, *sub_chain(right, -left)])


def rest_parts(n: int, d: int) -> tuple[int, int] | None:
    """(T, R) of a two-digit quotient of a one-digit divisor, n = T + R with T the largest multiple of ``10 * d``
    not above n (``120, 8 -> (80, 40)``); None for every other division (n >= 0, d > 0)."""
    if not 2 <= d <= 9 or not 10 * d <= n < 100 * d:
        return None
    tens = 10 * d * (n // (10 * d))
    return tens, n - tens


def rest_division_chain(n: int, d: int) -> list[str] | None:
    """``n / d`` as ``(T + R) / d = T/d + R/d = q`` (`rest_parts`, the zero rest kept), or None where
    `rest_parts` is."""
    parts = rest_parts(n, d)
    if parts is None:
        return None
    tens, rest = parts
    return [f"{n} / {d}", f"({tens} + {rest}) / {d}", f"{tens // d} + {rest // d}", str(n // d)]


def signed_division(numerator: int, divisor: int, division: str = "place") -> str:
    """``n / d = ... = q`` with the sign rule as its own step: ``-36 / 4 = -(36 / 4) = -9``,
    ``-20 / (-5) = 20 / 5 = 4``; only divisions of non-negative numbers are computed, as place-value
    chains: ``189 / 7 = (140 + 49) / 7 = 20 + 7 = 27``. With ``division="rest"`` a two-digit quotient of a
    one-digit divisor always splits in two parts, ``(T + R) / d`` (`rest_division_chain`), whose rest R the
    response computes before (`equation_rest_step`)."""
    quotient = numerator // divisor
    head = f"{numerator} / {operand(divisor)}"
    unsigned = (rest_division_chain(abs(numerator), abs(divisor)) if division == "rest" else None) \
        or div_chain(abs(numerator), abs(divisor))
    if numerator == 0 or (numerator > 0 and divisor > 0):
        return chain_text([head, *unsigned[1:]])
    if (numerator < 0) != (divisor < 0):
        return chain_text([head, *_negated(unsigned, quotient)])
    return chain_text([head, *unsigned])


@dataclass(frozen=True)
class EquationForm:
    """One equation shape: c from (a, b, x), its text, its solution steps and the operation words."""

    name: str
    rhs: Callable[[int, int, int], int]
    text: Callable[[int, int, int], str]
    steps: Callable[..., str]  # (a, b, c, x, division="place", lhs="write") -> the response's steps
    operations: tuple[str, str]


def equation_rest_step(numerator: int, divisor: int, division: str) -> str:
    """With ``division="rest"``, the sentence that computes the rest R of ``|n| / |d|`` before the division uses it
    (``120 - 80 = 40. `` before ``-120 / 8 = -(120 / 8) = -((80 + 40) / 8) = ...``), a place-value subtraction
    chain; "" for the place format and for divisions that do not split (`rest_parts`)."""
    parts = rest_parts(abs(numerator), abs(divisor)) if division == "rest" else None
    if parts is None:
        return ""
    return chain_text(sub_chain(abs(numerator), parts[0])) + ". "


def move_step(op_word: str, op: str, coef: int, b: int, c: int, lhs: str = "write") -> str:
    """The first step of an equation that undoes b first, ``Restamos 17 en ambos lados: -2x = 13 - 17 = ... = -4. ``
    (``coef x = c (op) b = ...``). With ``lhs="omit"`` the arithmetic alone (``Restamos 17 en ambos lados: 13 - 17
    = ... = -4. ``): the coefficient is not written before the number it divides is computed."""
    coef_text = f"{coef}x = " if lhs == "write" else ""
    return f"{op_word} {b} en ambos lados: {coef_text}{signed_arithmetic(c, op, b)}. "


def _move_then_divide(sign: int, op_word: str, op: str) -> Callable[..., str]:
    """Steps for ``sign*a*x (op) b = c``: undo b first (`move_step`), then divide by the signed coefficient."""

    def steps(a: int, b: int, c: int, x: int, division: str = "place", lhs: str = "write") -> str:
        coef = sign * a
        moved = c - b if op == "-" else c + b
        return (move_step(op_word, op, coef, b, c, lhs)
                + f"Dividimos ambos lados entre {coef}: {equation_rest_step(moved, coef, division)}"
                f"x = {signed_division(moved, coef, division)}.")

    return steps


def _divide_then_move(op_word: str, op: str, inner: str) -> Callable[..., str]:
    """Steps for ``a(x (inner) b) = c``: divide by a first, then undo b."""

    def steps(a: int, b: int, c: int, x: int, division: str = "place", lhs: str = "write") -> str:
        quotient = c // a
        return (f"Dividimos ambos lados entre {a}: {equation_rest_step(c, a, division)}"
                f"x {inner} {b} = {signed_division(c, a, division)}. "
                f"{op_word} {b} en ambos lados: x = {signed_arithmetic(quotient, op, b)}.")

    return steps


EQUATION_FORMS: tuple[EquationForm, ...] = (
    EquationForm("ax + b = c", lambda a, b, x: a * x + b, lambda a, b, c: f"{a}x + {b} = {c}",
                 _move_then_divide(1, "Restamos", "-"), ("restamos", "dividimos")),
    EquationForm("ax - b = c", lambda a, b, x: a * x - b, lambda a, b, c: f"{a}x - {b} = {c}",
                 _move_then_divide(1, "Sumamos", "+"), ("sumamos", "dividimos")),
    EquationForm("a(x + b) = c", lambda a, b, x: a * (x + b), lambda a, b, c: f"{a}(x + {b}) = {c}",
                 _divide_then_move("Restamos", "-", "+"), ("dividimos", "restamos")),
    EquationForm("a(x - b) = c", lambda a, b, x: a * (x - b), lambda a, b, c: f"{a}(x - {b}) = {c}",
                 _divide_then_move("Sumamos", "+", "-"), ("dividimos", "sumamos")),
    EquationForm("b - ax = c", lambda a, b, x: b - a * x, lambda a, b, c: f"{b} - {a}x = {c}",
                 _move_then_divide(-1, "Restamos", "-"), ("restamos", "dividimos")),
    EquationForm("b + ax = c", lambda a, b, x: b + a * x, lambda a, b, c: f"{b} + {a}x = {c}",
                 _move_then_divide(1, "Restamos", "-"), ("restamos", "dividimos")),
    EquationForm("-ax + b = c", lambda a, b, x: -a * x + b, lambda a, b, c: f"-{a}x + {b} = {c}",
                 _move_then_divide(-1, "Restamos", "-"), ("restamos", "dividimos")),
)


@dataclass(frozen=True)
class Equation:
    """A concrete equation: form index and (a, b, x); c follows from the form."""

    form: int
    a: int
    b: int
    x: int

    @property
    def c(self) -> int:
        return EQUATION_FORMS[self.form].rhs(self.a, self.b, self.x)

    @property
    def triple(self) -> tuple[str, int, int, int]:
        """The (form, a, b, c) key that must not be shared between splits."""
        return EQUATION_FORMS[self.form].name, self.a, self.b, self.c

    def example(self, rng: random.Random, division: str = "place", lhs: str = "write") -> Example:
        form = EQUATION_FORMS[self.form]
        c = self.c
        instruction = rng.choice(EQUATION_PHRASINGS).format(eq=form.text(self.a, self.b, c))
        response = form.steps(self.a, self.b, c, self.x, division, lhs) + " " + SOLUTION_SENTENCE.format(x=self.x)
        concepts = [*form.operations, f"x = {self.x}"]
        return Example(instruction, response, TASK, str(self.x), concepts, EQUATION_SUBSET)


def _share(total: int, parts: int, index: int) -> int:
    """Round-robin share of `total` items for part `index` of `parts`."""
    return total // parts + (1 if index < total % parts else 0)


def equation_examples(rng: random.Random, counts: Mapping[str, int | None],
                      division: str = DEFAULT_EQUATION_DIVISION,
                      lhs: str = DEFAULT_EQUATION_LHS) -> dict[str, list[Example]]:
    """Partition every equation of every form, then sample each split from its own part. A count of None takes
    every equation the splits drawn before it left (for train: all 22,964 non-held-out (form, a, b, c) triples of
    the shipped sizes); the held-out splits are drawn first, so they do not depend on the train count. `division`
    (one of `EQUATION_DIVISIONS`) is how every split's responses write a division, `lhs` (one of `EQUATION_LHS`)
    whether the first step of a move-then-divide form writes ``ax =`` before its arithmetic; neither changes an
    instruction, answer or key."""
    if division not in EQUATION_DIVISIONS:
        raise ValueError(f"unknown equation division {division!r}; choose one of {', '.join(EQUATION_DIVISIONS)}")
    if lhs not in EQUATION_LHS:
        raise ValueError(f"unknown equation lhs {lhs!r}; choose one of {', '.join(EQUATION_LHS)}")
    pools: dict[str, list[Equation]] = {split: [] for split in HELD_OUT_ORDER}
    for form in range(len(EQUATION_FORMS)):
        every = [Equation(form, a, b, x) for a in A_RANGE for b in B_RANGE for x in X_RANGE]
        rng.shuffle(every)
        start = 0
        for split in HELD_OUT_ORDER:
            count = counts[split]
            size = len(every) - start if count is None else _share(count, len(EQUATION_FORMS), form)
            if start + size > len(every):
                raise ValueError(f"not enough '{EQUATION_FORMS[form].name}' equations for {split}")
            pools[split].extend(every[start:start + size])
            start += size
    out = {}
    for split in HELD_OUT_ORDER:
        rng.shuffle(pools[split])
        out[split] = [equation.example(rng, division, lhs) for equation in pools[split]]
    return out


# ---------------------------------------------------------------- equations with a fractional solution (train only)
FRACTION_SUBSET = "fraction_equation"
# The forms that undo b first (`_move_then_divide`), as (form index, sign of the coefficient, op of the first step)
MOVE_FIRST_FORMS = ((0, 1, "-"), (1, 1, "+"), (4, -1, "-"), (5, 1, "-"), (6, -1, "-"))
MAX_FRACTION_NUMERATOR = 90  # |R| of the first step's result: the range a * x takes for x in [-10, 10], a <= 9


def _fraction_text(numerator: int, denominator: int) -> str:
    """An exact quotient written as an integer or ``p/q`` in lowest terms, the sign in front: ``-4/3``."""
    value = Fraction(numerator, denominator)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def signed_fraction(numerator: int, divisor: int) -> str:
    """``n / d`` for a d that does not divide n, with the sign rule as its own step, then the common factor
    cancelled when there is one: ``-4 / (-3) = 4 / 3``, ``6 / (-4) = -(6 / 4) = -(3 / 2)``, ``15 / 6 = 5 / 2``."""
    head = f"{numerator} / {operand(divisor)}"
    n, d = abs(numerator), abs(divisor)
    unsigned = [f"{n} / {d}"]
    common = math.gcd(n, d)
    if common > 1:
        unsigned.append(f"{n // common} / {d // common}")
    if (numerator < 0) != (divisor < 0):
        return chain_text([head, *(f"-({expression})" for expression in unsigned)])
    return chain_text([head, *unsigned] if head != unsigned[0] else unsigned)


def fraction_equation_examples(rng: random.Random, rows: int) -> list[Example]:
    """Train-only equations of the forms that undo b first whose solution is not an integer: the first step's
    result R = c -+ b is not a multiple of the coefficient a (every held-out equation has R = a * x). With only
    integer solutions in train, R is always a multiple of a, and a model can write ``a * (a guessed x)`` there
    instead of computing R (docs/experiments.md, session 27); these rows make that guess wrong. Same numbers as
    the integer equations (a in 2..9, b in 1..20, |R| <= 90); the answer is ``p/q`` in lowest terms:
    "Restamos 17 en ambos lados: -3x = 13 - 17 = -(17 - 13) = -4. Dividimos ambos lados entre -3: x = -4 / (-3) =
    4 / 3. La solución es x = 4/3." Never in a held-out split, so the splits stay disjoint."""
    out = []
    for _ in range(rows):
        form_index, sign, op = rng.choice(MOVE_FIRST_FORMS)
        form = EQUATION_FORMS[form_index]
        a, b = rng.choice(A_RANGE), rng.choice(B_RANGE)
        moved = rng.choice([r for r in range(-MAX_FRACTION_NUMERATOR, MAX_FRACTION_NUMERATOR + 1) if r % a])
        c = moved + b if op == "-" else moved - b
        coef = sign * a
        op_word = "Restamos" if op == "-" else "Sumamos"
        answer = _fraction_text(moved, coef)
        response = (move_step(op_word, op, coef, b, c)
                    + f"Dividimos ambos lados entre {coef}: x = {signed_fraction(moved, coef)}. "
                    + SOLUTION_SENTENCE.format(x=answer))
        instruction = rng.choice(EQUATION_PHRASINGS).format(eq=form.text(a, b, c))
        out.append(Example(instruction, response, TASK, answer, [*form.operations, f"x = {answer}"], FRACTION_SUBSET))
    return out


# ---------------------------------------------------------------- word problems
NAMES = ("Ana", "Luis", "María", "Carlos", "Lucía", "Javier", "Sofía", "Pablo", "Elena", "Diego",
         "Marta", "Andrés", "Carmen", "Jorge", "Laura", "Miguel", "Isabel", "Raúl", "Paula", "Tomás")
BANKNOTES = (10, 20, 50, 100, 200, 500)
PURCHASES = ("un libro", "una camiseta", "un bolso", "una mochila", "un juego", "una lámpara",
             "un reloj", "una chaqueta", "una bufanda", "una silla")
# (singular, plural, feminine)
GOODS = (("cuaderno", "cuadernos", False), ("lápiz", "lápices", False), ("libro", "libros", False),
         ("camiseta", "camisetas", True), ("entrada", "entradas", True), ("botella de agua", "botellas de agua", True),
         ("bolígrafo", "bolígrafos", False), ("taza", "tazas", True), ("caja de galletas", "cajas de galletas", True),
         ("billete de autobús", "billetes de autobús", False), ("helado", "helados", False), ("flor", "flores", True))
QUANTITY_RANGE = range(2, 13)
UNIT_PRICE_RANGE = range(2, 26)
QUARTER_PERCENTS = (25, 75)  # computed through a quarter, so the base is a multiple of 20
PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90) + QUARTER_PERCENTS  # 50% uses "la mitad"
PERCENT_BASES_10 = range(20, 510, 10)
PERCENT_BASES_20 = range(20, 520, 20)
# (subject, highest speed in km/h)
VEHICLES = (("Un tren", 120), ("Un coche", 120), ("Un autobús", 100), ("Una moto", 120), ("Un ciclista", 30),
            ("Un camión", 90), ("Un barco", 40), ("Una furgoneta", 100))
SPEED_STEP = 5
MIN_SPEED = 10
HOURS_RANGE = range(2, 9)


def place_division(n: int, d: int) -> str:
    """``n / d`` as one place-value chain (`div_chain`): ``680 / 8 = (640 + 40) / 8 = 80 + 5 = 85``."""
    return chain_text(div_chain(n, d))


def long_division(n: int, d: int) -> str:
    """``n / d`` with the quotient's digits written out, then the whole division as its own sentence:
    ``680 / 8. 68 = 8 * 8 + 4. 40 = 8 * 5. 680 / 8 = 85`` (one-digit d, after cancelling common zeros:
    ``960 / 80. 9 = 8 * 1 + 1. 16 = 8 * 2. 960 / 80 = 96 / 8 = 12``), or, for a divisor of two or more digits,
    its multiples up to n: ``225 / 75. 75 * 2 = 75 + 75 = 150. 75 * 3 = 150 + 75 = 225. 225 / 75 = 3``.
    A one-digit quotient of a one-digit divisor (a table fact) and a division by 10 stay one chain."""
    forms = cancel_zeros(n, d)  # 960 / 80 -> 96 / 8
    m, e = forms[-1]
    quotient = n // d
    if e == 10 or (e < 10 and quotient < 10) or m == 0:
        return place_division(n, d)
    steps = long_division_steps(m, e) if e < 10 else multiples_steps(m, e)
    return ". ".join([f"{n} / {d}", *steps, chain_text([f"{a} / {b}" for a, b in forms] + [str(quotient)])])


def _fixed_parts_division(n: int, d: int, parts_of: Callable[[int, int], list[int]]) -> str:
    """``n / d`` as ``(p_1 + ... + p_k) / e = p_1/e + ... + p_k/e = q`` with the parts `parts_of(m, e)` (multiples
    of e summing to m, zeros kept), after cancelling common zeros (``960 / 80 = 96 / 8 = ...``). Divisions by 10 or
    more (after cancelling) and one-digit quotients are `place_division`."""
    forms = cancel_zeros(n, d)  # 960 / 80 -> 96 / 8
    m, e = forms[-1]
    if e >= 10 or m < 10 * e:
        return place_division(n, d)
    parts = parts_of(m, e)
    return chain_text([f"{a} / {b}" for a, b in forms]
                      + [f"({' + '.join(map(str, parts))}) / {e}", " + ".join(str(p // e) for p in parts), str(n // d)])


def tens_division(n: int, d: int) -> str:
    """``n / d`` with a quotient of 10 or more always in the same two parts: the largest multiple of ``10 * d`` in
    n, then the rest, even when the rest is 0: ``680 / 8 = (640 + 40) / 8 = 80 + 5 = 85``, ``320 / 8 = (320 + 0)
    / 8 = 40 + 0 = 40``, ``460 / 4 = (440 + 20) / 4 = 110 + 5 = 115``. So the first token after ``=`` is the same
    for every such division, and whether the quotient ends in 0 is written as digits (the rest) instead of as the
    chain's shape. Divisions by 10 or more (after cancelling zeros) and one-digit quotients are `place_division`."""
    def two_parts(m: int, e: int) -> list[int]:
        tens = 10 * e * (m // (10 * e))
        return [tens, m - tens]

    return _fixed_parts_division(n, d, two_parts)


def digits_division(n: int, d: int) -> str:
    """``n / d`` with a quotient of 10 or more split into one part per digit of the quotient, zero digits included,
    so the chain's shape depends only on how many digits the quotient has: ``320 / 8 = (320 + 0) / 8 = 40 + 0 =
    40``, ``440 / 4 = (400 + 40 + 0) / 4 = 100 + 10 + 0 = 110``, ``680 / 8 = (640 + 40) / 8 = 80 + 5 = 85`` (as
    `place_division`, which leaves the zero digits out). Divisions by 10 or more (after cancelling zeros) and
    one-digit quotients are `place_division`."""
    def per_digit(m: int, e: int) -> list[int]:
        quotient = str(m // e)  # 110 -> 100, 10, 0 (times e)
        return [e * int(digit) * 10 ** (len(quotient) - 1 - i) for i, digit in enumerate(quotient)]

    return _fixed_parts_division(n, d, per_digit)


def table_division(n: int, d: int) -> str:
    """``n / d`` with a two-digit quotient of a one-digit divisor: first the divisor's table, its multiples up to the
    first one above the tens of n (``n // 10``), then `place_division`: ``tabla del 8: 8, 16, 24, 32, 40. 360 / 8 =
    (320 + 40) / 8 = 40 + 5 = 45``, ``tabla del 8: 8, 16, 24, 32, 40. 320 / 8 = 40``. The table is the same text for
    every n of one (d, tens digit of the quotient), each entry the previous plus d, so the split that `place`
    must guess (the largest multiple of 10d in n) is read off the table: the last entry <= n // 10, and whether it
    equals n // 10. Every other division is `place_division`."""
    if not 2 <= d <= 9 or not 10 * d <= n < 100 * d:
        return place_division(n, d)
    table = [d * k for k in range(1, n // 10 // d + 2)]  # up to the first multiple above n // 10
    return f"tabla del {d}: {', '.join(map(str, table))}. {place_division(n, d)}"


def rest_division(n: int, d: int) -> str:
    """``n / d`` with a two-digit quotient of a one-digit divisor in two steps: first the rest after the largest
    multiple T of ``10 * d`` as a subtraction chain of its own, then the two-part division with that rest (0
    included): ``760 - 720 = 760 - 700 - 20 = 60 - 20 = 40. 760 / 8 = (720 + 40) / 8 = 90 + 5 = 95``, ``320 - 320
    = 320 - 300 - 20 = 20 - 20 = 0. 320 / 8 = (320 + 0) / 8 = 40 + 0 = 40``. So the rest is computed before the
    chain uses it instead of guessed with it. Every other division is `place_division`."""
    if not 2 <= d <= 9 or not 10 * d <= n < 100 * d:
        return place_division(n, d)
    tens = 10 * d * (n // (10 * d))
    rest = n - tens
    return (f"{chain_text(sub_chain(n, tens))}. "
            + chain_text([f"{n} / {d}", f"({tens} + {rest}) / {d}", f"{tens // d} + {rest // d}", str(n // d)]))


# --word_division: how the word problems write a division (equations always use place_division)
Divide = Callable[[int, int], str]
WORD_DIVISIONS: dict[str, Divide] = {"place": place_division, "long": long_division, "tens": tens_division,
                                     "digits": digits_division, "rest": rest_division,
                                     "table": table_division}
# long: test math 0.882 vs 0.916 on seed 0 (session 12); tens and digits: the same-day default's score; table: speed
# problems 21 of 28 wrong against the default's 18 on seed 1 (session 18); rest: word problems 0.820 vs the same-day
# default's 0.766 on seed 0 (session 13), and the default since session 25 (docs/experiments.md, session 25)
DEFAULT_WORD_DIVISION = "rest"


def place_multiply(a: int, b: int) -> str:
    """``a * b`` as one place-value chain (`mul_chain`): ``75 * 8 = 70 * 8 + 5 * 8 = 560 + 40 = 600``."""
    return chain_text(mul_chain(a, b))


def column_multiply(a: int, b: int) -> str:
    """``a * b`` with the sum of its products in columns (`column_sum_chain`): ``75 * 8 = 70 * 8 + 5 * 8 = 560 +
    40 = 500 + 60 + 40 = 500 + 100 = 600``."""
    return chain_text(mul_chain(a, b, column_sum_chain))


# --word_sums: how the word problems add the products of a multiplication (equations always use place)
Multiply = Callable[[int, int], str]
WORD_SUMS: dict[str, Multiply] = {"place": place_multiply, "column": column_multiply}
# column: test math 0.906 / 0.882 against the same-day default's 0.896 / 0.856 on seeds 0 / 1, word problems 0.820 /
# 0.754 against 0.766 / 0.671 (docs/experiments.md, session 14)
DEFAULT_WORD_SUMS = "column"


@dataclass(frozen=True)
class WordNumbers:
    """The number grid word problems draw from. Every held-out split uses `SHIPPED_NUMBERS`; the train split may
    use a denser grid (`TRAIN_NUMBERS`), so that the digit facts of a held-out problem (``76 = 72 + 4`` for
    ``760 / 8``) also occur in training problems around it (``752 / 8 = (720 + 32) / 8``) without the held-out
    problem itself being there: the train split still avoids every held-out key."""

    speed_steps: tuple[int, ...]  # speeds are MIN_SPEED + k * step up to the vehicle's top speed, step drawn from these
    unit_prices: range  # prices of the "total" problems
    quantities: range = QUANTITY_RANGE  # item counts of the "total" problems
    percent_bases_10: range = PERCENT_BASES_10  # bases of the percentages computed through a tenth or a half
    percent_bases_20: range = PERCENT_BASES_20  # bases of 25% and 75% (multiples of 20)
    hours: range = HOURS_RANGE  # hours of the motion problems
    top_speeds: tuple[int, ...] | None = None  # each vehicle's top speed in km/h (None: those of `VEHICLES`)


SHIPPED_NUMBERS = WordNumbers(speed_steps=(SPEED_STEP,), unit_prices=UNIT_PRICE_RANGE)
DENSE_NUMBERS = WordNumbers(speed_steps=(1,), unit_prices=range(2, 50))
# half of the speeds on the held-out splits' 5 km/h grid, half on the 1 km/h grid: keeps round quotients
# (640 / 8 = 80, no split) as common as in the held-out splits
MIXED_NUMBERS = WordNumbers(speed_steps=(SPEED_STEP, 1), unit_prices=range(2, 50))
# a grid several times larger than the train split's word problems, so that no (kind, numbers) can be learnt as a
# lookup (the equations' key space, 23,520, is twice their 12,000 train rows): 2-19 items at 2-59 euros, percentage
# bases up to 990, 2-9 hours, faster vehicles (distances up to 2,250 km); every held-out number is inside it
WIDE_NUMBERS = WordNumbers(speed_steps=(SPEED_STEP, 1), unit_prices=range(2, 60), quantities=range(2, 20),
                           percent_bases_10=range(20, 1000, 10), percent_bases_20=range(20, 1000, 20),
                           hours=range(2, 10), top_speeds=(250, 180, 120, 200, 40, 120, 60, 140))
TRAIN_NUMBERS = {"shipped": SHIPPED_NUMBERS, "dense": DENSE_NUMBERS, "mixed": MIXED_NUMBERS,
                 "wide": WIDE_NUMBERS}  # --train_word_numbers
DEFAULT_TRAIN_NUMBERS = "mixed"  # held-out word problems 0.689 / 0.623 (shipped grid) -> 0.784 (docs/experiments.md, session 11)

CHANGE_PHRASINGS = (
    "{name} paga con {paid} euros una compra de {price} euros. ¿Cuánto dinero le devuelven?",
    "{name} compra {item} que cuesta {price} euros y paga con un billete de {paid} euros. ¿Cuánto le devuelven?",
    "{name} tiene un billete de {paid} euros y gasta {price} euros en {item}. ¿Cuánto cambio recibe?",
    "Una compra cuesta {price} euros y {name} paga con {paid} euros. ¿Cuál es el cambio?",
)
TOTAL_PHRASINGS = (
    "{name} compra {n} {plural} a {price} euros cada {one}. ¿Cuánto paga en total?",
    "Cada {singular} cuesta {price} euros. ¿Cuánto cuestan {n} {plural}?",
    "{name} necesita {n} {plural} y cada {one} cuesta {price} euros. ¿Cuánto gasta en total?",
    "En una tienda, {n} {plural} cuestan {price} euros cada {one}. ¿Cuál es el precio total?",
)
PERCENT_PHRASINGS = (
    "¿Cuánto es el {p}% de {base}?",
    "Calcula el {p}% de {base}.",
    "{Item} cuesta {base} euros y tiene un descuento del {p}%. ¿Cuántos euros se descuentan?",
    "En un pueblo de {base} habitantes, el {p}% son niños. ¿Cuántos niños hay?",
    "¿Qué cantidad es el {p}% de {base}?",
)
SPEED_PHRASINGS = (
    "{V} recorre {d} km en {t} horas. ¿Cuál es su velocidad media?",
    "Si {v} recorre {d} km en {t} horas, ¿a qué velocidad media va?",
    "{V} tarda {t} horas en recorrer {d} km. ¿Cuál es su velocidad media?",
)
DISTANCE_PHRASINGS = (
    "{V} va a {speed} km/h durante {t} horas. ¿Qué distancia recorre?",
    "¿Cuántos kilómetros recorre {v} que va a {speed} km/h durante {t} horas?",
    "{V} viaja {t} horas a una velocidad de {speed} km/h. ¿Cuántos km recorre?",
)
TIME_PHRASINGS = (
    "{V} recorre {d} km a {speed} km/h. ¿Cuántas horas tarda?",
    "¿Cuántas horas tarda {v} en recorrer {d} km a {speed} km/h?",
    "{V} debe recorrer {d} km a {speed} km/h. ¿Cuántas horas necesita?",
)


@dataclass(frozen=True)
class WordProblem:
    """A generated word problem: `key` (kind and numbers) is what splits must not share."""

    key: tuple
    instruction: str
    response: str
    answer: int
    concepts: tuple[str, ...]

    def example(self) -> Example:
        return Example(self.instruction, self.response, TASK, str(self.answer), list(self.concepts), WORD_SUBSET)


def _change(rng: random.Random, numbers: WordNumbers = SHIPPED_NUMBERS, divide: Divide = place_division,
            multiply: Multiply = place_multiply) -> WordProblem:
    paid = rng.choice(BANKNOTES)
    price = rng.randrange(1, paid)
    rest = paid - price
    instruction = rng.choice(CHANGE_PHRASINGS).format(name=rng.choice(NAMES), paid=paid, price=price,
                                                      item=rng.choice(PURCHASES))
    response = (f"El cambio es el pago menos el precio: {chain_text(sub_chain(paid, price))}. "
                f"Le devuelven {rest} euros.")
    return WordProblem(("change", paid, price), instruction, response, rest, ("cambio", str(rest)))


def _total(rng: random.Random, numbers: WordNumbers = SHIPPED_NUMBERS, divide: Divide = place_division,
           multiply: Multiply = place_multiply) -> WordProblem:
    n, price = rng.choice(numbers.quantities), rng.choice(numbers.unit_prices)
    singular, plural, feminine = rng.choice(GOODS)
    total = n * price
    instruction = rng.choice(TOTAL_PHRASINGS).format(name=rng.choice(NAMES), n=n, plural=plural, singular=singular,
                                                     price=price, one="una" if feminine else "uno")
    response = (f"Multiplicamos la cantidad por el precio: {multiply(n, price)}. "
                f"El total es {total} euros.")
    return WordProblem(("total", n, price), instruction, response, total, ("multiplicamos", str(total)))


def _percent_steps(p: int, base: int, divide: Divide = place_division,
                   multiply: Multiply = place_multiply) -> tuple[str, int]:
    """Small steps for p% of base: a tenth (then times k), a half, or a quarter (then times 3)."""
    if p == 50:
        result = base // 2
        return f"El 50% es la mitad: {divide(base, 2)}.", result
    if p in QUARTER_PERCENTS:
        quarter = base // 4
        first = f"El 25% es la cuarta parte: {divide(base, 4)}."
        if p == 25:
            return first, quarter
        return f"{first} El 75% son tres cuartas partes: {multiply(quarter, 3)}.", quarter * 3
    tenth, k = base // 10, p // 10
    first = f"Calculamos el 10% de {base}: {base} / 10 = {tenth}."
    if k == 1:
        return first, tenth
    return f"{first} Multiplicamos por {k}: {multiply(tenth, k)}.", tenth * k


def _percent(rng: random.Random, numbers: WordNumbers = SHIPPED_NUMBERS, divide: Divide = place_division,
             multiply: Multiply = place_multiply) -> WordProblem:
    p = rng.choice(PERCENTS)
    base = rng.choice(numbers.percent_bases_20 if p in QUARTER_PERCENTS else numbers.percent_bases_10)
    steps, result = _percent_steps(p, base, divide, multiply)
    item = rng.choice(PURCHASES)
    instruction = rng.choice(PERCENT_PHRASINGS).format(p=p, base=base, Item=item[0].upper() + item[1:])
    response = f"{steps} El {p}% de {base} es {result}."
    return WordProblem(("percent", p, base), instruction, response, result, (f"{p}%", str(result)))


def _motion_numbers(rng: random.Random, numbers: WordNumbers) -> tuple[str, int, int]:
    vehicle = rng.randrange(len(VEHICLES))
    subject, top = VEHICLES[vehicle]
    if numbers.top_speeds is not None:
        top = numbers.top_speeds[vehicle]
    steps = numbers.speed_steps  # one step draws nothing, so the held-out splits are those of before the option
    speed = rng.randrange(MIN_SPEED, top + 1, steps[0] if len(steps) == 1 else rng.choice(steps))
    return subject, speed, rng.choice(numbers.hours)


def _motion_text(template: str, subject: str, speed: int, hours: int) -> str:
    return template.format(V=subject, v=subject[0].lower() + subject[1:], speed=speed, t=hours, d=speed * hours)


def _speed(rng: random.Random, numbers: WordNumbers = SHIPPED_NUMBERS, divide: Divide = place_division,
           multiply: Multiply = place_multiply) -> WordProblem:
    subject, speed, hours = _motion_numbers(rng, numbers)
    d = speed * hours
    response = (f"La velocidad es la distancia dividida entre el tiempo: {divide(d, hours)}. "
                f"La velocidad media es {speed} km/h.")
    return WordProblem(("speed", d, hours), _motion_text(rng.choice(SPEED_PHRASINGS), subject, speed, hours),
                       response, speed, ("velocidad", str(speed)))


def _distance(rng: random.Random, numbers: WordNumbers = SHIPPED_NUMBERS,
              divide: Divide = place_division,
              multiply: Multiply = place_multiply) -> WordProblem:
    subject, speed, hours = _motion_numbers(rng, numbers)
    d = speed * hours
    response = (f"La distancia es la velocidad por el tiempo: {multiply(speed, hours)}. "
                f"Recorre {d} km.")
    return WordProblem(("distance", speed, hours), _motion_text(rng.choice(DISTANCE_PHRASINGS), subject, speed, hours),
                       response, d, ("distancia", str(d)))


def _time(rng: random.Random, numbers: WordNumbers = SHIPPED_NUMBERS, divide: Divide = place_division,
          multiply: Multiply = place_multiply) -> WordProblem:
    subject, speed, hours = _motion_numbers(rng, numbers)
    d = speed * hours
    response = (f"El tiempo es la distancia dividida entre la velocidad: {divide(d, speed)}. "
                f"Tarda {hours} horas.")
    return WordProblem(("time", d, speed), _motion_text(rng.choice(TIME_PHRASINGS), subject, speed, hours),
                       response, hours, ("tiempo", str(hours)))


WORD_PROBLEM_KINDS: tuple[Callable[[random.Random, WordNumbers, Divide, Multiply], WordProblem], ...] = (
    _change, _total, _percent, _speed, _distance, _time)
MAX_TRIES_PER_ROW = 1000


def word_problem_examples(rng: random.Random, counts: Mapping[str, int],
                          train_numbers: str = DEFAULT_TRAIN_NUMBERS,
                          division: str = DEFAULT_WORD_DIVISION,
                          sums: str = DEFAULT_WORD_SUMS) -> dict[str, list[Example]]:
    """Kinds in round-robin; held-out splits get fresh keys and unique instructions, train avoids their keys.
    Held-out splits draw from `SHIPPED_NUMBERS` first, so `train_numbers` (a `TRAIN_NUMBERS` name) changes the
    train rows only. `division` (a `WORD_DIVISIONS` name) and `sums` (a `WORD_SUMS` name) are how every split's
    responses write a division and a multiplication's sum; they change no instruction, answer or key."""
    if train_numbers not in TRAIN_NUMBERS:
        raise ValueError(f"unknown train_numbers {train_numbers!r}; choose one of {', '.join(TRAIN_NUMBERS)}")
    if division not in WORD_DIVISIONS:
        raise ValueError(f"unknown division {division!r}; choose one of {', '.join(WORD_DIVISIONS)}")
    if sums not in WORD_SUMS:
        raise ValueError(f"unknown sums {sums!r}; choose one of {', '.join(WORD_SUMS)}")
    divide, multiply = WORD_DIVISIONS[division], WORD_SUMS[sums]
    held_keys: set[tuple] = set()
    out: dict[str, list[Example]] = {}
    for split in HELD_OUT_ORDER:
        held_out = split != "train"
        numbers = SHIPPED_NUMBERS if held_out else TRAIN_NUMBERS[train_numbers]
        rows: list[Example] = []
        seen_instructions: set[str] = set()
        for index in range(counts[split]):
            make = WORD_PROBLEM_KINDS[index % len(WORD_PROBLEM_KINDS)]
            for _ in range(MAX_TRIES_PER_ROW):
                problem = make(rng, numbers, divide, multiply)
                if held_out and (problem.key in held_keys or problem.instruction in seen_instructions):
                    continue
                if not held_out and problem.key in held_keys:
                    continue
                break
            else:
                raise ValueError(f"could not draw a fresh word problem for {split} ({make.__name__})")
            if held_out:
                held_keys.add(problem.key)
                seen_instructions.add(problem.instruction)
            rows.append(problem.example())
        out[split] = rows
    return out


# ---------------------------------------------------------------- arithmetic drills (train only)
DRILL_SUBSET = "drill"
DRILL_PHRASINGS = ("Calcula {expr}.", "¿Cuánto es {expr}?", "Resuelve paso a paso: {expr}.")
DRILL_MAX_OPERAND = 300


def _drill(rng: random.Random) -> tuple[str, str, int]:
    """One place-value operation of the sizes the problems use: (expression, chain text, result)."""
    kind = rng.choice(("+", "-", "*", "/"))
    if kind == "+":
        a, b = rng.randrange(0, DRILL_MAX_OPERAND), rng.randrange(0, 40 if rng.random() < 0.6 else DRILL_MAX_OPERAND)
        return f"{a} + {b}", chain_text(add_chain(a, b)), a + b
    if kind == "-":
        a = rng.randrange(0, DRILL_MAX_OPERAND + 200)
        b = rng.randrange(0, min(a, 40 if rng.random() < 0.6 else a) + 1)
        return f"{a} - {b}", chain_text(sub_chain(a, b)), a - b
    if kind == "*":
        a, b = rng.randrange(2, 130), rng.randrange(2, 13)
        return f"{a} * {b}", chain_text(mul_chain(a, b)), a * b
    d, q = rng.randrange(2, 10), rng.randrange(0, 60)
    return f"{d * q} / {d}", chain_text(div_chain(d * q, d)), q


def drill_examples(rng: random.Random, counts: Mapping[str, int]) -> dict[str, list[Example]]:
    """Short rows that each practise one operation in the place-value format: "Calcula 87 - 7." ->
    "87 - 7 = 80." Train only (held-out splits get none): they teach the facts, the problems test them."""
    out: dict[str, list[Example]] = {}
    for split in HELD_OUT_ORDER:
        rows = []
        for _ in range(counts.get(split, 0) if split == "train" else 0):
            expression, chain, result = _drill(rng)
            instruction = rng.choice(DRILL_PHRASINGS).format(expr=expression)
            rows.append(Example(instruction, f"{chain}.", TASK, str(result), [str(result)], DRILL_SUBSET))
        out[split] = rows
    return out


DIVISION_FACT_PHRASINGS = ("Divide {n} entre {d} con resto.", "¿Cuál es el cociente y el resto de {n} / {d}?",
                           "Calcula {n} / {d} con resto.")


def division_fact_examples(rng: random.Random, rows: int) -> list[Example]:
    """Train-only rows for the step of long division (`liquid.data.arithmetic.long_division_steps`): every
    ``r = d * q + s`` with d in 2..9 and 0 <= r < 10 d (the 440 values r can take there), cycled in shuffled
    order until `rows`: "Divide 68 entre 8 con resto." -> "68 = 8 * 8 + 4." A table of facts, like the
    multiplication table: no problem, key or instruction of a held-out split."""
    facts = [(n, d) for d in range(2, 10) for n in range(10 * d)]
    out: list[Example] = []
    while len(out) < rows:
        rng.shuffle(facts)
        for n, d in facts[:rows - len(out)]:
            q, r = divmod(n, d)
            response = f"{n} = {d} * {q}" + (f" + {r}" if r else "") + "."
            instruction = rng.choice(DIVISION_FACT_PHRASINGS).format(n=n, d=d)
            out.append(Example(instruction, response, TASK, str(q), [str(q)], DRILL_SUBSET))
    return out

