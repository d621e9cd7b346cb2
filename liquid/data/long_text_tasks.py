"""Generator for the long-input subset: the sentiment of a text of several hundred tokens.

Every other instruction of the shipped data is under 40 tokens, inside the encoder's local-attention window,
so without this subset local attention and the dilated receptive field are never tested beyond one window.
A long text is `MIN_SENTENCES`-`MAX_SENTENCES` factual sentences (the sentiment task's neutral sentences,
"El tren sale a las ocho.") and, for a polar label, one opinion sentence at a random position:

    label(text) = label(the opinion sentence)   if the text has one,   neutro otherwise

so the answer depends on one sentence anywhere in 200-450 tokens, and the grammar inside that sentence
(negation, "pero") is the short task's. The rows use the short task's instruction phrasings, response
("El sentimiento del texto es positivo.") and metric, and its held-out assignment: the opinion sentence
holds a test (subject, adjective) pair and the fillers are test-split neutral sentences, so no sentence
of a long text is a training sentence.

The shipped subset is test-only (`data/test_long.jsonl`): by default training and validation never contain a
long text, so it measures how far what was learnt on one-sentence inputs carries to inputs ten times longer.
``split="train"`` builds the same kind of text from training sentences only (``python -m liquid.data.build
--long_train_rows N`` adds N of them to train.jsonl), so a run can learn long inputs without seeing a test
sentence.
"""

from __future__ import annotations

import random

from liquid.data.loading import Example
from liquid.data.sentiment_tasks import (INSTRUCTION_PHRASINGS, NEUTRAL, RESPONSE, TASK, draw_polar, label_counts,
                                         split_assignment)

SUBSET = "long_text"
SPLIT = "test"  # the held-out sentences the shipped texts are made of
MIN_SENTENCES = 24
MAX_SENTENCES = 44


def long_text_examples(seed: int, count: int, split: str = SPLIT) -> list[Example]:
    """`count` long texts (labels 40/40/20 like the short task) made of `split`'s sentences only,
    deterministic for (`seed`, `split`)."""
    assignment, neutral_by_split = split_assignment(random.Random(f"{seed}:{TASK}"))  # the short task's split
    if split not in neutral_by_split:
        raise ValueError(f"split must be one of {sorted(neutral_by_split)}, got {split!r}")
    fillers = neutral_by_split[split]
    if len(fillers) < MAX_SENTENCES:
        raise ValueError(f"only {len(fillers)} neutral {split} sentences; a long text needs {MAX_SENTENCES}")
    rng = random.Random(f"{seed}:{SUBSET}" if split == SPLIT else f"{seed}:{SUBSET}:{split}")
    labels = label_counts(count)
    rng.shuffle(labels)
    rows, texts = [], set()
    for label in labels:
        sentences = [s.text for s in rng.sample(fillers, rng.randint(MIN_SENTENCES, MAX_SENTENCES))]
        if label != NEUTRAL:
            sentences.insert(rng.randint(0, len(sentences)), draw_polar(rng, label, split, assignment).text)
        text = " ".join(sentences)
        if text in texts:
            raise ValueError("two long texts came out identical; lower `count` or widen the length range")
        texts.add(text)
        instruction = rng.choice(INSTRUCTION_PHRASINGS).format(text=text)
        rows.append(Example(instruction, RESPONSE.format(label=label), TASK, label, [label], SUBSET))
    return rows
