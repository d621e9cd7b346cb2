"""Evaluation metrics: accuracy, coherence, concept coverage, chrF and ROUGE-L.

All per-row scores lie in [0, 1] and never raise on arbitrary prediction text.

Normalisation. ``normalize(t)``: lowercase; NFD and drop combining marks (á -> a, ñ -> n, ü -> u);
keep tokens that are numbers (a leading '-' is kept unless it follows a word character or ')',
so "x = -3" -> "x -3" but "20 - 5" -> "20 5"; a '.'/',' between digits is kept) or runs of letters and
digits; everything else is a separator; tokens are joined by one space. "A appears in B" always means
`` " " + normalize(A) + " " `` is a substring of `` " " + normalize(B) + " " `` (whole-word span).

Numbers. ``parse_number``: integers, decimals with '.' or ',' (a single separator is decimal:
"12,5" = 12.5 and "1.000" = 1; digit grouping is not supported), fractions "-3/2", x-free expressions,
and "x = v" (the last '='-part that is x-free). Values are exact ``Fraction``s.

Linear expressions. Tokens: numbers, ``x``, ``+ - * /``, parentheses; implicit products ``3x``,
``3(x + 2)``; unary minus (``-x``, ``-(x - 1)``). Each expression evaluates to ``(a, b)`` meaning
``a x + b`` over ``Fraction``; non-linear products (x * x), division by x or by 0, other characters,
or more than ``MAX_EXPRESSION_TOKENS`` tokens make it unparsed.

Question equation. Around the first '=' of the instruction whose sides parse and contain x: the
longest parseable suffix before it and the longest parseable prefix after it. Its solution set S*
of ``L = R`` <=> ``(a_L - a_R) x + (b_L - b_R) = 0`` is one value, all reals, or empty. An instruction
without one is a word problem.

Steps. Sentences end at '.', '!' or '?' followed by whitespace, or at a newline ("12.5" stays one
number). A sentence that contains '=' is a step (others are prose). In it, the text after the last
':' (when that text still holds '=') is searched for the longest chain ``e0 = e1 = ... = ek`` (k >= 1)
of parseable expressions (prose may precede e0 and follow ek). Each link (e_i, e_i+1) is
    arithmetic (neither side has x): valid  <=>  value(e_i) = value(e_i+1)
    equation (x appears):             valid  <=>  solutions(e_i = e_i+1) = S*
A sentence without '=' that ends in ``tabla del d: m_1, ..., m_k`` (a divisor's table, written before
a division) is a step too: valid  <=>  m_i = i * d for every i.
A step is valid iff all its links are. It is "unparsed" (counted as invalid) when no chain is found,
or when it has an equation link in a word problem. The value a step states is the solution of its
last equation link (if unique), else the value of ek for an arithmetic step.

Accuracy (1.0 or 0.0).
    math:      parse_number(final_answer) == parse_number(answer) and the answer is written as one number
               in lowest terms; final_answer is the value of the last "x = v" (v the last x-free
               expression of its '=' run), else the last number. Written form (``final_math_text``:
               that expression or number as written, spaces and prose after it dropped): an integer,
               a decimal or p/q with q >= 2 and gcd(p, q) = 1, optionally signed and in one pair of
               parentheses. "x = 21/3", "x = 21 / 3" (division left undone), "x = -26/4" and
               "x = -(13 / 2)" score 0 even when their value is right.
    sentiment: exactly one distinct label asserted (positivo|negativo|neutro, also -a / neutral,
               any case or accents) and it equals answer.
    qa:        answer appears in the prediction (whole-word span, case- and accent-insensitive).
    other:     normalize(prediction) == normalize(answer if answer else response).

Coherence (in [0, 1]). rep = 1 - repeated / sentences, where a sentence is repeated if its
normalised form occurred earlier in the prediction (rep = 0 for a prediction with no sentence).
    math:      (valid steps / steps) * agree * rep, agree = 1 if the final answer equals the value
               stated by the last step, else 0.5; 0 if there are no steps.
    sentiment: rep * [exactly one distinct label asserted].
    qa:        rep * c; E = entities of the vocabulary (``entity_vocab``, default {answer}) that
               appear in the prediction, a longer entity hiding the shorter ones inside it;
               c = 1 if |E| = 1, 0 if |E| = 0; if |E| >= 2: c = 0 when two sentences
               "S es A" / "S es B" (same normalised subject S, text before the first " es ") name
               different entities A != B (a contradiction), else c = 0.5.
    other:     rep.
A wrong answer reached through valid steps and a right answer reached through invalid steps get
different coherence (the test suite checks this).

Coverage (in [0, 1]). |{c in C : c appears in prediction}| / |C|, C = the row's concepts, or when
there are none the reference response's content words (normalised words of >= 4 characters that
are not in a short Spanish stopword list); 1.0 when C is empty.

Corpus scores. chrF: ``sacrebleu.metrics.CHRF()`` corpus score / 100. ROUGE-L: mean over rows of the
``rouge_score`` ROUGE-L F1 with ``SpanishTokenizer`` (lowercase, split on ``\\W+``: á é í ó ú ñ ü are
kept, the default tokenizer would drop them).

Aggregation. ``aggregate`` averages accuracy, coherence, coverage and length over the scored rows:
``overall``, ``per_task[task]`` and ``per_subset[subset]`` (an empty task or subset is grouped as
"other"), each with ``count``.
"""

from liquid.metrics.parsing import (
    LinearForm,
    SolutionSet,
    is_reduced_literal,
    normalize,
    parse_linear,
    parse_number,
    question_equation,
)
from liquid.metrics.scores import (
    SpanishTokenizer,
    StepCheck,
    accuracy,
    aggregate,
    coherence,
    corpus_chrf,
    corpus_rouge_l,
    coverage,
    equation_steps,
    final_answer,
    final_math_text,
    score_row,
    step_report,
)

__all__ = [
    "LinearForm",
    "SolutionSet",
    "SpanishTokenizer",
    "StepCheck",
    "accuracy",
    "aggregate",
    "coherence",
    "corpus_chrf",
    "corpus_rouge_l",
    "coverage",
    "equation_steps",
    "final_answer",
    "final_math_text",
    "is_reduced_literal",
    "normalize",
    "parse_linear",
    "parse_number",
    "question_equation",
    "score_row",
    "step_report",
]
