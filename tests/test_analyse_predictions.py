"""scripts/analyse_predictions.py: the ablation's row sample and the copy/arithmetic split of wrong equations."""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import analyse_predictions as ap  # noqa: E402

from liquid.ablate import test_rows as ablation_rows  # noqa: E402  (aliased: pytest would collect test_*)

EQ = "Restamos 15 en ambos lados: -6x = 51 - 15 = 51 - 10 - 5 = 41 - 5 = 36. Dividimos ..."


def _row(prediction, response=EQ, accuracy=0.0, subset="equation", task="math"):
    return {"prediction": prediction, "response": response, "accuracy": accuracy, "subset": subset, "task": task}


def test_copy_errors_are_wrong_first_steps_and_the_rest_are_later_errors():
    rows = [
        _row(EQ, accuracy=1.0),                                                   # right
        _row(EQ.replace("41 - 5 = 36", "41 - 5 = 40")),                          # wrong later: arithmetic
        _row(EQ.replace("-6x = 51 - 15", "-6x = 15 - 51")),                      # wrong copy
        _row(EQ.replace("Restamos 15", "Restamos 51")),                          # wrong copy
        _row("La capital de X es Y.", response="La capital de X es Z.", subset="seen_fact", task="qa"),
    ]
    assert ap.copy_error_counts(rows) == {"equations": 4, "wrong": 3, "copy_errors": 2, "later_errors": 1}


def test_coefficient_multiples_counts_wrong_first_results_that_a_divides():
    """Only wrong equations whose first step ends on a wrong R count; R = 42 (a multiple of 6) and 37 (not), in
    both the written and the omitted ``ax =`` form; right answers, right first steps and other subsets are skipped."""
    right = "Restamos 15 en ambos lados: -6x = 51 - 15 = 36. Dividimos ambos lados entre -6: x = 36 / (-6) = -6."
    omitted = right.replace("-6x = ", "")
    rows = [
        _row(right, right, accuracy=1.0),                                            # right
        _row(right.replace("= 36. ", "= 42. "), right),                              # multiple of 6
        _row(omitted.replace("= 36. ", "= 37. "), omitted),                          # not a multiple
        _row(right.replace("x = 36 / (-6) = -6", "x = 36 / (-6) = -5"), right),      # first step right
        _row(right.replace("= 36. ", "= 42. "), right, subset="word_problem"),       # not an equation
    ]
    wrong, multiples, chance = ap.coefficient_multiples(rows)
    assert (wrong, multiples) == (2, 1)
    # within 20 of 36, excluding 36 itself: 6 of the 40 integers are multiples of 6 (18..30 and 42..54 -> 3 + 3)
    assert abs(chance - 2 * 6 / 40) < 1e-9


def test_fraction_answers_count_equations_that_state_a_fraction():
    rows = [
        _row("... x = 13 / 2. La solución es x = 13/2."),                               # a fraction
        _row("... x = 21 / 3. La solución es x = 21/3.", accuracy=1.0),                 # = 7: scored right
        _row("... x = -(84 / 7) = -((70 + 14) / 7) = -12. La solución es x = -12."),   # a division, integer answer
        _row("... La solución es x = 13/2.", subset="word_problem"),                     # not an equation
        _row("... x = 13 / 2."),                                                         # no solution sentence
    ]
    assert ap.fraction_answers(rows) == (2, 1)


def test_the_sample_is_the_one_the_ablation_scores():
    data = ROOT / "data" / "test.jsonl"
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    args = argparse.Namespace(test_file=str(data), dataset=None, dataset_config=None, data_dir=str(ROOT / "data"),
                              instruction_column="instruction", response_column="response")
    ablation = ablation_rows(args, 600)
    mine = ap.ablation_sample(rows, 600)
    assert [r["instruction"] for r in mine] == [r["instruction"] for r in ablation]
    assert len(mine) == 600 and ap.ablation_sample(rows, 0) == rows


def test_task_accuracy_averages_per_task_and_overall():
    rows = [_row("", accuracy=1.0), _row("", accuracy=0.0), _row("", accuracy=1.0, task="qa")]
    assert ap.task_accuracy(rows) == {"math": 0.5, "qa": 1.0, "overall": 2 / 3}


WORD = "El 25% es la cuarta parte: 100 / 4 = (80 + 20) / 4 = 20 + 5 = 25. El 25% de 100 es 25."


def test_the_first_wrong_link_is_the_left_side_of_the_link_that_leaves_the_reference():
    assert ap.first_wrong_link(EQ, EQ) is None
    assert ap.first_wrong_link(EQ.replace("41 - 5 = 36", "41 - 5 = 40"), EQ) == "N - d ="
    assert ap.first_wrong_link(EQ.replace("= 41 - 5", "= 31 - 5"), EQ) == "N - N - d ="  # 51 - 10 - 5 = 31
    assert ap.first_wrong_link(WORD.replace("(80 + 20) / 4 = 20 + 5 = 25", "50"), WORD) == "N / d ="
    assert ap.first_wrong_link(EQ.replace("Restamos 15", "Sumamos 15"), EQ) == "(text)"
    rows = [_row(EQ, accuracy=1.0), _row(EQ.replace("41 - 5 = 36", "41 - 5 = 46")),
            _row(WORD.replace("= 25. El", "= 35. El"), response=WORD, subset="word_problem"),
            _row("La capital de X es Y.", response="La capital de X es Z.", subset="seen_fact", task="qa")]
    assert ap.first_wrong_links(rows) == {("equation", "N - d ="): 1, ("word_problem", "N + d ="): 1}


def test_the_report_prints_the_first_wrong_links(tmp_path, capsys):
    path = tmp_path / "predictions.jsonl"
    rows = [_row(EQ.replace("41 - 5 = 36", "41 - 5 = 40")), _row(EQ.replace("41 - 5 = 36", "41 - 5 = 38"))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ap.main([str(path), "--ablation_rows", "0"])
    out = capsys.readouterr().out
    assert "first wrong link of the 2 wrong math answers" in out and "2  equation      N - d =" in out


def test_samples_draw_the_planned_number_of_right_and_wrong_rows_per_task():
    rows = [{"task": task, "accuracy": float(i % 2), "instruction": f"{task} {i}", "prediction": "p"}
            for task in ("math", "qa", "sentiment") for i in range(10)]
    chosen = ap.sample_rows(rows)
    plan = [(row["task"], right) for row, right in chosen]
    assert plan == [("sentiment", True)] * 2 + [("qa", True)] * 2 + [("qa", False)] + [("math", True)] * 2 + \
        [("math", False)] * 3
    assert all((row["accuracy"] == 1.0) == right for row, right in chosen)
    assert chosen == ap.sample_rows(rows)  # seeded: the same rows every time


def test_word_problem_errors_count_wrong_rows_per_kind():
    def word(response, accuracy):
        return _row(response, response=response, accuracy=accuracy, subset="word_problem")
    rows = [
        word("La velocidad es la distancia dividida entre el tiempo: 760 / 8 = 95. ...", 0.0),
        word("La velocidad es la distancia dividida entre el tiempo: 640 / 8 = 80. ...", 1.0),
        word("El 25% es la cuarta parte: 100 / 4 = 25. ...", 0.0),
        word("Calculamos el 10% de 470: 470 / 10 = 47. ...", 1.0),
        word("El tiempo es la distancia dividida entre la velocidad: 225 / 75 = 3. ...", 1.0),
        _row(EQ, accuracy=0.0),  # an equation: not counted
    ]
    assert ap.word_problem_errors(rows) == {"percent": (1, 2), "speed": (1, 2), "time": (0, 1)}


def test_wrong_word_problems_are_counted_by_the_operation_of_their_first_wrong_link():
    speed = "La velocidad es la distancia dividida entre el tiempo: 640 / 8 = 80. La velocidad media es 80 km/h."
    total = ("Multiplicamos la cantidad por el precio: 9 * 15 = 9 * 10 + 9 * 5 = 90 + 45 = 90 + 40 + 5 = 130 + 5 = "
             "135. El total es 135 euros.")
    rows = [_row(speed.replace("= 80.", "= (600 + 40) / 8 = 100 + 10 = 110.").replace("es 80", "es 110"),
                 response=speed, subset="word_problem"),
            _row(total.replace("130 + 5 = 135", "120 + 5 = 125").replace("es 135", "es 125"), response=total,
                 subset="word_problem"),
            _row(WORD.replace("20 + 5 = 25. El 25% de 100 es 25", "20 + 6 = 26. El 25% de 100 es 26"), response=WORD,
                 subset="word_problem"),
            _row(total, response=total, accuracy=1.0, subset="word_problem"),
            _row(EQ.replace("41 - 5 = 36", "41 - 5 = 46"))]
    assert ap.word_problem_operations(rows) == {"division": 1, "sum": 1, "division split": 1}
    assert [ap.link_operation(t) for t in ("N - d =", "-(N - d) =", "N * d + d * d =", "-(N / d) =", "(text)")] == \
        ["subtraction", "subtraction", "product", "division", "text"]
