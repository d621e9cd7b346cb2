"""A small BPE tokenizer trained locally with `tokenizers`, wrapped as `PreTrainedTokenizerFast`.

Pipeline: NFC normalisation (accents kept) -> Metaspace (each space becomes "▁", so
``decode(encode(s)) == s``) -> digits split one per token -> BPE
(``number_space="attached"``, the default: `` 65`` is ``▁6 5``, the space rides on a number's first digit;
``"separate"``: ``▁ 6 5``, the space is a token of its own, which makes the math answers 19% longer in tokens)
(punctuation is not split off, so frequent pieces such as "▁=" or "s." become single tokens).
The initial alphabet holds the Spanish letters (ñ á é í ó ú ü, upper and lower case) and the
marks ¿ ¡, so they are always single tokens or inside merged tokens, never ``<unk>``.
``tokenizer(text)`` adds no ``<s>``; it appends ``</s>``.
"""

from __future__ import annotations

import logging
import os
import shutil
import string
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = {PAD: 0, BOS: 1, EOS: 2, UNK: 3}  # token -> id, in id order
DEFAULT_VOCAB_SIZE = 2000
MODEL_MAX_LENGTH = 512
MIN_FREQUENCY = 2
SPACE_MARK = "▁"
SPANISH_LETTERS = "ñáéíóúüÑÁÉÍÓÚÜ"
INITIAL_ALPHABET = sorted(set(string.ascii_letters + string.digits + string.punctuation + SPANISH_LETTERS
                              + "¿¡%€ºª\t\n" + SPACE_MARK))
TOKENIZER_FILE = "tokenizer.json"
NUMBER_SPACES = ("attached", "separate")  # where the space before a number goes (see the module docstring)
DEFAULT_NUMBER_SPACE = "attached"  # 15% more steps in the default run's budget (docs/experiments.md, session 8)


def _digit_splitter(number_space: str):
    if number_space == "separate":
        return pre_tokenizers.Digits(individual_digits=True)
    if number_space == "attached":  # "▁65" -> "▁6", "5": one digit per token, the space kept on the first
        return pre_tokenizers.Split(Regex(f"{SPACE_MARK}?[0-9]"), behavior="isolated")
    raise ValueError(f"number_space must be one of {', '.join(NUMBER_SPACES)}, got {number_space!r}")


def _pipeline(number_space: str = DEFAULT_NUMBER_SPACE) -> Tokenizer:
    """An untrained BPE tokenizer with the normaliser, pre-tokenisers and decoder described above."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=SPACE_MARK, prepend_scheme="never", split=True),
        _digit_splitter(number_space),
    ])
    tokenizer.decoder = decoders.Metaspace(replacement=SPACE_MARK, prepend_scheme="never", split=True)
    return tokenizer


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        model_max_length=MODEL_MAX_LENGTH, clean_up_tokenization_spaces=False,
    )


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                    number_space: str = DEFAULT_NUMBER_SPACE) -> PreTrainedTokenizerFast:
    """Train BPE on `texts`; specials get ids pad 0, bos 1, eos 2, unk 3; an ``</s>`` is appended to each text."""
    if vocab_size <= len(SPECIAL_TOKENS) + len(INITIAL_ALPHABET):
        raise ValueError(f"vocab_size must exceed specials + alphabet ({len(SPECIAL_TOKENS) + len(INITIAL_ALPHABET)}), "
                         f"got {vocab_size}")
    tokenizer = _pipeline(number_space)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=MIN_FREQUENCY,
                                  special_tokens=list(SPECIAL_TOKENS), initial_alphabet=INITIAL_ALPHABET,
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for token, expected in SPECIAL_TOKENS.items():
        if tokenizer.token_to_id(token) != expected:
            raise RuntimeError(f"special token {token} got id {tokenizer.token_to_id(token)}, expected {expected}")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, SPECIAL_TOKENS[EOS])])
    logger.info("trained a BPE tokenizer with %d tokens", tokenizer.get_vocab_size())
    return _wrap(tokenizer)


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `save_pretrained` (e.g. with a checkpoint)."""
    return PreTrainedTokenizerFast.from_pretrained(str(directory))


def load_or_train_tokenizer(directory: str | Path, texts_factory: Callable[[], Iterable[str]],
                            vocab_size: int = DEFAULT_VOCAB_SIZE,
                            number_space: str = DEFAULT_NUMBER_SPACE) -> PreTrainedTokenizerFast:
    """Load the tokenizer saved in `directory`, or train one on `texts_factory()` and save it there.

    Saving is atomic: files are written to a temporary folder next to `directory`, which is renamed
    into place (or, when `directory` already exists, moved in file by file with tokenizer.json last).
    """
    directory = Path(directory)
    if (directory / TOKENIZER_FILE).is_file():
        logger.info("loading tokenizer from %s", directory)
        return load_tokenizer(directory)
    tokenizer = train_tokenizer(texts_factory(), vocab_size, number_space)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        tokenizer.save_pretrained(str(staging))
        if not directory.exists():
            try:
                os.rename(staging, directory)
            except OSError:  # another process saved it first
                return load_tokenizer(directory)
        else:
            names = sorted(p.name for p in staging.iterdir() if p.name != TOKENIZER_FILE) + [TOKENIZER_FILE]
            for name in names:
                os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("saved tokenizer to %s", directory)
    return tokenizer
