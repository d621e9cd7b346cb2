"""Batching that wastes little padding: dynamic padding and length-grouped batches.

Padding share of a set of batches (what `padding_fraction` returns)::

    padding = sum_b (|b| * max_{i in b} len_i - sum_{i in b} len_i) / sum_b |b| * max_{i in b} len_i
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Mapping, Sequence

import datasets
import torch
from torch import Tensor
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value ignored by the cross-entropy loss
MIN_SEQUENCE_LENGTH = 2  # room for one token and </s>


def truncate(ids: Sequence[int], max_length: int, eos_id: int) -> list[int]:
    """Cut `ids` to `max_length` tokens, keeping a final ``</s>`` when the sequence is cut."""
    ids = list(ids)
    return ids if len(ids) <= max_length else ids[:max_length - 1] + [eos_id]


def _pad(sequences: Sequence[Sequence[int]], value: int) -> Tensor:
    """Right-pad to the longest sequence: (B, T_max) long tensor."""
    longest = max(len(s) for s in sequences)
    out = torch.full((len(sequences), longest), value, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        out[row, :len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return out


class Seq2SeqCollator:
    """Dynamic padding to the longest sequence of the batch.

    Returns ``input_ids`` (B, S) padded with ``pad_token_id``, ``attention_mask`` (B, S) with
    ``mask[b, s] = 1[s < len_b]``, and ``labels`` (B, T) padded with -100. Rows are either raw
    (``instruction``, ``response``) or pre-tokenised (``input_ids``, ``labels``, see `tokenize_dataset`).
    """

    def __init__(self, tokenizer: Any, max_source_length: int = 128, max_target_length: int = 128) -> None:
        if min(max_source_length, max_target_length) < MIN_SEQUENCE_LENGTH:
            raise ValueError(f"max_source_length and max_target_length must be >= {MIN_SEQUENCE_LENGTH}, "
                             f"got {max_source_length} and {max_target_length}")
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs pad and eos tokens")
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length

    def _ids(self, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        if "input_ids" in row and "labels" in row:
            source, target = row["input_ids"], row["labels"]
        else:
            source = self.tokenizer(row["instruction"])["input_ids"]
            target = self.tokenizer(row["response"])["input_ids"]
        eos = self.tokenizer.eos_token_id
        return truncate(source, self.max_source_length, eos), truncate(target, self.max_target_length, eos)

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, Tensor]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        sources, targets = zip(*(self._ids(row) for row in rows))
        input_ids = _pad(sources, self.tokenizer.pad_token_id)  # (B, S)
        attention_mask = _pad([[1] * len(s) for s in sources], 0)  # (B, S)
        labels = _pad(targets, IGNORE_INDEX)  # (B, T)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def tokenize_dataset(dataset: datasets.Dataset, tokenizer: Any, max_source_length: int,
                     max_target_length: int) -> datasets.Dataset:
    """Add ``input_ids`` (instruction) and ``labels`` (response) token lists, truncated; other columns kept."""
    eos = tokenizer.eos_token_id

    def encode(batch: Mapping[str, list]) -> dict[str, list[list[int]]]:
        sources = tokenizer(batch["instruction"])["input_ids"]
        targets = tokenizer(batch["response"])["input_ids"]
        return {"input_ids": [truncate(s, max_source_length, eos) for s in sources],
                "labels": [truncate(t, max_target_length, eos) for t in targets]}

    return dataset.map(encode, batched=True, desc="tokenizing")


def padding_fraction(batches_of_lengths: Iterable[Sequence[int]]) -> float:
    """Share of padding tokens when each batch is padded to its longest sequence (formula above)."""
    padded = real = 0
    for lengths in batches_of_lengths:
        if len(lengths):
            padded += len(lengths) * max(lengths)
            real += sum(lengths)
    return 0.0 if padded == 0 else (padded - real) / padded


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar lengths, deterministic for (seed, epoch), sharded over replicas.

    Per epoch: permute the indices (generator seeded with ``seed + epoch``), cut them into mega-batches
    of ``batch_size * num_replicas * mega_batch_mult``, sort each mega-batch by length (longest first),
    cut it into global batches of ``batch_size * num_replicas`` and shuffle the global-batch order.
    Replica ``rank`` takes the ``rank``-th slice of ``batch_size`` from every global batch, so replicas get
    disjoint, equal-count batches of similar lengths at each step. A short last global batch is dropped
    (``drop_last``) or, with several replicas, topped up with the first indices of the permutation
    to a multiple of ``num_replicas`` (only those rows repeat).

    ``repeats`` (one number ``k_i >= 0`` per row, default all 1) sets the task mix: row i appears
    ``floor(k_i)`` times in every epoch, and of the rows sharing a fractional part ``f = k - floor(k)``
    a fresh random ``round(f * n)`` of them (drawn per epoch with the same generator) once more. So
    ``k = 0.5`` shows each row about every other epoch, a different half each time, and every epoch with the
    same repeats has the same number of rows (``len`` is exact, resume is exact).
    ``later_repeats`` ({epoch E >= 1: per-row repeats}) changes the mix from epoch E on, until the next entry:
    ``{1: ...}`` thins a task once every row has been seen (the epochs then have another length,
    `batches_in_epoch`).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, num_replicas: int = 1, rank: int = 0, mega_batch_mult: int = 50,
                 repeats: Sequence[float] | None = None,
                 later_repeats: Mapping[int, Sequence[float]] | None = None) -> None:
        if batch_size < 1 or mega_batch_mult < 1 or num_replicas < 1:
            raise ValueError(f"batch_size, mega_batch_mult and num_replicas must be >= 1, got "
                             f"{batch_size}, {mega_batch_mult}, {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        if len(lengths) == 0:
            raise ValueError("lengths is empty")
        super().__init__()
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.repeats = self._checked(repeats)
        if any(epoch < 1 for epoch in later_repeats or {}):
            raise ValueError(f"later_repeats start at epochs >= 1, got {sorted(later_repeats)}")
        self.later_repeats = {int(epoch): self._checked(later_repeats[epoch]) for epoch in sorted(later_repeats or {})}
        # rows per epoch of each mix (counted once: batches_in_epoch is asked at every step)
        self._rows_from = {first: self._row_count(self.repeats_at(first)) for first in (0, *self.later_repeats)}
        for first, rows in self._rows_from.items():
            if rows == 0:
                raise ValueError(f"repeats leave no row in epoch {first}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and its order); also resets `set_start_batch` to 0."""
        self.epoch = epoch
        self.start_batch = 0

    def set_start_batch(self, k: int) -> None:
        """Resume: skip the first `k` batches of the current epoch."""
        if k < 0:
            raise ValueError(f"start batch must be >= 0, got {k}")
        self.start_batch = k

    def _checked(self, repeats: Sequence[float] | None) -> list[float] | None:
        if repeats is None:
            return None
        repeats = [float(k) for k in repeats]
        if len(repeats) != len(self.lengths):
            raise ValueError(f"repeats has {len(repeats)} entries for {len(self.lengths)} rows")
        if any(not k >= 0 for k in repeats):
            raise ValueError("repeats must be >= 0")
        return repeats

    def repeats_at(self, epoch: int) -> list[float] | None:
        """The per-row repeats in force in `epoch` (None: every row once)."""
        current = self.repeats
        for first, repeats in self.later_repeats.items():  # sorted by first epoch
            if first <= epoch:
                current = repeats
        return current

    @staticmethod
    def _fraction_groups(repeats: list[float]) -> dict[float, list[int]]:
        by_fraction: dict[float, list[int]] = {}
        for i, k in enumerate(repeats):
            if k != int(k):
                by_fraction.setdefault(k - int(k), []).append(i)
        return by_fraction

    def _row_count(self, repeats: list[float] | None) -> int:
        """Rows of an epoch with these repeats (what `_epoch_rows` returns, without drawing)."""
        if repeats is None:
            return len(self.lengths)
        whole = sum(int(k) for k in repeats)
        return whole + sum(round(f * len(rows)) for f, rows in self._fraction_groups(repeats).items())

    def _epoch_rows(self, generator: torch.Generator, repeats: list[float] | None) -> Tensor:
        """The row indices of one epoch (with repeats; rows in index order, then the extra copies)."""
        if repeats is None:
            return torch.arange(len(self.lengths))
        whole = [i for i, k in enumerate(repeats) if k >= 1]  # first copy, in row order
        most = max((int(k) for k in repeats), default=0)
        extra = [i for copy in range(1, most) for i, k in enumerate(repeats) if int(k) > copy]
        for fraction, rows in sorted(self._fraction_groups(repeats).items()):
            chosen = torch.randperm(len(rows), generator=generator)[:round(fraction * len(rows))]
            extra.extend(rows[j] for j in sorted(chosen.tolist()))
        return torch.tensor(whole + extra, dtype=torch.long)

    def batches_in_epoch(self, epoch: int) -> int:
        """Global batches of `epoch` (its repeats decide its rows)."""
        rows = self._rows_from[max(first for first in self._rows_from if first <= epoch)]
        full, tail = divmod(rows, self.batch_size * self.num_replicas)
        return full + (1 if tail and not self.drop_last else 0)

    def _global_batches(self) -> list[Tensor]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        rows = self._epoch_rows(generator, self.repeats_at(self.epoch))
        n = len(rows)
        order = rows[torch.randperm(n, generator=generator)] if self.shuffle else rows
        global_size = self.batch_size * self.num_replicas
        batches: list[Tensor] = []
        for mega in order.split(global_size * self.mega_batch_mult):
            by_length = mega[torch.argsort(self.lengths[mega], descending=True, stable=True)]
            batches.extend(by_length.split(global_size))
        tail = batches.pop() if len(batches[-1]) < global_size else None
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        if tail is not None and not self.drop_last:
            missing = -len(tail) % self.num_replicas
            batches.append(torch.cat([tail, order.repeat(missing // n + 1)[:missing]]))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._global_batches()[self.start_batch:]:
            yield batch.chunk(self.num_replicas)[self.rank].tolist() if self.num_replicas > 1 else batch.tolist()

    def __len__(self) -> int:
        return max(self.batches_in_epoch(self.epoch) - self.start_batch, 0)
