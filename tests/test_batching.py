"""Tests for dynamic padding, dataset tokenisation and the length-grouped batch sampler."""

import functools
import random

import datasets
import pytest
import torch

from liquid.data.batching import (IGNORE_INDEX, LengthGroupedBatchSampler, Seq2SeqCollator, padding_fraction,
                                  tokenize_dataset)
from liquid.data.tokenizer import train_tokenizer

ROWS = [
    {"instruction": "Resuelve la ecuación 3x + 5 = 20.", "response": "Restamos 5 en ambos lados: 3x = 20 - 5 = 15. "
     "Dividimos ambos lados entre 3: x = 15 / 3 = 5. La solución es x = 5."},
    {"instruction": "¿Cuál es la capital de Francia?", "response": "La capital de Francia es París."},
    {"instruction": "Analiza el sentimiento del siguiente texto: \"La comida fue excelente.\"",
     "response": "El sentimiento del texto es positivo."},
]


@functools.lru_cache(maxsize=1)
def tokenizer():
    return train_tokenizer([r[k] for r in ROWS for k in ("instruction", "response")] * 4, vocab_size=300)


def test_collator_pads_to_longest_in_batch() -> None:
    tok = tokenizer()
    batch = Seq2SeqCollator(tok)(ROWS)
    sources = [tok(r["instruction"])["input_ids"] for r in ROWS]
    targets = [tok(r["response"])["input_ids"] for r in ROWS]
    assert batch["input_ids"].shape == (3, max(map(len, sources)))
    assert batch["labels"].shape == (3, max(map(len, targets)))
    assert all(v.dtype == torch.long for v in batch.values())
    for row, (source, target) in enumerate(zip(sources, targets)):
        n, m = len(source), len(target)
        assert batch["input_ids"][row, :n].tolist() == source
        assert set(batch["input_ids"][row, n:].tolist()) <= {tok.pad_token_id}
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        assert batch["labels"][row, :m].tolist() == target
        assert set(batch["labels"][row, m:].tolist()) <= {IGNORE_INDEX}


def test_collator_truncates_keeping_eos() -> None:
    tok = tokenizer()
    batch = Seq2SeqCollator(tok, max_source_length=6, max_target_length=4)(ROWS)
    assert batch["input_ids"].shape[1] == 6 and batch["labels"].shape[1] == 4
    assert (batch["input_ids"][:, -1] == tok.eos_token_id).all()
    assert (batch["labels"][:, -1] == tok.eos_token_id).all()
    assert batch["input_ids"][0, :5].tolist() == tok(ROWS[0]["instruction"])["input_ids"][:5]


def test_collator_rejects_impossible_lengths() -> None:
    with pytest.raises(ValueError, match="max_source_length"):
        Seq2SeqCollator(tokenizer(), max_source_length=1)


def test_tokenize_dataset_matches_collator_on_raw_rows() -> None:
    tok = tokenizer()
    dataset = datasets.Dataset.from_list([dict(r, task="t") for r in ROWS])
    tokenized = tokenize_dataset(dataset, tok, max_source_length=10, max_target_length=12)
    assert set(tokenized.column_names) == {"instruction", "response", "task", "input_ids", "labels"}
    collate = Seq2SeqCollator(tok, max_source_length=10, max_target_length=12)
    from_ids = collate([tokenized[i] for i in range(len(tokenized))])
    from_text = collate(ROWS)
    for key in from_text:
        assert torch.equal(from_ids[key], from_text[key]), key


def _reference_padding(batches: list[list[int]]) -> float:
    padded = sum(float(len(b) * max(b)) for b in batches)
    return sum(float(max(b) - x) for b in batches for x in b) / padded


def test_padding_fraction_matches_reference() -> None:
    rng = random.Random(0)
    batches = [[rng.randint(1, 50) for _ in range(rng.randint(1, 9))] for _ in range(40)]
    assert padding_fraction(batches) == pytest.approx(_reference_padding(batches))
    assert padding_fraction([[3, 3, 3]]) == 0.0 and padding_fraction([]) == 0.0


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 120) for _ in range(n)]


def test_sampler_covers_every_index_once() -> None:
    lengths = _lengths(1003)
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert len(batches) == len(sampler) == 63
    assert sorted(map(len, batches)) == [1003 % 16] + [16] * 62
    dropped = list(LengthGroupedBatchSampler(lengths, 16, seed=3, drop_last=True))
    assert len(dropped) == 62 and all(len(b) == 16 for b in dropped)


def test_sampler_is_deterministic_per_seed_and_epoch() -> None:
    lengths = _lengths()
    a, b = LengthGroupedBatchSampler(lengths, 8, seed=1), LengthGroupedBatchSampler(lengths, 8, seed=1)
    assert list(a) == list(b)
    epoch0 = list(a)
    a.set_epoch(1)
    assert list(a) != epoch0
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(LengthGroupedBatchSampler(lengths, 8, seed=2)) != epoch0


@pytest.mark.parametrize("n, drop_last", [(960, False), (1000, True), (1001, True)])
def test_replicas_get_disjoint_equal_shares(n: int, drop_last: bool) -> None:
    lengths, replicas = _lengths(n), 3
    shares = [list(LengthGroupedBatchSampler(lengths, 8, num_replicas=replicas, rank=r, seed=5, drop_last=drop_last))
              for r in range(replicas)]
    counts = {len(s) for s in shares}
    assert len(counts) == 1
    assert all(len(s) == len(LengthGroupedBatchSampler(lengths, 8, num_replicas=replicas, rank=0,
                                                       drop_last=drop_last)) for s in shares)
    flat = [[i for b in s for i in b] for s in shares]
    for r in range(replicas):
        for q in range(r + 1, replicas):
            assert not set(flat[r]) & set(flat[q])
    assert len(set().union(*map(set, flat))) == sum(map(len, flat)) >= n - 8 * replicas
    for step in zip(*shares):  # replicas see batches of similar length at the same step
        assert len({len(b) for b in step}) == 1


def test_replicas_without_drop_last_cover_everything() -> None:
    lengths, replicas = _lengths(1001), 4
    shares = [list(LengthGroupedBatchSampler(lengths, 8, num_replicas=replicas, rank=r)) for r in range(replicas)]
    assert len({len(s) for s in shares}) == 1
    assert set(i for s in shares for b in s for i in b) == set(range(1001))


def test_set_start_batch_skips_exactly_k() -> None:
    sampler = LengthGroupedBatchSampler(_lengths(), 10, seed=7)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_start_batch(5)
    assert list(sampler) == full[5:] and len(sampler) == len(full) - 5
    sampler.set_epoch(3)
    assert len(list(sampler)) == len(full)


def test_length_grouping_reduces_padding() -> None:
    lengths = _lengths(2000)
    grouped = list(LengthGroupedBatchSampler(lengths, 16, seed=0))
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    random_batches = [order[i:i + 16] for i in range(0, len(order), 16)]
    grouped_share = padding_fraction([[lengths[i] for i in b] for b in grouped])
    random_share = padding_fraction([[lengths[i] for i in b] for b in random_batches])
    assert grouped_share < 0.5 * random_share


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"num_replicas": 2, "rank": 2}, {"mega_batch_mult": 0}])
def test_sampler_rejects_impossible_options(kwargs: dict) -> None:
    options = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError):
        LengthGroupedBatchSampler([1, 2, 3], **options)
