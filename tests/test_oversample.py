"""--oversample TASK=K: the training mix repeats a task's rows, and says so when it cannot."""

import collections

import datasets
import pytest

from liquid.data import DataError
from liquid.training.args import ArgsError, parse_oversample
from liquid.training.trainer import oversample_indices


def _rows(tasks):
    return datasets.Dataset.from_dict({"instruction": [f"i{n}" for n in range(len(tasks))],
                                       "response": [f"r{n}" for n in range(len(tasks))], "task": tasks})


def oversample_tasks(train, repeats):
    return train.select(oversample_indices(train, repeats))


def test_each_row_of_the_task_appears_k_times_and_the_others_once():
    train = _rows(["math", "qa", "math", "sentiment"])
    out = oversample_tasks(train, {"math": 3})
    counts = collections.Counter(out["instruction"])
    assert counts == {"i0": 3, "i2": 3, "i1": 1, "i3": 1}
    assert collections.Counter(out["task"]) == {"math": 6, "qa": 1, "sentiment": 1}


def test_k_of_one_and_no_request_leave_the_data_alone():
    train = _rows(["math", "qa"])
    assert oversample_tasks(train, {"math": 1})["instruction"] == ["i0", "i1"]
    assert oversample_tasks(train, {})["instruction"] == ["i0", "i1"]


def test_a_missing_task_is_an_error_naming_the_tasks_there():
    with pytest.raises(DataError, match=r"--oversample math=2: no training row has task 'math' \(tasks there: qa\)"):
        oversample_tasks(_rows(["qa", "qa"]), {"math": 2})
    plain = datasets.Dataset.from_dict({"instruction": ["a"], "response": ["b"]})  # no task column at all
    with pytest.raises(DataError, match=r"\(tasks there: none\)"):
        oversample_indices(plain, {"math": 2})


@pytest.mark.parametrize("item", ["math", "math=0", "math=two", "=2", "math=-1"])
def test_bad_items_are_refused_with_the_item_named(item):
    with pytest.raises(ArgsError, match="--oversample expects TASK=K"):
        parse_oversample([item])


def test_items_parse_to_a_mapping():
    assert parse_oversample(["math=2", "qa=1"]) == {"math": 2, "qa": 1}
    assert parse_oversample(None) == {}
