"""DenseSwiGLU: the dense feed-forward that replaces the MoE layer when `config.ffn_type == "dense"` (ablation).

    y = (silu(x W_g) * (x W_u)) W_d,   W_g, W_u: (D, F'), W_d: (F', D),   F' = moe_top_k * d_ff

F' is the most hidden width one MoE token can use (top_k experts of width d_ff), so the dense layer has the
MoE's *active* size. It returns an `MoEOutput` with zero auxiliary loss, so encoder and decoder layers treat
both alike.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from liquid.config import check_positive
from liquid.moe import MoEOutput, swiglu


class DenseSwiGLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        check_positive(d_model=d_model, d_ff=d_ff)
        self.w_gate = nn.Parameter(torch.empty(d_model, d_ff))
        self.w_up = nn.Parameter(torch.empty(d_model, d_ff))
        self.w_down = nn.Parameter(torch.empty(d_ff, d_model))
        for weight, fan_in in ((self.w_gate, d_model), (self.w_up, d_model), (self.w_down, d_ff)):
            nn.init.uniform_(weight, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> MoEOutput:
        """x (B, T, D) or (N, D); mask zeroes padded tokens (as the MoE leaves them unrouted)."""
        y = swiglu(x, self.w_gate, self.w_up, self.w_down)  # (..., D)
        if mask is not None:
            y = y * mask.unsqueeze(-1).to(y.dtype)
        zero = y.new_zeros(())
        return MoEOutput(hidden_states=y, aux_loss=zero, experts_per_token=y.new_ones(()), expert_load=y.new_ones(1),
                         router_logits=y.new_zeros(0, 1), router_entropy=zero)
