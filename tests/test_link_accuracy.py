"""scripts/link_accuracy.py: link templates, link spans, and per-link teacher-forced accuracy against an oracle."""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import link_accuracy as la  # noqa: E402

from liquid.data import train_tokenizer  # noqa: E402

ROW = {"instruction": "Resuelve la ecuación 7x + 16 = 65.", "task": "math",
       "response": "Restamos 16 en ambos lados: 7x = 65 - 16 = 65 - 10 - 6 = 55 - 6 = 49. "
                   "Dividimos ambos lados entre 7: x = 49 / 7 = 7. La solución es x = 7."}


def test_templates_and_spans():
    assert la.template(" -(57 + 6) ") == "-(N + d)"
    keys = [key for key, _, _ in la.link_spans(ROW["response"])]
    assert keys == ["N - N = N - N - d", "N - N - d = N - d", "N - d = N", "N / d = d"]  # links with x skipped
    text = ROW["response"]
    assert [text[s:e].strip() for _, s, e in la.link_spans(text)] == ["65 - 10 - 6", "55 - 6", "49", "7"]


class _Oracle(torch.nn.Module):
    """Predicts the labels, except for the label tokens at `wrong` positions (then predicts token 0)."""

    def __init__(self, vocab, wrong=()):
        super().__init__()
        self.vocab, self.wrong = vocab, set(wrong)

    def forward(self, input_ids, attention_mask, labels):
        logits = torch.zeros(*labels.shape, self.vocab)
        logits.scatter_(-1, labels.clamp(min=0)[..., None], 1.0)
        for position in self.wrong:
            logits[0, position] = 0.0
            logits[0, position, 0] = 1.0
        return SimpleNamespace(logits=logits)


def test_accuracy_counts_only_the_corrupted_link():
    tokenizer = train_tokenizer([ROW["instruction"], ROW["response"]] * 20, vocab_size=300)
    assert la.link_accuracy(_Oracle(len(tokenizer)), tokenizer, [ROW]) == {
        "N - N = N - N - d": [1, 1], "N - N - d = N - d": [1, 1], "N - d = N": [1, 1], "N / d = d": [1, 1]}
    encoded = tokenizer(ROW["response"], return_offsets_mapping=True)
    nine = ROW["response"].index("55 - 6 = 49") + len("55 - 6 = ")
    position = next(t for t, (s, e) in enumerate(encoded["offset_mapping"]) if s <= nine < e)
    stats = la.link_accuracy(_Oracle(len(tokenizer), wrong=[position]), tokenizer, [ROW])
    assert stats["N - d = N"] == [0, 1]
    assert sum(right for right, _ in stats.values()) == 3
    assert "wrong 1 (25.0%)" in la.format_report(stats, top=5)
