"""Local-attention models take inputs longer than the old 512-position limit (RoPE + windows need no table)."""

from __future__ import annotations

import torch

from liquid.config import PRESETS, LiquidConfig
from liquid.modeling import LiquidFoundationModelOptimized


def test_presets_do_not_cap_inputs_at_512():
    for name in PRESETS:
        assert LiquidConfig.from_preset(name).max_position_embeddings >= 2**16, name


def test_tiny_model_trains_on_a_1024_token_input():
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=64))
    ids = torch.randint(4, 64, (1, 1024))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
    out.loss.backward()
    assert out.logits.shape == (1, 1024, 64) and torch.isfinite(out.loss)
