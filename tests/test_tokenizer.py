"""Tests for the local BPE tokenizer."""

import functools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from liquid.data.tokenizer import load_or_train_tokenizer, train_tokenizer

DATA = Path(__file__).resolve().parents[1] / "data"
SPANISH_ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZñÑáéíóúüÁÉÍÓÚÜ¿¡ 0123456789"
                    "?!.,:;()+-*/=%\"")
VOCAB_SIZE = 800


def _texts() -> list[str]:
    with (DATA / "validation.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [r[key] for r in rows for key in ("instruction", "response")]


@functools.lru_cache(maxsize=2)
def tokenizer(number_space: str = "separate"):
    return train_tokenizer(_texts(), vocab_size=VOCAB_SIZE, number_space=number_space)


def test_special_tokens() -> None:
    tok = tokenizer()
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<unk>"]
    ids = tok("Resuelve la ecuación 3x + 5 = 20.")["input_ids"]
    assert ids[-1] == tok.eos_token_id and tok.bos_token_id not in ids and ids.count(tok.eos_token_id) == 1
    assert tok.model_max_length == 512
    assert len(tok) == VOCAB_SIZE


def test_spanish_letters_are_never_unknown() -> None:
    tok = tokenizer()
    for letter in "ñÑáéíóúüÁÉÍÓÚÜ¿¡":
        ids = tok(letter, add_special_tokens=False)["input_ids"]
        assert ids and tok.unk_token_id not in ids, letter
        assert "".join(tok.convert_ids_to_tokens(ids)) == letter


def test_digits_are_split_one_per_token() -> None:
    tok = tokenizer()
    tokens = tok.convert_ids_to_tokens(tok("x = 125 / (-5) = -25 y 2024 años", add_special_tokens=False)["input_ids"])
    digit_tokens = [t for t in tokens if any(c.isdigit() for c in t)]
    assert "".join(digit_tokens) == "1255252024"
    assert all(len(t) == 1 for t in digit_tokens)


def test_attached_number_space_puts_the_space_on_the_first_digit() -> None:
    text = "x = 125 / (-5) = -25 y 2024 años"
    separate = tokenizer("separate").convert_ids_to_tokens(tokenizer("separate")(text, add_special_tokens=False)["input_ids"])
    attached = tokenizer("attached").convert_ids_to_tokens(tokenizer("attached")(text, add_special_tokens=False)["input_ids"])
    digits = [t for t in attached if any(c.isdigit() for c in t)]
    # one digit per token; a space before a number rides on its first digit, never on a later one
    assert "".join(t.lstrip("▁") for t in digits) == "1255252024"
    assert all(len(t.lstrip("▁")) == 1 for t in digits)
    assert [t for t in digits if t.startswith("▁")] == ["▁1", "▁2"]  # "125" and "2024" follow a space
    assert "▁" not in attached and "▁" in separate
    assert len(attached) == len(separate) - 2


def test_attached_number_space_shortens_math_answers() -> None:
    responses = [t for t in _texts() if "=" in t][:200]
    n = {ns: sum(len(tokenizer(ns)(t)["input_ids"]) for t in responses) for ns in ("separate", "attached")}
    assert n["attached"] < 0.9 * n["separate"]


def test_unknown_number_space() -> None:
    with pytest.raises(ValueError, match="number_space"):
        train_tokenizer(["hola 12"], vocab_size=300, number_space="glued")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=SPANISH_ALPHABET, max_size=80), st.sampled_from(["separate", "attached"]))
def test_decode_encode_roundtrip(text: str, number_space: str) -> None:
    tok = tokenizer(number_space)
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("number_space", ["separate", "attached"])
def test_save_and_auto_tokenizer_roundtrip(tmp_path: Path, number_space: str) -> None:
    tok = tokenizer(number_space)
    tok.save_pretrained(str(tmp_path))
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in _texts()[:50] + ["  dos  espacios ", "¡Año nuevo, pingüino!", "x = -(81 + 9) = -90"]:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.pad_token_id == 0 and loaded.eos_token_id == 2


def test_load_or_train_trains_once(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "tokenizer"
    calls = []

    def texts():
        calls.append(1)
        return _texts()[:400]

    first = load_or_train_tokenizer(directory, texts, vocab_size=300)
    second = load_or_train_tokenizer(directory, texts, vocab_size=300)
    assert len(calls) == 1
    assert (directory / "tokenizer.json").is_file()
    assert [p.name for p in directory.parent.iterdir()] == ["tokenizer"]  # no staging folder left behind
    text = "La capital de Francia es París."
    assert first(text)["input_ids"] == second(text)["input_ids"]


def test_load_or_train_into_existing_empty_folder(tmp_path: Path) -> None:
    tok = load_or_train_tokenizer(tmp_path, lambda: _texts()[:400], vocab_size=300)
    assert (tmp_path / "tokenizer.json").is_file() and len(tok) == 300


def test_vocab_too_small() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["hola"], vocab_size=50)
