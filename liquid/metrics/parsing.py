"""Text parsing for the metrics: normalisation, numbers, linear expressions, sentences and '=' chains.

Every function here is total: on arbitrary text it returns a value (``None`` when nothing parses),
it never raises.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

MAX_NUMBER_DIGITS = 20  # longer digit runs are rejected (keeps Fraction sizes and str() bounded)
MAX_EXPRESSION_TOKENS = 64  # longer expressions are rejected (bounds parse time and recursion depth)
MAX_CANDIDATE_CHARS = 200  # an expression side longer than this is not searched for a parseable span

# Unicode operator look-alikes mapped to the ASCII operators the parser knows.
OPERATOR_ALIASES = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*", "÷": "/"})
EXPRESSION_CHARS = frozenset("0123456789xX+-*/()., −–×·÷")

_TOKEN_RE = re.compile(r"\s*(?:([0-9]+(?:[.,][0-9]+)?)|([xX])|([-+*/()]))")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+|\n+")
# A normalised token: a number (with a leading minus unless it follows a word or ')', and inner
# '.'/',' separators), or a run of letters/digits without '_'.
_NORMALIZED_TOKEN_RE = re.compile(r"(?<![\w)])-?[0-9]+(?:[.,][0-9]+)*|[^\W_]+")
_REDUCED_LITERAL_RE = re.compile(r"-?(?P<numerator>[0-9]+)(?:[.,][0-9]+|/(?P<denominator>[0-9]+))?")
_NUMBER_LITERAL_RE = re.compile(r"(?<![\w)])\(?(-?[0-9]+(?:[.,][0-9]+)?(?:/[0-9]+)?)\)?(?![0-9])")


def normalize(text: str) -> str:
    """Lowercase, strip accents (NFD, drop combining marks: á->a, ñ->n), drop punctuation, collapse spaces.

    Two marks that change a number's meaning are kept: a minus sign directly before a digit and not
    after a word character ("x = -3" -> "x -3", but "20 - 5" -> "20 5"), and a '.' or ',' between two
    digits ("12,5" stays "12,5").
    """
    decomposed = unicodedata.normalize("NFD", text.lower())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NORMALIZED_TOKEN_RE.findall(stripped))


def contains_span(haystack_normalized: str, needle: str) -> bool:
    """Whether ``normalize(needle)`` occurs in an already-normalised text as a whole-word span."""
    target = normalize(needle)
    return bool(target) and f" {target} " in f" {haystack_normalized} "


@dataclass(frozen=True)
class LinearForm:
    """A linear expression ``coef * x + const`` with exact rational coefficients."""

    coef: Fraction
    const: Fraction

    @property
    def has_x(self) -> bool:
        return self.coef != 0


@dataclass(frozen=True)
class SolutionSet:
    """Solutions of ``a x + b = 0``: ``kind`` is "one" (then ``value`` is set), "all" or "none"."""

    kind: str
    value: Fraction | None = None


class _Unparsable(Exception):
    """Internal signal: the expression is not a linear expression in x."""


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.translate(OPERATOR_ALIASES).rstrip()
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            raise _Unparsable
        number, variable, operator = match.groups()
        if number is not None and sum(ch.isdigit() for ch in number) > MAX_NUMBER_DIGITS:
            raise _Unparsable
        tokens.append(number if number is not None else (variable.lower() if variable else operator))
        position = match.end()
        if len(tokens) > MAX_EXPRESSION_TOKENS:
            raise _Unparsable
    return tokens


class _LinearParser:
    """Recursive descent over: expr := term (('+'|'-') term)*;
    term := unary (('*'|'/') unary | implicit-product)*; unary := ('+'|'-') unary | atom;
    atom := NUMBER | 'x' | '(' expr ')'. Implicit products: "3x", "3(x + 2)", "(x + 1)(2)", "x(3)"."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.position = 0

    def parse(self) -> LinearForm:
        if not self.tokens:
            raise _Unparsable
        form = self._expr()
        if self.position != len(self.tokens):
            raise _Unparsable
        return form

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise _Unparsable
        self.position += 1
        return token

    def _expr(self) -> LinearForm:
        form = self._term()
        while self._peek() in ("+", "-"):
            sign = 1 if self._take() == "+" else -1
            right = self._term()
            form = LinearForm(form.coef + sign * right.coef, form.const + sign * right.const)
        return form

    def _term(self) -> LinearForm:
        form = self._unary()
        while True:
            token = self._peek()
            if token == "*":
                self._take()
                form = _multiply(form, self._unary())
            elif token == "/":
                self._take()
                form = _divide(form, self._unary())
            elif token == "x" or token == "(":
                form = _multiply(form, self._atom())
            else:
                return form

    def _unary(self) -> LinearForm:
        if self._peek() in ("+", "-"):
            sign = 1 if self._take() == "+" else -1
            inner = self._unary()
            return LinearForm(sign * inner.coef, sign * inner.const)
        return self._atom()

    def _atom(self) -> LinearForm:
        token = self._take()
        if token == "x":
            return LinearForm(Fraction(1), Fraction(0))
        if token == "(":
            form = self._expr()
            if self._take() != ")":
                raise _Unparsable
            return form
        if token[0].isdigit():
            return LinearForm(Fraction(0), Fraction(token.replace(",", ".")))
        raise _Unparsable


def _multiply(left: LinearForm, right: LinearForm) -> LinearForm:
    if left.has_x and right.has_x:
        raise _Unparsable  # x * x is not linear
    return LinearForm(
        left.coef * right.const + right.coef * left.const, left.const * right.const
    )


def _divide(left: LinearForm, right: LinearForm) -> LinearForm:
    if right.has_x or right.const == 0:
        raise _Unparsable  # division by x or by zero
    return LinearForm(left.coef / right.const, left.const / right.const)


def parse_linear(text: str) -> LinearForm | None:
    """Parse ``text`` as a whole into ``coef * x + const``; ``None`` if it is not a linear expression."""
    try:
        return _LinearParser(_tokenize(text)).parse()
    except _Unparsable:
        return None


def parse_constant(text: str) -> Fraction | None:
    """Value of an x-free arithmetic expression, else ``None``."""
    form = parse_linear(text)
    return form.const if form is not None and not form.has_x else None


def solve(left: LinearForm, right: LinearForm) -> SolutionSet:
    """Solution set of ``left = right``, i.e. of ``a x + b = 0`` with a = left.coef - right.coef."""
    a = left.coef - right.coef
    b = left.const - right.const
    if a != 0:
        return SolutionSet("one", -b / a)
    return SolutionSet("all") if b == 0 else SolutionSet("none")


def _strip_sentence_punctuation(text: str) -> str:
    return text.strip().rstrip(".!?;").strip()


def parse_number(text: str) -> Fraction | None:
    """Parse a number written alone or as the value side of an equation.

    Accepts "5", "-3", "(-3)", "-3/2", "12,5", "12.5", "x = 5", "x = 15 / 3 = 5" (the last '='-separated
    part that is an x-free expression gives the value), with an optional final '.'. A single '.' or ','
    between digits is a decimal separator ("1.000" = 1): thousands grouping is not supported, the data
    never writes it. Anything else ("cinco", "5 euros", "") gives ``None``.
    """
    for part in reversed(_strip_sentence_punctuation(text).split("=")):
        value = parse_constant(part)
        if value is not None:
            return value
    return None


def split_sentences(text: str) -> list[str]:
    """Split on '.', '!' or '?' followed by whitespace, and on newlines; trailing '.!?' are removed.

    A '.' inside a number ("12.5") is followed by a digit, not whitespace, so it never ends a sentence.
    Sentences that are empty after stripping are dropped.
    """
    sentences = (_strip_sentence_punctuation(part) for part in _SENTENCE_END_RE.split(text))
    return [sentence for sentence in sentences if sentence]


def _expression_suffix(text: str) -> LinearForm | None:
    """Longest parseable suffix of ``text`` (inside its trailing run of expression characters)."""
    start = len(text)
    while start > 0 and text[start - 1] in EXPRESSION_CHARS and len(text) - start < MAX_CANDIDATE_CHARS:
        start -= 1
    for begin in range(start, len(text)):
        if not text[begin].isspace():
            form = parse_linear(text[begin:])
            if form is not None:
                return form
    return None


def _leading_run_end(text: str) -> int:
    """End of the leading run of expression characters of ``text`` (at most MAX_CANDIDATE_CHARS)."""
    end = 0
    while end < len(text) and text[end] in EXPRESSION_CHARS and end < MAX_CANDIDATE_CHARS:
        end += 1
    return end


def _expression_prefix(text: str) -> LinearForm | None:
    """Longest parseable prefix of ``text`` (inside its leading run of expression characters)."""
    for stop in range(_leading_run_end(text), 0, -1):
        if not text[stop - 1].isspace():
            form = parse_linear(text[:stop])
            if form is not None:
                return form
    return None


def _run_from(parts: list[str], first: int, head: LinearForm) -> tuple[list[LinearForm], int]:
    """Extend ``head = parts[first + 1] = ...`` while parts parse; returns the run and its last index.

    Inner parts must parse completely; the part that stops the run may still contribute its longest
    parseable prefix ("... = 5 euros" -> 5).
    """
    run = [head]
    for index in range(first + 1, len(parts)):
        whole = parse_linear(parts[index]) if index < len(parts) - 1 else None
        if whole is not None:
            run.append(whole)
            continue
        tail = _expression_prefix(parts[index])
        if tail is not None:
            run.append(tail)
        return run, index
    return run, len(parts) - 1


def find_chain(text: str) -> list[LinearForm]:
    """The longest run ``e0 = e1 = ... = ek`` (k >= 1) of parseable expressions in ``text``; [] if none.

    The first expression of a run may be preceded by prose and the last one followed by prose
    ("La solución es x = 5 euros" -> [x, 5]); inner expressions must parse completely. Ties go to
    the first run.
    """
    parts = text.split("=")
    best: list[LinearForm] = []
    first = 0
    while first < len(parts) - 1:
        head = _expression_suffix(parts[first])
        if head is None:
            first += 1
            continue
        run, last = _run_from(parts, first, head)
        if len(run) >= 2 and len(run) > len(best):
            best = run
        first = max(last, first + 1)  # a run starting inside this one ends at the same part: shorter
    return best


def question_equation(instruction: str) -> tuple[LinearForm, LinearForm] | None:
    """The equation around the first '=' of the instruction whose two sides parse and contain x.

    The left side is the longest parseable suffix before '=', the right side the longest parseable
    prefix after it ("Resuelve la ecuación 3x + 5 = 20." -> (3x + 5, 20)); ``None`` for word problems.
    """
    parts = instruction.split("=")
    for index in range(len(parts) - 1):
        left = _expression_suffix(parts[index])
        right = _expression_prefix(parts[index + 1])
        if left is not None and right is not None and (left.has_x or right.has_x):
            return left, right
    return None


def _ends_with_lone_x(text: str) -> bool:
    """Whether ``text`` ends with a stand-alone ``x`` ("es x", "x"), not an operand ("3x", "-x", "2 * x")."""
    stripped = text.rstrip()
    if not stripped.endswith(("x", "X")):
        return False
    if len(stripped) >= 2 and (stripped[-2].isalnum() or stripped[-2] == "_"):
        return False
    before = stripped[:-1].rstrip()
    return not before or before[-1] not in "+-*/()0123456789"


def last_x_statement(text: str) -> tuple[Fraction, str] | None:
    """Value and written text of the last "x = v" statement in ``text`` (v a number or an x-free expression).

    In "x = 15 / 3 = 5." the value is the last expression of the '=' run after x (5) and its text is "5";
    prose after that expression is not part of the text ("x = 5 euros" -> "5").
    """
    for sentence in reversed(split_sentences(text)):
        parts = sentence.split("=")
        for index in range(len(parts) - 2, -1, -1):
            if not _ends_with_lone_x(parts[index]):
                continue
            run, _ = _run_from(parts, index, LinearForm(Fraction(1), Fraction(0)))
            if len(run) >= 2 and not any(form.has_x for form in run[1:]):
                return run[-1].const, _leading_expression_text(parts[index + len(run) - 1])
    return None


def last_x_value(text: str) -> Fraction | None:
    """Value of the last "x = v" statement in ``text`` (see ``last_x_statement``)."""
    statement = last_x_statement(text)
    return None if statement is None else statement[0]


def _leading_expression_text(part: str) -> str:
    """The leading run of expression characters of ``part``, without spaces and a final sentence '.' or ','."""
    return "".join(part[:_leading_run_end(part)].split()).rstrip(".,")


def is_reduced_literal(text: str) -> bool:
    """Whether ``text`` is one number written in lowest terms: an integer, a decimal, or p/q with gcd(p, q) = 1, q >= 2.

    An optional sign and one pair of outer parentheses are allowed ("-7", "(-7)", "12,5", "-13/2"); "21/3",
    "14/2", "15 / 3" (spaces are not removed here), "-(13/2)" and "10 + 5" are not.
    """
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    match = _REDUCED_LITERAL_RE.fullmatch(text)
    if match is None or len(text) > 2 * MAX_NUMBER_DIGITS + 2:  # bounds int() below
        return False
    if match.group("denominator") is None:
        return True
    numerator, denominator = int(match.group("numerator")), int(match.group("denominator"))
    return denominator >= 2 and math.gcd(numerator, denominator) == 1


def last_number_literal(text: str) -> str | None:
    """The last number literal in ``text`` as written ("13", "-7", "3/2"), outer parentheses dropped; ``None`` if none."""
    for literal in reversed(_NUMBER_LITERAL_RE.findall(text)):
        if parse_constant(literal) is not None:
            return literal
    return None


def last_number(text: str) -> Fraction | None:
    """The last number literal in ``text`` ("13", "-7", "(-7)", "12,5", "3/2"); ``None`` if there is none."""
    literal = last_number_literal(text)
    return None if literal is None else parse_constant(literal)
