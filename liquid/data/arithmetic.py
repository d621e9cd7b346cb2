"""Place-value arithmetic chains: every multi-digit operation written as steps of one digit each.

A chain is a list of expressions ``e0 = e1 = ... = ek`` (all equal, ``ek`` the result) in which each
link asks for at most one single-digit fact at one place value. This is the readable analogue of the
digit-wise scratchpad of Lee et al. (2023, "Teaching Arithmetic to Small Transformers"), where such
steps learned 3-digit addition from ~100x fewer samples than the plain ``a + b = c`` format.

With ``place_terms(n)`` the non-zero place values of n (735 -> 700, 30, 5):

1. ``a + b``: ``a + t1 + t2 + ...`` (t_i = place_terms(b)), then add one term per link:
   ``283 + 149 = 283 + 100 + 40 + 9 = 383 + 40 + 9 = 423 + 9 = 432``.
2. ``a - b`` (a >= b): the same with subtraction: ``500 - 373 = 500 - 300 - 70 - 3 = 200 - 70 - 3 = 130 - 3 = 127``.
3. ``a * b``: the products of place values, then their sum as in 1:
   ``47 * 7 = 40 * 7 + 7 * 7 = 280 + 49 = 280 + 40 + 9 = 320 + 9 = 329``.
4. ``n / d`` (exact): common trailing zeros cancelled (``960 / 120 = 96 / 12 = 8``); with a one-digit
   divisor and a multi-digit quotient, n is split greedily into multiples of d at each place value:
   ``735 / 7 = (700 + 35) / 7 = 100 + 5 = 105``.

A single-digit fact at one place (``8 + 5``, ``40 * 7``, ``56 / 8``, ``280 + 40``) is written in one link;
adding a term to a number whose digit at that place is 0 needs no fact and is merged with the next link.
Every link is exactly true (tested), so the coherence metric can check each one.

Two longer forms of an exact division write out the choice that a split hides (used by the word problems'
``long`` division format, `liquid.data.math_tasks.long_division`):

5. long division, one-digit d: one step ``r = d * q + s`` per quotient digit, dividend = divisor * quotient +
   remainder, with r the remainder brought down with the next digit of n:
   ``680 / 8``: ``68 = 8 * 8 + 4``, ``40 = 8 * 5`` (quotient 85).
6. multiples, d >= 10 and a small quotient: ``d * k`` from the previous multiple plus d until n:
   ``225 / 75``: ``75 * 2 = 75 + 75 = 150``, ``75 * 3 = 150 + 75 = 225`` (quotient 3).
"""

from __future__ import annotations

from typing import Callable


def place_terms(n: int) -> list[int]:
    """Non-zero place values of n >= 0, highest first: 735 -> [700, 30, 5]; 0 -> [0]."""
    if n < 0:
        raise ValueError(f"place_terms needs n >= 0, got {n}")
    digits = str(n)
    terms = [int(d) * 10 ** (len(digits) - 1 - i) for i, d in enumerate(digits) if d != "0"]
    return terms or [0]


def _digit(n: int, place: int) -> int:
    return (n // 10 ** place) % 10


def _place(term: int) -> int:
    return len(str(term)) - 1


def _join(values: list[int], op: str) -> str:
    return f" {op} ".join(str(v) for v in values)


def _accumulate(first: int, terms: list[int], op: str) -> list[str]:
    """``first op t1 op t2 ...`` reduced one term per link; a term landing on a 0 digit (no fact
    needed, for +) is merged into the next link."""
    chain: list[str] = []
    acc, rest = first, list(terms)
    while rest:
        term = rest.pop(0)
        trivial = op == "+" and _digit(acc, _place(term)) == 0
        acc = acc + term if op == "+" else acc - term
        if not trivial or not rest:
            chain.append(_join([acc, *rest], op) if rest else str(acc))
    return chain


def add_chain(a: int, b: int) -> list[str]:
    """``a + b`` for a, b >= 0, one place value of b per link."""
    _check_non_negative(a, b)
    terms = place_terms(b)
    chain = [f"{a} + {b}"]
    if len(terms) > 1:
        chain.append(_join([a, *terms], "+"))
    return chain + _accumulate(a, terms, "+")


def sub_chain(a: int, b: int) -> list[str]:
    """``a - b`` for a >= b >= 0, one place value of b per link."""
    _check_non_negative(a, b)
    if b > a:
        raise ValueError(f"sub_chain needs a >= b, got {a} - {b}")
    terms = place_terms(b)
    chain = [f"{a} - {b}"]
    if len(terms) > 1:
        chain.append(_join([a, *terms], "-"))
    return chain + _accumulate(a, terms, "-")


def sum_chain(values: list[int]) -> list[str]:
    """``v0 + v1 + ...`` (all >= 0): later values split into place values, then added one per link."""
    _check_non_negative(*values)
    terms = [t for v in values[1:] for t in place_terms(v) if t]
    chain = [_join(values, "+")]
    if terms != values[1:]:
        chain.append(_join([values[0], *terms], "+"))
    if not terms:
        return chain + [str(values[0])] if len(values) > 1 else chain
    return chain + _accumulate(values[0], terms, "+")


def column_sum_chain(values: list[int]) -> list[str]:
    """``v0 + v1 + ...`` (all >= 0) with the hundreds kept apart while the tens are added (the word problems'
    ``column`` sums): every value split into place values, grouped hundreds / tens / units, the tens added one
    per link, then the three parts joined: ``630 + 35 = 600 + 30 + 30 + 5 = 600 + 60 + 5 = 665``, ``180 + 24 =
    100 + 80 + 20 + 4 = 100 + 100 + 4 = 204``, ``600 + 60 + 30 = 600 + 90 = 690``. So each tens link is a fact of
    two-digit tens (``30 + 30``, ``80 + 20``) whatever the hundreds, instead of a three-digit sum (``630 + 30``)
    that only the problems with those numbers contain. Sums with no hundreds, with more than one hundreds or units
    term, or with fewer than two tens terms (no tens to add), are `sum_chain`."""
    _check_non_negative(*values)
    terms = [t for v in values for t in place_terms(v) if t]
    hundreds = [t for t in terms if t >= 100]
    tens = [t for t in terms if 10 <= t < 100]
    units = [t for t in terms if t < 10]
    if len(hundreds) != 1 or len(units) > 1 or len(tens) < 2:
        return sum_chain(values)
    chain = [_join(values, "+")]
    if [*hundreds, *tens, *units] != values:
        chain.append(_join([*hundreds, *tens, *units], "+"))
    acc = tens[0]
    for i, term in enumerate(tens[1:], start=2):
        acc += term
        chain.append(_join([*hundreds, acc, *tens[i:], *units], "+"))
    return chain + [str(sum(values))]


def mul_chain(a: int, b: int, sums: Callable[[list[int]], list[str]] | None = None) -> list[str]:
    """``a * b`` for a, b >= 0: products of place values (one single-digit fact each), then their sum
    (`sum_chain`, or `sums`: `column_sum_chain`)."""
    _check_non_negative(a, b)
    pairs = [(x, y) for x in place_terms(a) for y in place_terms(b)]
    head = f"{a} * {b}"
    if len(pairs) == 1:
        return [head, str(a * b)]
    products = [x * y for x, y in pairs]
    return [head, " + ".join(f"{x} * {y}" for x, y in pairs), *(sums or sum_chain)(products)]


def div_chain(n: int, d: int) -> list[str]:
    """``n / d`` for n >= 0, d > 0, d dividing n: cancel common zeros, then split n into multiples of d."""
    _check_non_negative(n)
    if d <= 0 or n % d:
        raise ValueError(f"div_chain needs an exact division by d > 0, got {n} / {d}")
    reduced = cancel_zeros(n, d)
    chain = [f"{a} / {b}" for a, b in reduced]
    n, d = reduced[-1]
    quotient = n // d
    parts = _division_parts(n, d) if d < 10 else [n]
    if len(parts) > 1:
        chain.append(f"({_join(parts, '+')}) / {d}")
        chain.append(_join([p // d for p in parts], "+"))
    chain.append(str(quotient))
    return chain


def cancel_zeros(n: int, d: int) -> list[tuple[int, int]]:
    """``n / d`` and each form after cancelling one common trailing zero: 960, 120 -> [(960, 120), (96, 12)].
    A divisor of 10 is kept ("470 / 10" is a shift)."""
    forms = [(n, d)]
    while n and n % 10 == 0 and d % 10 == 0 and d > 10:
        n, d = n // 10, d // 10
        forms.append((n, d))
    return forms


def _division_parts(n: int, d: int) -> list[int]:
    """Greedy split of n into multiples of d times a power of ten: 735, 7 -> [700, 35]; 470, 2 -> [400, 60, 10]."""
    parts, rest = [], n
    for place in range(len(str(n)) - 1, -1, -1):
        unit = d * 10 ** place
        if rest >= unit:
            parts.append(rest // unit * unit)
            rest -= parts[-1]
    return parts


def long_division_steps(n: int, d: int) -> list[str]:
    """Schoolbook long division of n >= 0 by a one-digit d, exact: one ``r = d * q + s`` chain per quotient digit.

    Leading digits are taken together until they reach d (``100 / 4`` starts at ``10 = 4 * 2 + 2``); a zero
    remainder is not written (``20 = 4 * 5``). ``380 / 2`` -> ``3 = 2 * 1 + 1``, ``18 = 2 * 9``, ``0 = 2 * 0``.
    """
    _check_non_negative(n)
    if not 2 <= d <= 9 or n % d:
        raise ValueError(f"long_division_steps needs an exact division by a one-digit d >= 2, got {n} / {d}")
    steps, remainder, started = [], 0, False
    for digit in str(n):
        current = 10 * remainder + int(digit)
        if not started and current < d:
            remainder = current
            continue
        started = True
        remainder = current % d
        steps.append(f"{current} = {d} * {current // d}" + (f" + {remainder}" if remainder else ""))
    return steps or [f"{n} = {d} * 0"]


def multiples_steps(n: int, d: int) -> list[str]:
    """The multiples of d up to n, each from the one before: ``d * k = d * (k - 1) + d``; d divides n, n >= 2d.

    ``225 / 75`` -> ``75 * 2 = 75 + 75 = 150``, ``75 * 3 = 150 + 75 = 225``."""
    _check_non_negative(n)
    if d <= 0 or n % d or n < 2 * d:
        raise ValueError(f"multiples_steps needs d > 0 dividing n >= 2d, got {n} / {d}")
    return [f"{d} * {k} = {d * (k - 1)} + {d} = {d * k}" for k in range(2, n // d + 1)]


def _check_non_negative(*values: int) -> None:
    if any(v < 0 for v in values):
        raise ValueError(f"arithmetic chains take non-negative operands, got {values}")


def chain_text(chain: list[str]) -> str:
    return " = ".join(chain)
