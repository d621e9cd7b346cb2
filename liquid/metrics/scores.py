"""Per-row scores (accuracy, coherence, coverage), corpus scores (chrF, ROUGE-L) and aggregation.

The formulas are written out in the package docstring (``liquid/metrics/__init__.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction

from rouge_score import rouge_scorer
from sacrebleu.metrics import CHRF

from liquid.metrics.parsing import (
    LinearForm,
    SolutionSet,
    contains_span,
    find_chain,
    is_reduced_literal,
    last_number,
    last_number_literal,
    last_x_statement,
    last_x_value,
    normalize,
    parse_number,
    question_equation,
    solve,
    split_sentences,
)


TASK_MATH = "math"
TASK_QA = "qa"
TASK_SENTIMENT = "sentiment"

# Surface forms (normalised) of each sentiment label.
SENTIMENT_LABELS: dict[str, str] = {
    "positivo": "positivo",
    "positiva": "positivo",
    "negativo": "negativo",
    "negativa": "negativo",
    "neutro": "neutro",
    "neutra": "neutro",
    "neutral": "neutro",
}

AGREEMENT_MISMATCH = 0.5  # agree factor when the final answer differs from the last step's value
SEVERAL_ENTITIES_CONSISTENT = 0.5  # qa factor for several entities without contradiction
CHRF_SCALE = 100.0  # sacrebleu reports chrF in [0, 100]
MIN_CONTENT_WORD_CHARS = 4  # content words of a reference (coverage without concepts)
COPULA = " es "  # "<sujeto> es <predicado>": the sentence form checked for qa contradictions

# Short Spanish stopword list (normalised: no accents), only words of >= MIN_CONTENT_WORD_CHARS letters matter.
STOPWORDS = frozenset(
    """
    ante bajo cada como con contra cual cuales cuando desde donde durante ella ellas ellos entre era eran
    esta estaba estan estas este esto estos esos esas fue fueron hace hacen hasta mas menos misma mismo
    muy nada para pero poco porque puede pueden quien sean segun ser sido siendo sino sobre solo son
    tambien tiene tienen todo toda todos todas tras usted ustedes otro otra otros otras aqui alli
    """.split()
)

AGGREGATED_KEYS = ("accuracy", "coherence", "coverage", "length")
UNLABELLED_GROUP = "other"  # aggregate's group name for rows without a task / subset

STEP_MARKS = {True: "✓", False: "✗", None: "?"}
# "tabla del 8: 8, 16, 24" at the end of a sentence: a step that lists a divisor's multiples (`--word_division table`)
TABLE_STEP_RE = re.compile(r"tabla del (\d+):\s*(\d+(?:,\s*\d+)*)$", re.IGNORECASE)


@dataclass(frozen=True)
class StepCheck:
    """One sentence of a prediction that contains '='.

    kind: "equation" (some link has x), "arithmetic" (no link has x), "table" (a sentence without '=' that ends in
    ``tabla del d: m_1, ..., m_k``: valid iff m_i = i * d for every i) or "unparsed" (no chain of two parseable
    expressions, or an equation link in a problem without a question equation).
    valid: all links hold (``None`` when unparsed). value: the value the step states (solution of its
    last equation link, else its last arithmetic value), ``None`` when it states no single value.
    """

    text: str
    kind: str
    valid: bool | None
    value: Fraction | None = None


def _text(row: Mapping, key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


def asserted_labels(prediction: str) -> list[str]:
    """Distinct sentiment labels mentioned in ``prediction`` (any case, accents, gender), sorted."""
    return sorted({SENTIMENT_LABELS[word] for word in normalize(prediction).split() if word in SENTIMENT_LABELS})


def final_answer(prediction: str, task: str) -> str | None:
    """The answer a prediction commits to, or ``None``.

    math: the value of the last "x = v" statement, else the last number in the text, as ``str(Fraction)``
    ("5", "-3/2"); sentiment: the label when exactly one distinct label is asserted; other tasks: ``None``.
    """
    if task == TASK_MATH:
        value = last_x_value(prediction)
        value = last_number(prediction) if value is None else value
        return None if value is None else str(value)
    if task == TASK_SENTIMENT:
        labels = asserted_labels(prediction)
        return labels[0] if len(labels) == 1 else None
    return None


def final_math_text(prediction: str) -> str | None:
    """The math final answer as written: the last expression of the last "x = v" statement, else the last number
    literal ("x = 15 / 3 = 5." -> "5", "x = 21/3" -> "21/3", "son 45 euros" -> "45"); ``None`` when there is none."""
    statement = last_x_statement(prediction)
    return last_number_literal(prediction) if statement is None else statement[1]


def accuracy(prediction: str, row: Mapping) -> float:
    """1.0 when the prediction states the row's answer, else 0.0 (see the package docstring)."""
    task = _text(row, "task")
    answer = _text(row, "answer")
    if task == TASK_MATH:
        predicted = final_answer(prediction, task)
        expected = parse_number(answer)
        right_value = predicted is not None and expected is not None and parse_number(predicted) == expected
        return float(right_value and is_reduced_literal(final_math_text(prediction) or ""))
    if task == TASK_SENTIMENT:
        predicted = final_answer(prediction, task)
        return float(predicted is not None and predicted == SENTIMENT_LABELS.get(normalize(answer)))
    if task == TASK_QA and normalize(answer):
        return float(contains_span(normalize(prediction), answer))
    target = answer or _text(row, "response")
    return float(normalize(prediction) == normalize(target))


def _link_valid(left: LinearForm, right: LinearForm, target: SolutionSet) -> bool:
    if left.has_x or right.has_x:
        return solve(left, right) == target
    return left.const == right.const


def _check_step(sentence: str, chain: list[LinearForm], target: SolutionSet | None) -> StepCheck:
    links = list(zip(chain, chain[1:]))
    equation_links = [(left, right) for left, right in links if left.has_x or right.has_x]
    if not links or (equation_links and target is None):
        return StepCheck(sentence, "unparsed", None)
    valid = all(_link_valid(left, right, target) for left, right in links)
    if not equation_links:
        return StepCheck(sentence, "arithmetic", valid, chain[-1].const)
    solution = solve(*equation_links[-1])
    return StepCheck(sentence, "equation", valid, solution.value)


def table_step(sentence: str) -> StepCheck | None:
    """A sentence ending in ``tabla del d: m_1, ..., m_k`` as a "table" step (valid iff m_i = i * d); else None."""
    match = TABLE_STEP_RE.search(sentence.strip())
    if match is None:
        return None
    divisor, entries = int(match.group(1)), [int(entry) for entry in match.group(2).split(",")]
    valid = all(entry == divisor * index for index, entry in enumerate(entries, start=1))
    return StepCheck(sentence, "table", valid, None)


def equation_steps(instruction: str, prediction: str) -> list[StepCheck]:
    """Check every sentence of ``prediction`` that contains '=' against the instruction's equation, and every
    sentence that lists a divisor's table (`table_step`).

    In each sentence the chain is searched after the last ':' (when that part still holds an '=').
    """
    question = question_equation(instruction)
    target = solve(*question) if question is not None else None
    steps = []
    for sentence in split_sentences(prediction):
        if "=" not in sentence:
            table = table_step(sentence)
            if table is not None:
                steps.append(table)
            continue
        after_colon = sentence.rsplit(":", 1)[-1]
        chain = find_chain(after_colon if "=" in after_colon else sentence)
        steps.append(_check_step(sentence, chain, target))
    return steps


def repetition_factor(prediction: str) -> float:
    """rep = 1 - repeated / sentences (a sentence is repeated if its normalised form came earlier); 0 if empty."""
    sentences = [normalize(sentence) for sentence in split_sentences(prediction)]
    sentences = [sentence for sentence in sentences if sentence]
    if not sentences:
        return 0.0
    repeated = len(sentences) - len(set(sentences))
    return 1.0 - repeated / len(sentences)


def _math_coherence(prediction: str, instruction: str) -> float:
    steps = equation_steps(instruction, prediction)
    if not steps:
        return 0.0
    valid_share = sum(step.valid is True for step in steps) / len(steps)
    final = parse_number(final_answer(prediction, TASK_MATH) or "")
    agree = 1.0 if final is not None and final == steps[-1].value else AGREEMENT_MISMATCH
    return valid_share * agree


def _mentioned_entities(normalized_text: str, entities: list[str]) -> set[str]:
    """Normalised entities found as whole-word spans; a longer entity hides those inside it."""
    padded = f" {normalized_text} "
    claimed: list[tuple[int, int]] = []
    found = set()
    for entity in sorted(entities, key=len, reverse=True):
        needle = f" {entity} "
        start = padded.find(needle)
        while start >= 0:
            span = (start + 1, start + len(needle) - 1)
            if all(span[1] <= begin or span[0] >= end for begin, end in claimed):
                claimed.append(span)
                found.add(entity)
            start = padded.find(needle, start + 1)
    return found


def _has_contradiction(prediction: str, entities: list[str]) -> bool:
    """Two sentences "S es A" and "S es B" with the same normalised subject S and entities A != B."""
    assigned: dict[str, set[str]] = defaultdict(set)
    for sentence in split_sentences(prediction):
        subject, copula, predicate = f" {normalize(sentence)} ".partition(COPULA)
        if copula and subject.strip():
            assigned[subject.strip()] |= _mentioned_entities(predicate.strip(), entities)
    return any(len(values) > 1 for values in assigned.values())


def _qa_consistency(prediction: str, row: Mapping, entity_vocab: Collection[str] | None) -> float:
    vocabulary = entity_vocab if entity_vocab is not None else [_text(row, "answer")]
    entities = sorted({normalize(str(entity)) for entity in vocabulary} - {""})
    mentioned = _mentioned_entities(normalize(prediction), entities)
    if len(mentioned) <= 1:
        return float(len(mentioned))
    return 0.0 if _has_contradiction(prediction, entities) else SEVERAL_ENTITIES_CONSISTENT


def coherence(prediction: str, row: Mapping, entity_vocab: Collection[str] | None = None) -> float:
    """Coherence in [0, 1] by task (math, sentiment, qa, other), see the package docstring."""
    task = _text(row, "task")
    rep = repetition_factor(prediction)
    if task == TASK_MATH:
        return rep * _math_coherence(prediction, _text(row, "instruction"))
    if task == TASK_SENTIMENT:
        return rep * float(len(asserted_labels(prediction)) == 1)
    if task == TASK_QA:
        return rep * _qa_consistency(prediction, row, entity_vocab)
    return rep


def content_words(text: str) -> list[str]:
    """Normalised numbers, and words of >= MIN_CONTENT_WORD_CHARS characters that are not stopwords, in
    first-occurrence order ("x = -5" -> ["-5"]: an answer-only reference still has something to cover)."""
    words = normalize(text).split()
    kept = (word for word in words
            if any(ch.isdigit() for ch in word) or (len(word) >= MIN_CONTENT_WORD_CHARS and word not in STOPWORDS))
    return list(dict.fromkeys(kept))


def coverage(prediction: str, row: Mapping) -> float:
    """Share of the row's concepts (else the reference's content words) found in the prediction.

    A missing or empty `concepts` list falls back to the reference's content words (numbers included);
    matching is on normalised text as whole-word spans; only an empty reference scores 1.0 (nothing to cover).
    """
    concepts = row.get("concepts")
    targets = [normalize(c) for c in concepts if isinstance(c, str)] if isinstance(concepts, list) else []
    targets = list(dict.fromkeys(target for target in targets if target))
    if not targets:
        targets = content_words(_text(row, "response"))
    if not targets:
        return 1.0
    normalized_prediction = normalize(prediction)
    return sum(contains_span(normalized_prediction, target) for target in targets) / len(targets)


def score_row(prediction: str, row: Mapping, entity_vocab: Collection[str] | None = None) -> dict:
    """Per-row scores: task, subset, accuracy, coherence, coverage and length (whitespace words)."""
    return {
        "task": _text(row, "task"),
        "subset": _text(row, "subset"),
        "accuracy": accuracy(prediction, row),
        "coherence": coherence(prediction, row, entity_vocab),
        "coverage": coverage(prediction, row),
        "length": len(prediction.split()),
    }


class SpanishTokenizer:
    """ROUGE tokenizer: lowercase, split on ``\\W+`` (Unicode letters such as á, é, ñ, ü are kept)."""

    _SPLIT_RE = re.compile(r"\W+")

    def tokenize(self, text: str) -> list[str]:
        return [token for token in self._SPLIT_RE.split(text.lower()) if token]


def _check_corpus(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("corpus scores need at least one prediction")


def corpus_chrf(predictions: list[str], references: list[str]) -> float:
    """sacrebleu corpus chrF (character n-gram F-score, beta = 2), scaled to [0, 1]."""
    _check_corpus(predictions, references)
    return CHRF().corpus_score(list(predictions), [list(references)]).score / CHRF_SCALE


def corpus_rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 (longest common subsequence of tokens) with :class:`SpanishTokenizer`."""
    _check_corpus(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=SpanishTokenizer())
    scores = [
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for prediction, reference in zip(predictions, references)
    ]
    return sum(scores) / len(scores)


def _means(rows: list[dict]) -> dict:
    means = {}
    for key in AGGREGATED_KEYS:
        values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
        if values:
            means[key] = sum(values) / len(values)
    means["count"] = len(rows)
    return means


def _grouped_means(rows: list[dict], key: str) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[_text(row, key) or UNLABELLED_GROUP].append(row)
    return {name: _means(groups[name]) for name in sorted(groups)}


def aggregate(scored_rows: list[dict]) -> dict:
    """Means of the AGGREGATED_KEYS, with ``count``: overall, per task and per subset (sorted keys).

    Rows with an empty task or subset are grouped under ``UNLABELLED_GROUP`` ("other").
    """
    return {
        "overall": _means(scored_rows),
        "per_task": _grouped_means(scored_rows, "task"),
        "per_subset": _grouped_means(scored_rows, "subset"),
    }


def _describe(solution: SolutionSet) -> str:
    if solution.kind == "one":
        return f"x = {solution.value}"
    return "every x" if solution.kind == "all" else "no solution"


def step_report(instruction: str, prediction: str) -> str:
    """Human-readable step check: a header with the question's solution, then one line per step."""
    question = question_equation(instruction)
    if question is None:
        header = "question: no equation in x (word problem): only arithmetic links are checked"
    else:
        header = f"question solution: {_describe(solve(*question))}"
    steps = equation_steps(instruction, prediction)
    lines = [header] + [f"{STEP_MARKS[step.valid]} [{step.kind}] {step.text}" for step in steps]
    if not steps:
        lines.append("(no steps: no sentence contains '=')")
    return "\n".join(lines)
