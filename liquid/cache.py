"""`LiquidCache`: everything the decoder keeps between generation steps.

Per decoder layer, a rolling self-attention cache of at most W - 1 positions (memory O(W), as Mistral's
sliding-window cache) and the cross-attention keys/values of the encoder states (computed once); plus the
causal LiquidEmbedding's state (its last few inputs and running complexity). `generate()` carries this object
from one step to the next (`outputs.cache`) and calls `reorder_cache` during beam search.
"""

from __future__ import annotations

import torch

from liquid.attention import LocalKVCache
from liquid.embedding import EmbeddingState


class LiquidCache:
    """Decoding state of `LiquidDecoder`; not a `transformers.Cache`, so `generate()` never tries to build one."""

    is_compileable = False  # read by `generate()` when it decides whether to compile the forward

    def __init__(self, num_layers: int):
        self.self_attention = [LocalKVCache() for _ in range(num_layers)]
        # per layer (k, v, key_mask) of the encoder states, projected once (key_mask None: no padding)
        self.cross_attention: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None] = [None] * num_layers
        self.embedding = EmbeddingState()

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Decoder positions seen so far."""
        return self.self_attention[layer_idx].seen_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep, for each new beam, the state of the beam it continues (index_select on the batch)."""
        for layer_cache in self.self_attention:
            layer_cache.reorder(beam_idx)
        self.cross_attention = [
            None if kv is None else tuple(None if t is None else t.index_select(0, beam_idx.to(t.device)) for t in kv)
            for kv in self.cross_attention
        ]
        self.embedding.reorder(beam_idx)
