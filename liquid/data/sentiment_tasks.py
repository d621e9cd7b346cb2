"""Generator for the `sentiment` task: compositional Spanish sentences labelled positivo/negativo/neutro.

Label rules (the grammar the data teaches):
- ``S verbo [intensificador] adj``            -> polarity of adj
- ``S no verbo [intensificador] adj``         -> opposite polarity ("no fue malo" -> positivo)
- ``S verbo adjA[,] pero [intensificador] adjB`` -> polarity of adjB ("bueno pero caro" -> negativo)
- factual templates ("El tren sale a las ocho.") -> neutro

Held-out design: every (subject, adjective) pair is assigned to train, validation or test
(`HELD_PAIR_FRACTION` held out, half each). A validation/test sentence contains at least one pair of
its own split and no pair of the other held-out split; train sentences use train pairs only, so each
word is seen in training but the combination is new (subset ``novel_combination``). Neutral sentences
(template x fillers) are partitioned the same way. Labels are balanced 40/40/20.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Mapping

from liquid.data.loading import Example

TASK = "sentiment"
TRAIN_SUBSET = "sentiment"
HELD_OUT_SUBSET = "novel_combination"
HELD_OUT_ORDER = ("test", "validation", "train")
POSITIVE, NEGATIVE, NEUTRAL = "positivo", "negativo", "neutro"
LABEL_SHARES = ((POSITIVE, 0.4), (NEGATIVE, 0.4))  # neutro takes the rest
HELD_PAIR_FRACTION = 0.12
HELD_NEUTRAL_FRACTION = 0.24
INTENSIFIER_PROBABILITY = 0.35
# sentence shapes and their probabilities for a polar label
PLAIN, NEGATED, CONTRAST = "plain", "negated", "contrast"
SHAPE_WEIGHTS = ((PLAIN, 0.5), (NEGATED, 0.2), (CONTRAST, 0.3))
MAX_TRIES_PER_ROW = 20000

# (text, feminine)
SUBJECTS = (
    ("La película", True), ("El restaurante", False), ("El servicio", False), ("El hotel", False),
    ("La comida", True), ("El libro", False), ("El viaje", False), ("La habitación", True),
    ("El concierto", False), ("La obra de teatro", True), ("El museo", False), ("La cena", True),
    ("El personal", False), ("La atención", True), ("El producto", False), ("El móvil", False),
    ("La aplicación", True), ("El curso", False), ("La clase", True), ("El profesor", False),
    ("El partido", False), ("La serie", True), ("El parque", False), ("La playa", True),
    ("El vuelo", False), ("La tienda", True), ("El café", False), ("La música", True),
    ("El espectáculo", False), ("La exposición", True), ("El coche", False), ("La novela", True),
)
POSITIVE_ADJECTIVES = (
    "bueno", "excelente", "estupendo", "maravilloso", "fantástico", "genial", "agradable", "magnífico",
    "espléndido", "extraordinario", "impresionante", "encantador", "perfecto", "fabuloso", "brillante",
    "sobresaliente", "admirable", "recomendable", "satisfactorio", "formidable", "bonito", "precioso",
    "barato", "cómodo", "divertido",
)
NEGATIVE_ADJECTIVES = (
    "malo", "terrible", "horrible", "pésimo", "desastroso", "decepcionante", "aburrido", "caro", "lento",
    "sucio", "incómodo", "desagradable", "mediocre", "lamentable", "espantoso", "deficiente",
    "insoportable", "ruidoso", "feo", "penoso", "nefasto", "caótico", "flojo", "horroroso", "frustrante",
)
# direct antonyms make odd contrasts ("bonito pero feo"); they are never joined by "pero"
ANTONYMS = frozenset({("bueno", "malo"), ("bonito", "feo"), ("barato", "caro"), ("cómodo", "incómodo"),
                      ("divertido", "aburrido"), ("agradable", "desagradable"), ("precioso", "feo")})
VERBS = ("es", "fue", "era", "ha sido", "resultó")
INTENSIFIERS = ("muy", "realmente", "bastante", "increíblemente", "sumamente")
CONTRAST_JOINS = (" pero ", ", pero ")

HOURS = ("las siete", "las ocho", "las nueve", "las diez", "las once", "las doce", "la una", "las dos",
         "las tres", "las cuatro", "las cinco", "las seis")
DAYS = ("el lunes", "el martes", "el miércoles", "el jueves", "el viernes", "el sábado", "el domingo")
WEEKLY = ("los lunes", "los martes", "los miércoles", "los jueves", "los viernes", "los sábados", "los domingos")
MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
          "noviembre", "diciembre")
PLACES = ("la estación", "el banco", "la iglesia", "el mercado", "la plaza", "el colegio", "el ayuntamiento")
CITIES = ("Madrid", "Sevilla", "Valencia", "Bilbao", "Zaragoza", "Granada", "Málaga", "Salamanca")
STREETS = ("Mayor", "Real", "del Sol", "de la Paz", "Nueva", "Ancha", "de Alcalá", "del Prado")
COLORS = ("rojo", "azul", "blanco", "negro", "gris", "verde")
DISHES = ("sopa", "ensalada", "pescado", "arroz", "pollo", "fruta", "verduras")
NEUTRAL_SLOTS: dict[str, tuple[str, ...]] = {
    "transporte": ("El tren", "El autobús", "El vuelo", "El barco", "El metro"),
    "local": ("La tienda", "El museo", "La biblioteca", "El restaurante", "La farmacia", "El banco", "El mercado"),
    "evento": ("La reunión", "El concierto", "El partido", "La clase", "La cena", "La conferencia", "El examen"),
    "hora": HOURS, "dia": DAYS, "semanal": WEEKLY, "mes": MONTHS, "lugar": PLACES, "ciudad": CITIES,
    "calle": STREETS, "color": COLORS, "plato": DISHES,
    "paginas": ("120", "150", "200", "250", "300", "350", "400", "500"),
    "minutos": ("90", "95", "100", "105", "110", "120", "130", "140", "150"),
    "habitaciones": ("20", "30", "40", "50", "60", "80", "100", "120"),
    "km": ("2", "3", "4", "5", "6", "8", "10", "12"),
    "andando": ("5", "10", "15", "20", "25", "30"),
    "capitulos": ("6", "8", "10", "12", "13", "20", "24"),
    "horas": ("2", "3", "4", "5", "6", "7", "8", "9", "10", "12"),
    "piso": ("1", "2", "3", "4", "5", "6", "7", "8", "9"),
    "anos": ("2", "3", "4", "5", "6", "7", "8"),
    "alumnos": ("150", "200", "250", "300", "400", "500", "600"),
}
NEUTRAL_TEMPLATES = (
    "{transporte} sale a {hora}.", "{transporte} llega a {hora}.", "{transporte} salió {dia}.",
    "{local} abre a {hora}.", "{local} cierra a {hora}.", "{local} cierra {semanal}.",
    "{evento} es {dia}.", "{evento} empieza a {hora}.", "{evento} fue en {ciudad}.", "{evento} se celebra en {mes}.",
    "El libro tiene {paginas} páginas.", "La película dura {minutos} minutos.", "El concierto es {dia} a {hora}.",
    "El hotel tiene {habitaciones} habitaciones.", "El curso empieza en {mes}.", "La exposición termina en {mes}.",
    "El parque está a {km} kilómetros del centro.", "La playa está a {andando} minutos andando.",
    "La serie tiene {capitulos} capítulos.", "El hotel está en {ciudad}.", "El viaje dura {horas} horas.",
    "El profesor llega a {hora}.", "El coche es de color {color}.", "La habitación está en el piso {piso}.",
    "El menú del día incluye {plato}.", "La farmacia está junto a {lugar}.", "El paquete llegó {dia}.",
    "El mercado se celebra {semanal}.", "El hotel está cerca de {lugar}.", "La comida se sirve a {hora}.",
    "El móvil tiene {anos} años.", "La aplicación se actualizó en {mes}.", "La obra de teatro se estrena en {mes}.",
    "La escuela tiene {alumnos} alumnos.", "El tren para en {ciudad}.", "La novela se publicó en {mes}.",
    "{local} está en la calle {calle}.", "El restaurante está en {ciudad}.", "El vuelo dura {horas} horas.",
    "{evento} terminó a {hora}.",
)
SLOT_PATTERN = re.compile(r"{(\w+)}")

INSTRUCTION_PHRASINGS = (
    'Analiza el sentimiento del siguiente texto: "{text}"',
    '¿Qué sentimiento expresa el siguiente texto? "{text}"',
    'Clasifica el sentimiento (positivo, negativo o neutro) de este texto: "{text}"',
    'Indica si el siguiente texto es positivo, negativo o neutro: "{text}"',
    'Determina el sentimiento de este texto: "{text}"',
)
RESPONSE = "El sentimiento del texto es {label}."
# `--sentiment_response cue`: the response first quotes the words that decide the label (the adjective with its
# verb and a "no", or the clause after "pero"), then states it; a neutral text is said to state a fact
CUE_RESPONSE = 'Lo decisivo es "{cue}": el sentimiento del texto es {label}.'
NEUTRAL_CUE_RESPONSE = "El texto solo da un dato, sin opinión: el sentimiento del texto es {label}."
RESPONSE_FORMATS = ("label", "cue")
DEFAULT_RESPONSE_FORMAT = "label"

Pair = tuple[int, str]  # (subject index, adjective lemma)


def inflect(adjective: str, feminine: bool) -> str:
    """Agree an adjective lemma with its subject: -o -> -a, -or -> -ora, otherwise invariant."""
    if not feminine:
        return adjective
    if adjective.endswith("o"):
        return adjective[:-1] + "a"
    if adjective.endswith("or"):
        return adjective + "a"
    return adjective


@dataclass(frozen=True)
class Sentence:
    """A generated text, its label, the combination keys it uses and its cue (the words that decide the label:
    the predicate of a plain or negated sentence, the clause after "pero"; empty for a neutral text)."""

    text: str
    label: str
    keys: tuple[tuple, ...]
    cue: str = ""


def _polar_sentence(rng: random.Random, label: str) -> Sentence:
    """Draw a plain, negated or contrast sentence whose label is `label` (positivo/negativo)."""
    shape = rng.choices([s for s, _ in SHAPE_WEIGHTS], weights=[w for _, w in SHAPE_WEIGHTS])[0]
    same, other = ((POSITIVE_ADJECTIVES, NEGATIVE_ADJECTIVES) if label == POSITIVE
                   else (NEGATIVE_ADJECTIVES, POSITIVE_ADJECTIVES))
    subject_index = rng.randrange(len(SUBJECTS))
    subject, feminine = SUBJECTS[subject_index]
    verb = rng.choice(VERBS)
    intensifier = rng.choice(INTENSIFIERS) + " " if rng.random() < INTENSIFIER_PROBABILITY else ""
    if shape == PLAIN:
        adjectives = [rng.choice(same)]
        cue = f"{verb} {intensifier}{inflect(adjectives[0], feminine)}"
    elif shape == NEGATED:
        adjectives = [rng.choice(other)]
        cue = f"no {verb} {intensifier}{inflect(adjectives[0], feminine)}"
    else:
        adjectives = [rng.choice(other), rng.choice(same)]
        while tuple(sorted(adjectives, key=POSITIVE_ADJECTIVES.__contains__, reverse=True)) in ANTONYMS:
            adjectives[1] = rng.choice(same)
        first, last = (inflect(a, feminine) for a in adjectives)
        join, cue = rng.choice(CONTRAST_JOINS), f"pero {intensifier}{last}"
        return Sentence(f"{subject} {verb} {first}{join}{intensifier}{last}.", label,
                        tuple(("pair", subject_index, a) for a in adjectives), cue)
    return Sentence(f"{subject} {cue}.", label, tuple(("pair", subject_index, a) for a in adjectives), cue)


def _all_neutral() -> list[Sentence]:
    """Every neutral sentence: each template with every combination of its slot fillers."""
    sentences = []
    for template_index, template in enumerate(NEUTRAL_TEMPLATES):
        slots = SLOT_PATTERN.findall(template)
        for values in itertools.product(*(NEUTRAL_SLOTS[s] for s in slots)):
            text = template.format(**dict(zip(slots, values)))
            sentences.append(Sentence(text, NEUTRAL, (("neutral", template_index, values),)))
    return sentences


def _partition(rng: random.Random, keys: list[tuple], fraction: float) -> dict[tuple, str]:
    """Assign `fraction` of keys to test and validation each half, the rest to train."""
    order = list(keys)
    rng.shuffle(order)
    held = round(fraction * len(order))
    half = held // 2
    assignment = {k: "test" for k in order[:half]}
    assignment.update({k: "validation" for k in order[half:held]})
    assignment.update({k: "train" for k in order[held:]})
    return assignment


def _check_words_seen(assignment: Mapping[tuple, str]) -> None:
    """Every subject and every adjective must keep at least one training pair."""
    train_pairs = [k for k, split in assignment.items() if split == "train" and k[0] == "pair"]
    missing_subjects = set(range(len(SUBJECTS))) - {k[1] for k in train_pairs}
    missing_adjectives = set(POSITIVE_ADJECTIVES + NEGATIVE_ADJECTIVES) - {k[2] for k in train_pairs}
    if missing_subjects or missing_adjectives:
        raise ValueError(f"held-out pairs remove words from training: {missing_subjects, missing_adjectives}")


def _fits(sentence: Sentence, split: str, assignment: Mapping[tuple, str]) -> bool:
    splits = {assignment[k] for k in sentence.keys}
    if split == "train":
        return splits == {"train"}
    return split in splits and splits <= {split, "train"}


def label_counts(n: int) -> list[str]:
    labels = []
    for label, share in LABEL_SHARES:
        labels += [label] * round(share * n)
    return labels + [NEUTRAL] * (n - len(labels))


def response(sentence: Sentence, response_format: str = DEFAULT_RESPONSE_FORMAT) -> str:
    """The reference answer: the label alone ("label"), or the deciding words quoted first ("cue")."""
    if response_format == "label":
        return RESPONSE.format(label=sentence.label)
    if response_format == "cue":
        template = NEUTRAL_CUE_RESPONSE if sentence.label == NEUTRAL else CUE_RESPONSE
        return template.format(cue=sentence.cue, label=sentence.label)
    raise ValueError(f"unknown sentiment response format {response_format!r}; expected one of "
                     f"{', '.join(RESPONSE_FORMATS)}")


def _example(rng: random.Random, sentence: Sentence, subset: str, response_format: str) -> Example:
    instruction = rng.choice(INSTRUCTION_PHRASINGS).format(text=sentence.text)
    return Example(instruction, response(sentence, response_format), TASK, sentence.label, [sentence.label], subset)


def split_assignment(rng: random.Random) -> tuple[dict[tuple, str], dict[str, list[Sentence]]]:
    """Which split owns each (subject, adjective) pair and each neutral sentence, and the neutral sentences
    of each split (the long-text subset draws from the same assignment)."""
    pairs = [("pair", s, a) for s in range(len(SUBJECTS)) for a in POSITIVE_ADJECTIVES + NEGATIVE_ADJECTIVES]
    assignment = _partition(rng, pairs, HELD_PAIR_FRACTION)
    _check_words_seen(assignment)
    neutral = _all_neutral()
    assignment.update(_partition(rng, [s.keys[0] for s in neutral], HELD_NEUTRAL_FRACTION))
    neutral_by_split = {split: [s for s in neutral if assignment[s.keys[0]] == split] for split in HELD_OUT_ORDER}
    return assignment, neutral_by_split


def draw_polar(rng: random.Random, label: str, split: str, assignment: Mapping[tuple, str],
               taken: set[str] = frozenset()) -> Sentence:
    """A positivo/negativo sentence that belongs to `split` and is not in `taken`."""
    for _ in range(MAX_TRIES_PER_ROW):
        sentence = _polar_sentence(rng, label)
        if _fits(sentence, split, assignment) and sentence.text not in taken:
            return sentence
    raise ValueError(f"could not draw a fresh {label} sentence for {split}")


def sentiment_examples(rng: random.Random, counts: Mapping[str, int],
                       response_format: str = DEFAULT_RESPONSE_FORMAT) -> dict[str, list[Example]]:
    """Draw each split's sentences from its own combinations (held-out rows have unique texts); responses in
    `response_format` (see `response`)."""
    assignment, neutral_by_split = split_assignment(rng)

    out: dict[str, list[Example]] = {}
    for split in HELD_OUT_ORDER:
        held_out = split != "train"
        subset = HELD_OUT_SUBSET if held_out else TRAIN_SUBSET
        labels = label_counts(counts[split])
        rng.shuffle(labels)
        texts: set[str] = set()
        rows = []
        neutral_pool = neutral_by_split[split]
        rng.shuffle(neutral_pool)
        if held_out and labels.count(NEUTRAL) > len(neutral_pool):
            raise ValueError(f"only {len(neutral_pool)} neutral sentences for {split}")
        for label in labels:
            if label == NEUTRAL:  # held-out splits take distinct sentences, train samples with replacement
                sentence = neutral_pool.pop() if held_out else rng.choice(neutral_pool)
            else:
                sentence = draw_polar(rng, label, split, assignment, texts if held_out else frozenset())
            texts.add(sentence.text)
            rows.append(_example(rng, sentence, subset, response_format))
        out[split] = rows
    return out
