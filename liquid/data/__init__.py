"""Data: the shipped Spanish instruction set, its loaders, the local tokenizer and batching.

Import from here or from the submodules (`liquid.data.loading`, `liquid.data.tokenizer`, ...).
"""

from liquid.data.batching import LengthGroupedBatchSampler, Seq2SeqCollator, padding_fraction, tokenize_dataset
from liquid.data.build import build_splits, write_splits
from liquid.data.loading import DataError, Example, load_splits
from liquid.data.tokenizer import SPECIAL_TOKENS, load_or_train_tokenizer, load_tokenizer, train_tokenizer

__all__ = [
    "DataError", "Example", "LengthGroupedBatchSampler", "SPECIAL_TOKENS", "Seq2SeqCollator", "build_splits",
    "load_or_train_tokenizer", "load_splits", "load_tokenizer", "padding_fraction", "tokenize_dataset",
    "train_tokenizer", "write_splits",
]
