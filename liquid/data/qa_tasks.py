"""Generator for the `qa` task: explanatory answers about capitals (facts in `liquid.data.facts`).

Response: ``"La capital de {país} es {capital}. Es importante porque {razón}."``

Held-out design:
- ``unseen_fact``: about 10% of the countries never appear in train; their rows make up
  `UNSEEN_SHARE` of the validation and test qa rows.
- ``seen_fact``: the other countries, asked in phrasings never used in train for that country:
  `GLOBAL_TEST_PHRASINGS` are test-only for every country, `GLOBAL_VALIDATION_PHRASINGS` are
  validation-only, and each country additionally holds out its own test and validation phrasings.
"""

from __future__ import annotations

import random
from typing import Mapping, Sequence

from liquid.data.facts import CAPITALS, REASONS, CapitalFact
from liquid.data.loading import Example

TASK = "qa"
SEEN_SUBSET = "seen_fact"
UNSEEN_SUBSET = "unseen_fact"
UNSEEN_COUNTRY_FRACTION = 0.1
UNSEEN_SHARE = 0.25

PHRASINGS = (
    "¿Cuál es la capital {de} y por qué es importante?",
    "¿Qué ciudad es la capital {de}?",
    "Dime la capital {de} y explica su importancia.",
    "Háblame de la capital {de}.",
    "¿Cuál es la capital {de}?",
    "Explica cuál es la capital {de} y por qué importa.",
    "¿Sabes cuál es la capital {de}?",
    "Indica la capital {de} y su importancia.",
    "Nombra la capital {de} y explica por qué es importante.",
    "Quiero saber cuál es la capital {de}.",
    "¿Cuál es la ciudad capital {de}?",
    "Responde: ¿cuál es la capital {de}?",
    "Explícame qué ciudad es la capital {de} y por qué es relevante.",
    "Pregunta de geografía: ¿cuál es la capital {de}?",
    "¿Me dices la capital {de}?",
    "Escribe la capital {de} y por qué es importante.",
    "¿Cómo se llama la capital {de}?",
    "Menciona la capital {de} y explica su papel.",
)
GLOBAL_TEST_PHRASINGS = (16, 17)
GLOBAL_VALIDATION_PHRASINGS = (15,)
PER_COUNTRY_TEST_PHRASINGS = 2
PER_COUNTRY_VALIDATION_PHRASINGS = 2
UNSEEN_TEST_PHRASINGS = 9  # per unseen country; the next ones go to validation
RESPONSE = "La capital {de} es {capital}. Es importante porque {reason}."


def capital_example(fact: CapitalFact, phrasing: int, subset: str) -> Example:
    """One qa row for `fact` asked with phrasing number `phrasing`."""
    reason = REASONS[fact.reason]
    instruction = PHRASINGS[phrasing].format(de=fact.de)
    response = RESPONSE.format(de=fact.de, capital=fact.capital, reason=reason.text)
    concepts = list(dict.fromkeys([fact.capital, fact.country, "capital", *reason.concepts]))  # "Túnez" once
    return Example(instruction, response, TASK, fact.capital, concepts, subset)


def _take(rng: random.Random, pool: Sequence[tuple[CapitalFact, int]], n: int, split: str, what: str
          ) -> list[tuple[CapitalFact, int]]:
    if n > len(pool):
        raise ValueError(f"qa {split}: need {n} {what} rows but only {len(pool)} distinct questions exist")
    return rng.sample(list(pool), n)


def unseen_countries(rng: random.Random) -> list[CapitalFact]:
    """The countries held out of training (drawn with `rng`, in the order of `CAPITALS`)."""
    chosen = set(rng.sample(range(len(CAPITALS)), round(UNSEEN_COUNTRY_FRACTION * len(CAPITALS))))
    return [fact for index, fact in enumerate(CAPITALS) if index in chosen]


def qa_examples(rng: random.Random, counts: Mapping[str, int]) -> dict[str, list[Example]]:
    """Assign (country, phrasing) questions to splits, then sample each split from its own pool."""
    unseen = unseen_countries(rng)
    global_held = set(GLOBAL_TEST_PHRASINGS) | set(GLOBAL_VALIDATION_PHRASINGS)
    pools: dict[str, list[tuple[CapitalFact, int]]] = {"train": [], "validation": [], "test": []}
    unseen_pools: dict[str, list[tuple[CapitalFact, int]]] = {"validation": [], "test": []}
    for fact in CAPITALS:
        if fact in unseen:
            order = rng.sample(range(len(PHRASINGS)), len(PHRASINGS))
            unseen_pools["test"] += [(fact, p) for p in order[:UNSEEN_TEST_PHRASINGS]]
            unseen_pools["validation"] += [(fact, p) for p in order[UNSEEN_TEST_PHRASINGS:]]
            continue
        free = [p for p in range(len(PHRASINGS)) if p not in global_held]
        rng.shuffle(free)
        own_test = free[:PER_COUNTRY_TEST_PHRASINGS]
        own_val = free[PER_COUNTRY_TEST_PHRASINGS:PER_COUNTRY_TEST_PHRASINGS + PER_COUNTRY_VALIDATION_PHRASINGS]
        pools["test"] += [(fact, p) for p in (*GLOBAL_TEST_PHRASINGS, *own_test)]
        pools["validation"] += [(fact, p) for p in (*GLOBAL_VALIDATION_PHRASINGS, *own_val)]
        pools["train"] += [(fact, p) for p in free[len(own_test) + len(own_val):]]

    out: dict[str, list[Example]] = {}
    for split in ("test", "validation"):
        n_unseen = round(UNSEEN_SHARE * counts[split])
        rows = [capital_example(f, p, UNSEEN_SUBSET)
                for f, p in _take(rng, unseen_pools[split], n_unseen, split, UNSEEN_SUBSET)]
        rows += [capital_example(f, p, SEEN_SUBSET)
                 for f, p in _take(rng, pools[split], counts[split] - n_unseen, split, SEEN_SUBSET)]
        rng.shuffle(rows)
        out[split] = rows
    train_pool = pools["train"]
    rng.shuffle(train_pool)
    train = [capital_example(*train_pool[i % len(train_pool)], SEEN_SUBSET) for i in range(counts["train"])]
    rng.shuffle(train)
    out["train"] = train
    return out
