"""BidirectionalEncoder: LiquidEmbedding -> residual dilated convolutions -> (local attention + MoE) layers.

Dilated convolution with dilation r and kernel K, centred so each position sees both sides:

    y(t) = sum_{k=0}^{K-1} x(t - r * (k - (K - 1) / 2)) w(k)

Each convolution sits in a standard pre-norm residual block, x + W_o GELU(conv_r(RMSNorm(x))), with W_o
initialised to zero (the last layer of each residual branch starts at 0: Goyal et al. 2017, Fixup), so at
init the stack is the identity and the residual stream keeps the embedding's scale and direction.

Stacking dilations 1, 2, 4, ... gives the receptive field 1 + sum_l (K - 1) * 2^l (WaveNet/ByteNet).
Padded positions are zeroed before every convolution, so padding never reaches a real position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from liquid.attention import EnhancedLocalAttention
from liquid.config import INIT_STD_ATTR, LiquidConfig
from liquid.embedding import LiquidEmbedding, PlainEmbedding
from liquid.ffn import DenseSwiGLU
from liquid.moe import MoELayer


@dataclass
class EncoderOutput(BaseModelOutput):
    """`last_hidden_state` (B, T, D) plus the regularisers the training loss needs."""

    aux_loss: torch.Tensor | None = None  # MoE auxiliary loss summed over layers
    reconstruction_loss: torch.Tensor | None = None  # LiquidEmbedding's
    compression_ratio: torch.Tensor | None = None  # (B,)
    experts_per_token: torch.Tensor | None = None  # mean over layers
    layer_experts_per_token: torch.Tensor | None = None  # (L,) per layer
    router_entropy: torch.Tensor | None = None  # (L,) per layer


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded positions of x (B, T, D); mask (B, T) is 1 for real tokens."""
    return x if mask is None else x * mask.unsqueeze(-1).to(x.dtype)


def dilated_conv(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    """The centred dilated convolution as one matrix product over K shifted copies of the sequence.

    ``y_t = b + sum_k W[:, :, k] h_{t + r (k - (K - 1) / 2)}`` with zeros outside the sequence: the same numbers
    as ``F.conv1d(h^T, W, b, padding=r (K - 1) / 2, dilation=r)^T`` (tests/test_encoder.py). At the default
    run's sizes (B*T of a few hundred rows, D = 128) one GEMM of (B*T, K*D) x (K*D, D) costs less than the oneDNN
    convolution on CPU: the training step is 1.03-1.04x faster with it (benchmarks/NOTES.md, #12).
    h (B, T, D_in), weight (D_out, D_in, K) as nn.Conv1d stores it -> (B, T, D_out).
    """
    kernel = weight.shape[-1]
    length = h.shape[1]
    left = dilation * (kernel - 1) // 2
    padded = F.pad(h, (0, 0, left, dilation * (kernel - 1) - left))  # (B, T + r (K - 1), D_in)
    shifted = torch.cat([padded[:, k * dilation: k * dilation + length] for k in range(kernel)], dim=-1)
    # shifted: (B, T, K * D_in), tap k in block k; the weight as (D_out, K * D_in) in the same order
    return F.linear(shifted, weight.permute(0, 2, 1).reshape(weight.shape[0], -1), bias)


class DilatedConvBlock(nn.Module):
    """x + W_o GELU(Conv1d_r(RMSNorm(x))), the convolution centred with dilation r; W_o starts at zero."""

    def __init__(self, config: LiquidConfig, dilation: int):
        super().__init__()
        self.norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.conv = nn.Conv1d(
            config.d_model, config.d_model, config.conv_kernel_size,
            dilation=dilation, padding=dilation * (config.conv_kernel_size - 1) // 2,
        )
        self.act = nn.GELU()
        self.proj = nn.Linear(config.d_model, config.d_model)
        setattr(self.proj, INIT_STD_ATTR, 0.0)  # W_o = 0, b_o = 0: the block is the identity at init
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = masked(self.norm(x), mask)  # padding must not leak through the kernel
        h = dilated_conv(h, self.conv.weight, self.conv.bias, self.conv.dilation[0])  # (B, T, D)
        return x + self.dropout(self.proj(self.act(h)))


class EncoderLayer(nn.Module):
    """Pre-norm block: x + LocalAttention(norm(x)), then x + MoE(norm(x))."""

    def __init__(self, config: LiquidConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.self_attn = EnhancedLocalAttention(
            config.d_model, config.num_heads, config.window_size, causal=False,
            overlap=config.attention_overlap, num_kv_heads=config.num_kv_heads,
            dropout=config.attention_dropout, rope_theta=config.rope_theta, qk_norm=config.qk_norm,
        )
        self.moe_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
        self.moe = build_moe(config, "encoder")
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, mask):
        x = x + self.dropout(self.self_attn(self.attn_norm(x), attention_mask=mask))
        moe = self.moe(self.moe_norm(x), mask=mask)
        return x + self.dropout(moe.hidden_states), moe


def build_embedding(config: LiquidConfig, causal: bool) -> LiquidEmbedding | PlainEmbedding:
    """`config.embedding_type`: "liquid" (LiquidEmbedding) or "plain" (the token table alone)."""
    if config.embedding_type == "plain":
        return PlainEmbedding(config.vocab_size, config.d_model, config.max_position_embeddings,
                              padding_idx=config.pad_token_id)
    return LiquidEmbedding(
        config.vocab_size, config.d_model, config.max_position_embeddings,
        base_compression_ratio=config.base_compression_ratio,
        min_compression_ratio=config.min_compression_ratio, causal=causal,
        kernel_size=config.embedding_kernel_size, fft_window=config.fft_window,
        padding_idx=config.pad_token_id,
    )


def build_moe(config: LiquidConfig, stack: str) -> MoELayer | DenseSwiGLU:
    """The feed-forward of one layer of `stack` ("encoder" or "decoder"): an MoELayer where `config.ffn_type`
    puts one ("moe", or "moe_<stack>"), else one dense SwiGLU of the MoE's active width top_k * d_ff."""
    if config.ffn_type not in ("moe", f"moe_{stack}"):
        return DenseSwiGLU(config.d_model, config.moe_top_k * config.d_ff)
    return MoELayer(
        config.d_model, config.d_ff, config.num_experts, top_k=config.moe_top_k, dynamic_k=config.dynamic_k,
        threshold=config.moe_threshold, load_balance_weight=config.load_balance_weight,
        z_loss_weight=config.z_loss_weight, gate_weights=config.moe_gate_weights,
    )


class BidirectionalEncoder(nn.Module):
    """Encodes the instruction; every position sees the whole (unpadded) input."""

    main_input_name = "input_ids"  # read by generate()

    def __init__(self, config: LiquidConfig):
        super().__init__()
        self.config = config
        self.embedding = build_embedding(config, causal=False)
        self.embedding_scale = config.embedding_scale
        self.convs = nn.ModuleList(DilatedConvBlock(config, 2**i) for i in range(config.conv_layers))
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)

    @property
    def receptive_field(self) -> int:
        """Positions one output of the convolution stack depends on: 1 + sum_l (K - 1) * 2^l."""
        return self.config.receptive_field

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> EncoderOutput:
        emb = self.embedding(input_ids, attention_mask)
        x = emb.embeddings  # (B, T, D)
        if self.embedding_scale != 1.0:
            x = x * self.embedding_scale
        for conv in self.convs:
            x = conv(x, attention_mask)
        aux, experts, entropy = [], [], []
        for layer in self.layers:
            x, moe = layer(x, attention_mask)
            aux.append(moe.aux_loss)
            experts.append(moe.experts_per_token)
            entropy.append(moe.router_entropy)
        x = masked(self.norm(x), attention_mask)
        return EncoderOutput(
            last_hidden_state=x,
            aux_loss=torch.stack(aux).sum() if aux else x.new_zeros(()),
            reconstruction_loss=emb.reconstruction_loss,
            compression_ratio=emb.compression_ratio,
            experts_per_token=torch.stack(experts).mean() if experts else None,
            layer_experts_per_token=torch.stack(experts) if experts else None,
            router_entropy=torch.stack(entropy) if entropy else None,
        )
