"""LiquidDecoder: causal LiquidEmbedding -> layers of (causal local self-attention, cross-attention, MoE).

Every sequence-wide operation is causal: the embedding's convolution and short-time FFT look only at
earlier positions, self-attention sees keys i - W < j <= i, and the cross-attention reads all encoder
states (the question) at every step. Changing decoder token k therefore never changes a logit at a
position < k (tests/test_modeling.py checks it end to end).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from liquid.attention import CrossAttention, EnhancedLocalAttention
from liquid.cache import LiquidCache
from liquid.config import LiquidConfig
from liquid.encoder import build_embedding, build_moe, masked


@dataclass
class DecoderOutput:
    last_hidden_state: torch.Tensor  # (B, T, D)
    aux_loss: torch.Tensor | None  # MoE auxiliary loss summed over layers (None: statistics skipped)
    reconstruction_loss: torch.Tensor
    compression_ratio: torch.Tensor  # (B,)
    experts_per_token: torch.Tensor | None
    expert_load: list[torch.Tensor]  # per layer, (E,)
    layer_experts_per_token: torch.Tensor | None  # (L,) per layer
    router_entropy: torch.Tensor | None  # (L,) per layer


class DecoderLayer(nn.Module):
    """x + SelfAttn(norm(x)); x + CrossAttn(norm(x), encoder); x + MoE(norm(x))."""

    def __init__(self, config: LiquidConfig):
        super().__init__()
        self.self_attn_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.self_attn = EnhancedLocalAttention(
            config.d_model, config.num_heads, config.decoder_window_size, causal=True,
            overlap=config.attention_overlap, num_kv_heads=config.num_kv_heads,
            dropout=config.attention_dropout, rope_theta=config.rope_theta, qk_norm=config.qk_norm,
        )
        self.cross_attn_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.cross_attn = CrossAttention(
            config.d_model, config.num_heads, num_kv_heads=config.num_kv_heads, dropout=config.attention_dropout,
            qk_norm=config.qk_norm,
        )
        self.moe_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.moe = build_moe(config, "decoder")
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, encoder_states, encoder_mask, decoder_mask, cache: LiquidCache | None, index: int):
        self_cache = cache.self_attention[index] if cache is not None else None
        x = x + self.dropout(self.self_attn(self.self_attn_norm(x), cache=self_cache))
        memory = None
        if cache is not None:
            if cache.cross_attention[index] is None:  # first step: project the encoder states once
                cache.cross_attention[index] = self.cross_attn.project_memory(encoder_states, encoder_mask)
            memory = cache.cross_attention[index]
        h = self.cross_attn(self.cross_attn_norm(x), encoder_states=encoder_states,
                            encoder_mask=encoder_mask, memory=memory)
        x = x + self.dropout(h)
        moe = self.moe(self.moe_norm(x), mask=decoder_mask)
        return x + self.dropout(moe.hidden_states), moe


class LiquidDecoder(nn.Module):
    def __init__(self, config: LiquidConfig):
        super().__init__()
        self.config = config
        self.embedding = build_embedding(config, causal=True)
        self.embedding_scale = config.embedding_scale
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(
        self,
        decoder_input_ids: torch.Tensor,  # (B, T)
        encoder_states: torch.Tensor,  # (B, S, D)
        encoder_mask: torch.Tensor | None = None,  # (B, S)
        decoder_mask: torch.Tensor | None = None,  # (B, T), 1 = real (statistics only: the decoder is causal)
        cache: LiquidCache | None = None,
        statistics: bool = True,
    ) -> DecoderOutput:
        """`statistics=False` (a `generate()` step: no loss, no monitor) skips the MoE auxiliary loss and routing
        statistics: their fields are None and `expert_load` is empty; the hidden states are the same."""
        emb = self.embedding(
            decoder_input_ids, decoder_mask, state=cache.embedding if cache is not None else None
        )
        x = emb.embeddings  # (B, T, D)
        if self.embedding_scale != 1.0:
            x = x * self.embedding_scale
        aux, experts, loads, entropy = [], [], [], []
        for index, layer in enumerate(self.layers):
            x, moe = layer(x, encoder_states, encoder_mask, decoder_mask, cache, index)
            if not statistics:
                continue
            aux.append(moe.aux_loss)
            experts.append(moe.experts_per_token)
            loads.append(moe.expert_load)
            entropy.append(moe.router_entropy)
        x = masked(self.norm(x), decoder_mask)
        if not statistics:
            return DecoderOutput(last_hidden_state=x, aux_loss=None, reconstruction_loss=emb.reconstruction_loss,
                                 compression_ratio=emb.compression_ratio, experts_per_token=None, expert_load=[],
                                 layer_experts_per_token=None, router_entropy=None)
        return DecoderOutput(
            last_hidden_state=x,
            aux_loss=torch.stack(aux).sum(),
            reconstruction_loss=emb.reconstruction_loss,
            compression_ratio=emb.compression_ratio,
            experts_per_token=torch.stack(experts).mean(),
            expert_load=loads,
            layer_experts_per_token=torch.stack(experts),
            router_entropy=torch.stack(entropy),
        )
