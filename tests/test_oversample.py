"""--oversample TASK=K: the training mix repeats (K > 1) or thins (K < 1) a task's rows, and says so when it cannot."""

import collections
import json

import datasets
import pytest
import torch

from liquid.data import DataError
from liquid.data.batching import LengthGroupedBatchSampler
from liquid.training import args as args_module
from liquid.training.args import ArgsError, oversample_with_defaults, parse_args, parse_oversample
from liquid.training import trainer as trainer_module
from liquid.training.trainer import oversample_repeats, train
from test_training import TINY_FLAGS, train_records, write_rows  # tests/ is on sys.path under pytest


def _rows(tasks, subsets=None):
    columns = {"instruction": [f"i{n}" for n in range(len(tasks))],
               "response": [f"r{n}" for n in range(len(tasks))], "task": tasks}
    if subsets is not None:
        columns["subset"] = subsets
    return datasets.Dataset.from_dict(columns)


def _epoch_counts(sampler, epoch):
    sampler.set_epoch(epoch)
    return collections.Counter(i for batch in sampler for i in batch)


def test_repeats_are_per_task_and_default_to_one():
    train = _rows(["math", "qa", "math", "sentiment"])
    assert oversample_repeats(train, {"math": 3, "qa": 0.5}) == [3, 0.5, 3, 1]
    assert oversample_repeats(train, {}) == [1, 1, 1, 1]


def test_a_subset_name_selects_the_rows_of_that_subset():
    train = _rows(["math", "math", "qa"], subsets=["equation", "word_problem", "seen_fact"])
    assert oversample_repeats(train, {"word_problem": 2}) == [1, 2, 1]


def test_integer_repeats_show_each_row_k_times_per_epoch():
    lengths = [5, 9, 7, 3, 8, 6]
    repeats = [3, 1, 3, 1, 1, 2]
    sampler = LengthGroupedBatchSampler(lengths, 4, seed=1, repeats=repeats)
    for epoch in range(3):
        assert _epoch_counts(sampler, epoch) == {i: k for i, k in enumerate(repeats)}
    assert len(sampler) == -(-sum(repeats) // 4)


def test_integer_repeats_give_the_batches_of_the_expanded_dataset():
    """K = 2 for one task yields exactly the batches that copying that task's rows into the data gave."""
    lengths = [(7 * i) % 23 + 3 for i in range(60)]
    repeats = [2 if i % 3 == 0 else 1 for i in range(60)]
    expanded = list(range(60)) + [i for i in range(60) if repeats[i] == 2]  # the rows, then the copies
    old = LengthGroupedBatchSampler([lengths[i] for i in expanded], 8, seed=4)
    new = LengthGroupedBatchSampler(lengths, 8, seed=4, repeats=repeats)
    for epoch in range(2):
        old.set_epoch(epoch)
        new.set_epoch(epoch)
        assert [[expanded[i] for i in batch] for batch in old] == list(new)


def test_a_fraction_draws_that_share_afresh_each_epoch():
    lengths = list(range(1, 201))
    repeats = [0.5] * 100 + [1.0] * 100  # rows 0-99 thinned to half
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=0, repeats=repeats)
    drawn = []
    for epoch in range(4):
        counts = _epoch_counts(sampler, epoch)
        assert all(counts[i] == 1 for i in range(100, 200))
        thinned = {i for i in counts if i < 100}
        assert len(thinned) == 50 and max(counts[i] for i in thinned) == 1
        drawn.append(thinned)
    assert len(sampler) == -(-150 // 16)
    assert len({frozenset(d) for d in drawn}) == 4  # a different half every epoch


def test_fractional_epochs_are_deterministic_for_resume():
    repeats = [1.5] * 30 + [0.25] * 30
    a = LengthGroupedBatchSampler(list(range(60)), 8, seed=2, repeats=repeats)
    b = LengthGroupedBatchSampler(list(range(60)), 8, seed=2, repeats=repeats)
    a.set_epoch(3)
    b.set_epoch(3)
    full = list(a)
    b.set_start_batch(2)
    assert list(b) == full[2:]
    assert sum(len(batch) for batch in full) == 30 + 15 + round(0.25 * 30)


def test_bad_repeats_are_refused():
    with pytest.raises(ValueError, match="repeats has 2 entries for 3 rows"):
        LengthGroupedBatchSampler([1, 2, 3], 2, repeats=[1, 1])
    with pytest.raises(ValueError, match="repeats leave no row"):
        LengthGroupedBatchSampler([1, 2], 2, repeats=[0.1, 0.1])
    with pytest.raises(ValueError, match="repeats must be >= 0"):
        LengthGroupedBatchSampler([1, 2], 2, repeats=[1, -1])


def test_a_missing_task_is_an_error_naming_the_tasks_there():
    with pytest.raises(DataError, match=r"--oversample math=2: no training row has task or subset 'math' "
                                        r"\(tasks there: qa\)"):
        oversample_repeats(_rows(["qa", "qa"]), {"math": 2})
    with pytest.raises(DataError, match=r"\(tasks there: qa; subsets: seen_fact\)"):
        oversample_repeats(_rows(["qa"], subsets=["seen_fact"]), {"math": 0.5})
    plain = datasets.Dataset.from_dict({"instruction": ["a"], "response": ["b"]})  # no task column at all
    with pytest.raises(DataError, match=r"\(tasks there: none\)"):
        oversample_repeats(plain, {"math": 2})


@pytest.mark.parametrize("item", ["math", "math=0", "math=two", "=2", "math=-1", "math=inf", "math=nan",
                                  "qa=0.5@", "qa=0.5@-1", "qa=0.5@one", "qa=@1"])
def test_bad_items_are_refused_with_the_item_named(item):
    with pytest.raises(ArgsError, match=r"--oversample expects TASK=K \(or TASK=K@EPOCH\) with a number K > 0"):
        parse_oversample([item])


def test_items_parse_to_a_schedule_by_first_epoch():
    assert parse_oversample(["math=2", "qa=0.5"]) == {0: {"math": 2.0, "qa": 0.5}}
    assert parse_oversample(["qa=0.25@1", "math=2", "sentiment=0.5@1", "qa=0.1@3"]) == {
        0: {"math": 2.0}, 1: {"qa": 0.25, "sentiment": 0.5}, 3: {"qa": 0.1}}
    assert parse_oversample(None) == {}


def test_defaults_fill_in_for_the_tasks_the_user_did_not_name(monkeypatch):
    monkeypatch.setattr(args_module, "DEFAULT_OVERSAMPLE", ("qa=0.25@1", "sentiment=0.5@1"))
    assert oversample_with_defaults(None) == ["qa=0.25@1", "sentiment=0.5@1"]
    assert oversample_with_defaults(["math=2"]) == ["math=2", "qa=0.25@1", "sentiment=0.5@1"]
    assert oversample_with_defaults(["qa=1"]) == ["qa=1", "sentiment=0.5@1"]  # naming qa replaces its defaults


def test_later_repeats_change_the_mix_from_their_epoch_on():
    """Epoch 0 shows every row; from epoch 1 rows 0-9 appear a fresh half at a time, from epoch 3 twice; each
    epoch's length follows its own repeats."""
    lengths = list(range(20))
    half = [0.5] * 10 + [1.0] * 10
    double = [2.0] * 10 + [1.0] * 10
    sampler = LengthGroupedBatchSampler(lengths, 4, seed=3, later_repeats={1: half, 3: double})
    assert _epoch_counts(sampler, 0) == {i: 1 for i in range(20)}
    assert [sampler.batches_in_epoch(epoch) for epoch in range(5)] == [5, 4, 4, 8, 8]
    chosen = []
    for epoch in (1, 2):
        counts = _epoch_counts(sampler, epoch)
        assert len(sampler) == 4
        assert sum(counts[i] for i in range(10)) == 5 and all(counts[i] == 1 for i in range(10, 20))
        chosen.append({i for i in range(10) if counts[i]})
    assert chosen[0] != chosen[1]  # a fresh half each epoch
    assert _epoch_counts(sampler, 4) == {**{i: 2 for i in range(10)}, **{i: 1 for i in range(10, 20)}}
    sampler.set_epoch(2)
    sampler.set_start_batch(1)  # a resume inside a thinned epoch skips into that epoch's own batches
    assert len(sampler) == 3


def test_later_repeats_are_checked():
    with pytest.raises(ValueError, match="later_repeats start at epochs >= 1"):
        LengthGroupedBatchSampler([1, 2], 2, later_repeats={0: [1, 1]})
    with pytest.raises(ValueError, match="repeats leave no row in epoch 2"):
        LengthGroupedBatchSampler([1, 2], 2, later_repeats={2: [0.1, 0.1]})
    with pytest.raises(ValueError, match="repeats has 1 entries for 2 rows"):
        LengthGroupedBatchSampler([1, 2], 2, later_repeats={1: [1]})


def test_a_default_mix_entry_for_a_task_the_data_lacks_is_skipped():
    train = _rows(["math", "math"])
    assert oversample_repeats(train, {"qa": 0.25}, optional={"qa"}) == [1, 1]
    with pytest.raises(DataError, match="no training row has task or subset 'qa'"):
        oversample_repeats(train, {"qa": 0.25})


def test_a_run_with_a_thinned_second_epoch_takes_each_epochs_own_length(tmp_path):
    """12 rows, batch 2: epoch 0 has 6 batches; from epoch 1 the 6 sentiment rows appear a fresh half at a time,
    so epochs 1 and 2 have 9 rows (5 batches): 3 epochs are 16 steps, and the log's epochs say where each ends."""
    data = write_rows(tmp_path / "train.jsonl", 12, seed=0)
    result = train(parse_args([*TINY_FLAGS, "--train_file", str(data), "--batch_size", "2", "--num_epochs", "3",
                               "--save_every", "0", "--oversample", "sentiment=0.5@1",
                               "--output_dir", str(tmp_path / "run")]))
    assert result.step == 16 and result.stop_reason == "completed"
    epochs = {step: row["epoch"] for step, row in train_records(tmp_path / "run").items()}
    assert [epochs[step] for step in (6, 7, 11, 12, 16)] == [1, 1, 2, 2, 3]


def test_no_repeats_keeps_the_plain_permutation():
    """The default path draws nothing extra from the generator: the epoch order is the seed's permutation."""
    lengths = [1] * 16
    sampler = LengthGroupedBatchSampler(lengths, 16, seed=9, mega_batch_mult=1)
    expected = torch.randperm(16, generator=torch.Generator().manual_seed(9)).tolist()
    assert list(sampler) == [expected]


def test_the_default_mix_thins_sentiment_from_the_second_epoch_and_qa_from_the_third(tmp_path):
    """No --oversample: a fifth of the word problems (the shipped pool, drawn afresh) and every other row once in
    epoch 0, sentiment at 0.5 from epoch 1, qa at 0.25 from epoch 2 (DEFAULT_OVERSAMPLE); a data set without word
    problems or qa rows skips that entry; naming a task keeps the user's value for it."""
    rows = [{"instruction": f"i{n}", "response": f"r{n}", "task": task}
            for n, task in enumerate(["math", "sentiment", "qa", "math"])]
    words = [{"instruction": "w", "response": "r", "task": "math", "subset": "word_problem"}]
    with_words = tmp_path / "with_words.jsonl"
    with_words.write_text("".join(json.dumps(row) + "\n" for row in rows + words), encoding="utf-8")
    flags = [*TINY_FLAGS, "--train_file", str(with_words), "--output_dir", str(tmp_path / "run")]
    ctx = trainer_module.init_distributed("cpu")
    pooled = trainer_module.prepare_data(parse_args(flags), ctx, None)
    assert pooled.repeats == [1.0, 1.0, 1.0, 1.0, 0.2]
    assert pooled.later_repeats == {1: [1.0, 0.5, 1.0, 1.0, 0.2], 2: [1.0, 0.5, 0.25, 1.0, 0.2]}
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    flags[flags.index(str(with_words))] = str(data)
    plain = trainer_module.prepare_data(parse_args(flags), ctx, None)
    assert (plain.repeats or [1.0] * 4) == [1.0] * 4  # the skipped word-problem entry: every row once
    assert plain.later_repeats == {1: [1.0, 0.5, 1.0, 1.0], 2: [1.0, 0.5, 0.25, 1.0]}
    kept = trainer_module.prepare_data(parse_args([*flags, "--oversample", "qa=1", "--oversample", "math=2"]), ctx, None)
    assert kept.repeats == [2.0, 1.0, 1.0, 2.0] and kept.later_repeats == {1: [2.0, 0.5, 1.0, 2.0]}
    no_qa = tmp_path / "no_qa.jsonl"
    no_qa.write_text("".join(json.dumps(row) + "\n" for row in rows if row["task"] != "qa"), encoding="utf-8")
    flags[flags.index(str(data))] = str(no_qa)
    assert trainer_module.prepare_data(parse_args(flags), ctx, None).later_repeats == {1: [1.0, 0.5, 1.0], 2: [1.0, 0.5, 1.0]}
