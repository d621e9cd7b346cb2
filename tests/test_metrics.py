"""Tests for liquid.metrics: hand-written cases per metric and property tests on arbitrary text."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liquid.metrics import (
    SpanishTokenizer,
    accuracy,
    aggregate,
    coherence,
    corpus_chrf,
    corpus_rouge_l,
    coverage,
    equation_steps,
    final_answer,
    final_math_text,
    is_reduced_literal,
    normalize,
    parse_linear,
    parse_number,
    score_row,
    step_report,
)

EQUATION = "Resuelve la ecuación 3x + 5 = 20."
# Right steps, wrong final answer / wrong steps, right final answer (the pair the issue asks about).
VALID_STEPS_WRONG_ANSWER = (
    "Restamos 5 en ambos lados: 3x = 20 - 5 = 15. Dividimos ambos lados entre 3: x = 15 / 3 = 5. "
    "La solución es x = 6."
)
INVALID_STEPS_RIGHT_ANSWER = (
    "Restamos 5 en ambos lados: 3x = 20 - 5 = 14. Dividimos ambos lados entre 3: x = 14 / 3 = 5. "
    "La solución es x = 5."
)
MATH_ROW = {"instruction": EQUATION, "task": "math", "answer": "5", "concepts": ["restamos", "dividimos", "x = 5"],
            "response": "", "subset": "equation"}
WORD_PROBLEM = "Ana paga con 50 euros una compra de 37 euros. ¿Cuánto dinero le devuelven?"
QA_ROW = {"instruction": "¿Cuál es la capital de Francia?", "task": "qa", "answer": "París",
          "response": "La capital de Francia es París. Es importante porque es el centro político del país.",
          "concepts": ["París", "Francia", "capital", "político"], "subset": "seen_fact"}
CAPITALS = ["París", "Madrid", "Lima", "Ciudad de México"]

# Text that exercises the parsers (digits, x, operators, '=', sentence marks) plus fully arbitrary text.
MATHY_TEXT = st.text(alphabet="0123456789xX+-*/()=.,:;!? ¿¡aeséñ\n", max_size=120)
ANY_TEXT = st.one_of(st.text(max_size=200), MATHY_TEXT)
ROWS = st.fixed_dictionaries({
    "instruction": ANY_TEXT,
    "response": ANY_TEXT,
    "task": st.sampled_from(["math", "qa", "sentiment", "", "otra"]),
    "answer": ANY_TEXT,
    "concepts": st.lists(ANY_TEXT, max_size=4),
    "subset": st.sampled_from(["", "equation"]),
})


# ----------------------------------------------------------------------------- normalisation and numbers
def test_normalize_ignores_case_accents_and_punctuation():
    assert normalize("¡La ECUACIÓN, del Año!") == normalize("la ecuacion del ano") == "la ecuacion del ano"
    assert normalize("  x   =\n5. ") == "x 5"


def test_normalize_keeps_signs_and_decimals_of_numbers():
    assert normalize("x = -3") == "x -3"
    assert normalize("20 - 5") == "20 5"  # subtraction, not a negative number
    assert normalize("vale 12,5.") == "vale 12,5"


@pytest.mark.parametrize("text, expected", [
    ("5", Fraction(5)),
    ("-3", Fraction(-3)),
    ("(-3)", Fraction(-3)),
    ("-3/2", Fraction(-3, 2)),
    ("12,5", Fraction(25, 2)),
    ("12.5", Fraction(25, 2)),
    ("x = 5", Fraction(5)),
    ("x = -7.", Fraction(-7)),
    ("x = 15 / 3 = 5", Fraction(5)),
])
def test_parse_number(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize("text", ["", "cinco", "5 euros", "x", "3x", "1/0", "x = x", "2 3", "=", "((5)"])
def test_parse_number_garbage_is_none(text):
    assert parse_number(text) is None


# ----------------------------------------------------------------------------- linear expressions
@st.composite
def linear_expressions(draw, depth=3):
    """A random linear expression as text together with its (coef, const), built independently."""
    small = st.integers(-9, 9)
    if depth == 0 or draw(st.booleans()):
        if draw(st.booleans()):
            return "x", Fraction(1), Fraction(0)
        n = draw(small)
        return (f"({n})" if n < 0 else str(n)), Fraction(0), Fraction(n)
    left, a1, b1 = draw(linear_expressions(depth=depth - 1))
    right, a2, b2 = draw(linear_expressions(depth=depth - 1))
    k = draw(small.filter(lambda v: v != 0))
    k_text = f"({k})" if k < 0 else str(k)
    choice = draw(st.sampled_from(["+", "-", "implicit", "times", "divide", "negate"]))
    if choice == "+":
        return f"{left} + {right}", a1 + a2, b1 + b2
    if choice == "-":
        return f"{left} - ({right})", a1 - a2, b1 - b2
    if choice == "implicit":
        return f"{k_text}({left})", k * a1, k * b1
    if choice == "times":
        return f"({left}) * {k_text}", a1 * k, b1 * k
    if choice == "divide":
        return f"({left}) / {k_text}", a1 / k, b1 / k
    return f"-({left})", -a1, -b1


@settings(max_examples=200, deadline=None)
@given(linear_expressions())
def test_parse_linear_matches_structural_value(case):
    text, coef, const = case
    form = parse_linear(text)
    assert form is not None, text
    assert (form.coef, form.const) == (coef, const)


@pytest.mark.parametrize("text, coef, const", [
    ("3x", 3, 0), ("-x + 4", -1, 4), ("3(x + 2)", 3, 6), ("2(x - 3) - x", 1, -6), ("x / 2", Fraction(1, 2), 0),
    ("15 / (-3)", 0, -5), ("12,5 - 0.5", 0, 12),
])
def test_parse_linear_forms(text, coef, const):
    form = parse_linear(text)
    assert (form.coef, form.const) == (Fraction(coef), Fraction(const))


@pytest.mark.parametrize("text", ["x * x", "x(x + 1)", "3 / x", "5 / (2 - 2)", "y + 1", "3 +", "()", ""])
def test_parse_linear_rejects_non_linear_and_malformed(text):
    assert parse_linear(text) is None


# ----------------------------------------------------------------------------- final answer and accuracy
@pytest.mark.parametrize("prediction, task, expected", [
    ("Restamos 5: 3x = 15. La solución es x = -3.", "math", "-3"),
    ("Dividimos: x = 15 / 3 = 5.", "math", "5"),
    ("x = 3/2", "math", "3/2"),
    ("Le devuelven 13 euros.", "math", "13"),
    ("No lo sé.", "math", None),
    ("El sentimiento del texto es POSITIVO.", "sentiment", "positivo"),
    ("La opinión es negativa.", "sentiment", "negativo"),
    ("Es positivo y también negativo.", "sentiment", None),
    ("La capital es París.", "qa", None),
])
def test_final_answer(prediction, task, expected):
    assert final_answer(prediction, task) == expected


@pytest.mark.parametrize("prediction, answer, expected", [
    ("La solución es x = 5.", "5", 1.0),
    ("La solución es x = 6.", "5", 0.0),
    ("La solución es x = -1,5.", "-3/2", 1.0),
    ("Paga 12 euros en total.", "12", 1.0),
    ("", "5", 0.0),
    # the value must be written as one number in lowest terms (session 28): the reference's form
    ("Dividimos ambos lados entre 3: x = 21 / 3 = 7. La solución es x = 7.", "7", 1.0),
    ("La solución es x = (-7).", "-7", 1.0),
    ("La solución es x = 21/3.", "7", 0.0),           # an integer written as a fraction
    ("Dividimos ambos lados entre 3: x = 21 / 3.", "7", 0.0),  # the division left undone
    ("La solución es x = -26/4.", "-13/2", 0.0),      # not in lowest terms
    ("La solución es x = -(13 / 2).", "-13/2", 0.0),  # an expression, not a number
    ("La solución es x = -13/2.", "-13/2", 1.0),
    ("La solución es x = 10 - 3.", "7", 0.0),
    ("Son 21/3 euros.", "7", 0.0),                    # the last-number fallback is held to the same form
])
def test_accuracy_math(prediction, answer, expected):
    assert accuracy(prediction, {"task": "math", "answer": answer}) == expected


@pytest.mark.parametrize("text, expected", [
    ("7", True), ("-7", True), ("(-7)", True), ("12,5", True), ("0", True), ("-13/2", True), ("1/2", True),
    ("21/3", False), ("14/2", False), ("-26/4", False), ("5/1", False), ("3/0", False), ("-(13/2)", False),
    ("10-3", False), ("x", False), ("", False), ("(7", False), ("9" * 60 + "/7", False),
])
def test_is_reduced_literal(text, expected):
    assert is_reduced_literal(text) is expected


@pytest.mark.parametrize("prediction, expected", [
    ("Dividimos: x = 15 / 3 = 5. La solución es x = 5.", "5"),
    ("La solución es x = 7 euros.", "7"),
    ("x = 21 / 3.", "21/3"),
    ("Le devuelven 13 euros.", "13"),
    ("No lo sé.", None),
])
def test_final_math_text_is_the_answer_as_written(prediction, expected):
    assert final_math_text(prediction) == expected


@pytest.mark.parametrize("prediction, expected", [
    ("El sentimiento del texto es negativo.", 1.0),
    ("el SENTIMIENTO es Negativo", 1.0),
    ("El sentimiento del texto es positivo.", 0.0),
    ("Es negativo, aunque también positivo.", 0.0),  # two labels asserted
    ("No sé.", 0.0),
])
def test_accuracy_sentiment(prediction, expected):
    assert accuracy(prediction, {"task": "sentiment", "answer": "negativo"}) == expected


@pytest.mark.parametrize("prediction, expected", [
    ("La capital de Francia es París.", 1.0),
    ("la capital de francia es PARIS", 1.0),  # case and accents ignored
    ("Es la ciudad parisina.", 0.0),  # whole words only
    ("La capital de Francia es Lyon.", 0.0),
])
def test_accuracy_qa_containment(prediction, expected):
    assert accuracy(prediction, QA_ROW) == expected


def test_accuracy_other_task_is_normalised_exact_match():
    row = {"task": "", "answer": "", "response": "Hola, ¿qué tal?"}
    assert accuracy("hola que tal", row) == 1.0
    assert accuracy("hola", row) == 0.0


# ----------------------------------------------------------------------------- equation steps
@pytest.mark.parametrize("instruction, prediction, kinds, validity", [
    (  # ax + b = c
        "Resuelve la ecuación 3x + 5 = 20.",
        "Restamos 5 en ambos lados: 3x = 20 - 5 = 15. Dividimos ambos lados entre 3: x = 15 / 3 = 5. "
        "La solución es x = 5.",
        ["equation"] * 3, [True, True, True],
    ),
    (  # a(x + b) = c with a negative right side
        "¿Cuánto vale x si 2(x + 3) = -4?",
        "Dividimos ambos lados entre 2: x + 3 = -4 / 2 = -2. Restamos 3 en ambos lados: x = -2 - 3 = -5. "
        "La solución es x = -5.",
        ["equation"] * 3, [True, True, True],
    ),
    (  # b - ax = c: a negative coefficient, a parenthesised negative divisor, one arithmetic slip
        "Despeja x: 4 - 3x = 19.",
        "Restamos 4 en ambos lados: -3x = 19 - 4 = 15. Dividimos ambos lados entre -3: x = 15 / (-3) = -6. "
        "La solución es x = -5.",
        ["equation"] * 3, [True, False, True],
    ),
    (  # a(x - b) = c: an arithmetic slip in the first step (10 / 5 = 3) carries through
        "Halla x en la ecuación 5(x - 2) = 10.",
        "Dividimos ambos lados entre 5: x - 2 = 10 / 5 = 3. Sumamos 2 en ambos lados: x = 3 + 2 = 5. "
        "La solución es x = 5.",
        ["equation"] * 3, [False, False, False],
    ),
])
def test_equation_steps_forms(instruction, prediction, kinds, validity):
    steps = equation_steps(instruction, prediction)
    assert [step.kind for step in steps] == kinds
    assert [step.valid for step in steps] == validity


def test_equation_steps_keeps_decimals_and_skips_prose():
    steps = equation_steps("Resuelve 2x = 5.", "Primero pensamos. Dividimos entre 2: x = 5 / 2 = 2.5. Listo.")
    assert len(steps) == 1
    assert steps[0].valid is True and steps[0].value == Fraction(5, 2)


def test_equation_steps_word_problem():
    prediction = "El cambio es el pago menos el precio: 50 - 37 = 13. Entonces x = 13. Le devuelven 13 euros."
    steps = equation_steps(WORD_PROBLEM, prediction)
    assert [(step.kind, step.valid) for step in steps] == [("arithmetic", True), ("unparsed", None)]
    wrong = equation_steps(WORD_PROBLEM, "Restamos: 50 - 37 = 12.")
    assert [(step.kind, step.valid) for step in wrong] == [("arithmetic", False)]


def test_step_report_marks_each_step():
    lines = step_report(EQUATION, VALID_STEPS_WRONG_ANSWER).splitlines()
    assert "x = 5" in lines[0]
    assert [line[0] for line in lines[1:]] == ["✓", "✓", "✗"]
    assert lines[3].endswith("La solución es x = 6")


# ----------------------------------------------------------------------------- coherence
def test_valid_steps_wrong_answer_and_invalid_steps_right_answer_score_differently():
    wrong_answer = score_row(VALID_STEPS_WRONG_ANSWER, MATH_ROW)
    right_answer = score_row(INVALID_STEPS_RIGHT_ANSWER, MATH_ROW)
    assert (wrong_answer["accuracy"], right_answer["accuracy"]) == (0.0, 1.0)
    # valid steps / steps * agree * rep: 2 of 3 steps hold vs 1 of 3; each final sentence is its own last step.
    assert wrong_answer["coherence"] == pytest.approx(2 / 3 * 1.0 * 1.0)
    assert right_answer["coherence"] == pytest.approx(1 / 3 * 1.0 * 1.0)
    assert wrong_answer["coherence"] != right_answer["coherence"]


def test_math_coherence_final_answer_disagreeing_with_last_step():
    row = {"instruction": WORD_PROBLEM, "task": "math", "answer": "13"}
    agreeing = "El cambio es el pago menos el precio: 50 - 37 = 13. Le devuelven 13 euros."
    disagreeing = "El cambio es el pago menos el precio: 50 - 37 = 13. Le devuelven 14 euros."
    assert coherence(agreeing, row) == 1.0
    assert coherence(disagreeing, row) == pytest.approx(1.0 * 0.5 * 1.0)
    assert coherence("Le devuelven 13 euros.", row) == 0.0  # no steps


def test_repetition_penalty():
    once = "Restamos 5 en ambos lados: 3x = 20 - 5 = 15. La solución es x = 5."
    twice = once + " " + "restamos 5 en ambos lados: 3x = 20 - 5 = 15."  # 3 sentences, 1 repeated
    assert coherence(once, MATH_ROW) == 1.0
    assert coherence(twice, MATH_ROW) == pytest.approx(1.0 * 1.0 * (1 - 1 / 3))
    label = "El sentimiento del texto es positivo."
    row = {"task": "sentiment", "answer": "positivo"}
    assert coherence(label, row) == 1.0
    assert coherence(f"{label} {label}", row) == pytest.approx(1 - 1 / 2)
    assert coherence("Hola. Hola. Adiós.", {"task": ""}) == pytest.approx(1 - 1 / 3)


def test_sentiment_coherence_needs_exactly_one_label():
    row = {"task": "sentiment", "answer": "neutro"}
    assert coherence("Es neutro.", row) == 1.0
    assert coherence("Es neutro o negativo.", row) == 0.0
    assert coherence("No lo sé.", row) == 0.0


@pytest.mark.parametrize("prediction, expected", [
    ("La capital de Francia es París. Es una ciudad grande.", 1.0),
    ("La capital de Francia es París. La capital de España es Madrid.", 0.5),  # several, no contradiction
    ("La capital de Francia es París. La capital de Francia es Lima.", 0.0),  # contradiction
    ("La capital de México es Ciudad de México.", 1.0),  # one entity, not also "México"
    ("No lo sé.", 0.0),
])
def test_qa_coherence(prediction, expected):
    assert coherence(prediction, QA_ROW, CAPITALS) == expected


def test_qa_coherence_default_vocabulary_is_the_answer():
    assert coherence("La capital de Francia es París.", QA_ROW) == 1.0
    assert coherence("La capital de Francia es Lyon.", QA_ROW) == 0.0


# ----------------------------------------------------------------------------- coverage
def test_coverage_with_concepts_ignores_case_and_accents():
    # 3 of the 4 concepts: "paris" (accent dropped), "FRANCIA", "capital"; "político" is missing.
    assert coverage("la CAPITAL de FRANCIA es paris", QA_ROW) == pytest.approx(3 / 4)
    assert coverage("x = 5, restamos y dividimos", MATH_ROW) == 1.0
    assert coverage("x = -5, restamos", MATH_ROW) == pytest.approx(1 / 3)  # "x = -5" is not "x = 5"


def test_coverage_without_concepts_uses_reference_content_words():
    row = {"task": "", "concepts": [], "response": "El tren sale para Sevilla desde la estación central."}
    # content words (>= 4 letters, not stopwords): tren, sale, sevilla, estacion, central
    assert coverage("El TREN sale de la estacion", row) == pytest.approx(3 / 5)
    assert coverage("", row) == 0.0


@pytest.mark.parametrize("concepts", [[], None, [""]])
def test_coverage_of_an_answer_only_reference_is_not_free(concepts):
    """An empty (or absent) concept list falls back to the reference: its numbers count as content, so a
    wrong answer does not score 1.0 (it did when only words of >= 4 letters counted)."""
    row = {"task": "math", "response": "x = -5", **({"concepts": concepts} if concepts is not None else {})}
    assert coverage("x = 3", row) == 0.0
    assert coverage("La solución es x = -5.", row) == 1.0
    assert coverage("anything", {"task": "math", "concepts": [], "response": ""}) == 1.0


# ----------------------------------------------------------------------------- corpus scores
def _lcs_f1(prediction: list[str], reference: list[str]) -> float:
    table = [[0] * (len(reference) + 1) for _ in range(len(prediction) + 1)]
    for i, p in enumerate(prediction):
        for j, r in enumerate(reference):
            table[i + 1][j + 1] = table[i][j] + 1 if p == r else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def test_rouge_tokenizer_keeps_spanish_letters():
    tokens = SpanishTokenizer().tokenize("La ECUACIÓN del pingüino, año 5.")
    assert tokens == ["la", "ecuación", "del", "pingüino", "año", "5"]


def test_corpus_rouge_l_matches_plain_lcs():
    predictions = ["la ecuación es fácil", "el niño come", "ecuación"]
    references = ["la ecuación", "el niño no come pan", "ecuacion"]  # the last differs only by an accent
    expected = sum(_lcs_f1(p.split(), r.split()) for p, r in zip(predictions, references)) / len(predictions)
    assert corpus_rouge_l(predictions, references) == pytest.approx(expected)
    assert corpus_rouge_l(["ecuación"], ["ecuacion"]) == 0.0


def test_corpus_chrf_range_and_errors():
    assert corpus_chrf(["La capital es París."], ["La capital es París."]) == pytest.approx(1.0)
    partial = corpus_chrf(["La capital es Lima."], ["La capital es París."])
    assert 0.0 < partial < 1.0
    with pytest.raises(ValueError, match="predictions"):
        corpus_chrf(["a"], [])
    with pytest.raises(ValueError, match="at least one"):
        corpus_rouge_l([], [])


# ----------------------------------------------------------------------------- aggregation
def test_aggregate_structure_and_means():
    rows = [
        {"task": "math", "subset": "equation", "accuracy": 1.0, "coherence": 0.5, "coverage": 1.0, "length": 10},
        {"task": "math", "subset": "word_problem", "accuracy": 0.0, "coherence": 1.0, "coverage": 0.5, "length": 4},
        {"task": "qa", "subset": "seen_fact", "accuracy": 1.0, "coherence": 0.0, "coverage": 0.0, "length": 7},
        {"task": "", "subset": "", "accuracy": 0.0, "coherence": 1.0, "coverage": 1.0, "length": 1, "id": 99},
    ]
    report = aggregate(rows)
    assert set(report) == {"overall", "per_task", "per_subset"}
    assert report["overall"]["count"] == 4
    assert report["overall"]["accuracy"] == pytest.approx((1.0 + 0.0 + 1.0 + 0.0) / 4)
    assert report["overall"]["length"] == pytest.approx((10 + 4 + 7 + 1) / 4)
    assert "id" not in report["overall"]  # only the metric fields are averaged
    assert list(report["per_task"]) == ["math", "other", "qa"]
    assert report["per_task"]["math"]["coherence"] == pytest.approx((0.5 + 1.0) / 2)
    assert report["per_task"]["math"]["count"] == 2
    assert report["per_subset"]["seen_fact"] == {"accuracy": 1.0, "coherence": 0.0, "coverage": 0.0, "length": 7.0,
                                                 "count": 1}


# ----------------------------------------------------------------------------- properties
@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_number_parsers_never_raise(text):
    value = parse_number(text)
    assert value is None or isinstance(value, Fraction)
    for task in ("math", "sentiment", "qa", ""):
        answer = final_answer(text, task)
        assert answer is None or isinstance(answer, str)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, ANY_TEXT)
def test_equation_steps_never_raise(instruction, prediction):
    for step in equation_steps(instruction, prediction):
        assert step.kind in ("equation", "arithmetic", "unparsed")
        assert step.valid in (True, False, None)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, ROWS, st.one_of(st.none(), st.lists(ANY_TEXT, max_size=5)))
def test_row_scores_stay_in_unit_interval(prediction, row, vocab):
    scores = score_row(prediction, row, vocab)
    for key in ("accuracy", "coherence", "coverage"):
        assert 0.0 <= scores[key] <= 1.0
    assert 0.0 <= coherence(prediction, row, vocab) <= 1.0
    assert 0.0 <= coverage(prediction, row) <= 1.0
