"""Rotary position embedding (RoPE, Su et al. 2021) with absolute positions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from liquid.config import check_rope

DEFAULT_ROPE_THETA = 10000.0


class RotaryEmbedding(nn.Module):
    """Rotary position embedding in the "rotate half" layout (GPT-NeoX / LLaMA).

    The head dimension is split into halves ``x = [x1, x2]`` (each ``dh / 2``); pair ``m`` is rotated by
    the angle ``p * theta^(-2m / dh)`` for a token at absolute position ``p``:

        rope(x, p) = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]

    so that ``rope(q, i) . rope(k, j)`` depends on ``i - j`` only. Call it as ``rotary(x, positions)``
    (``forward``). There are no parameters and no buffers: frequencies are computed on the fly, so
    save/load and meta-device initialisation never touch them.
    """

    def __init__(self, head_dim: int, theta: float = DEFAULT_ROPE_THETA) -> None:
        super().__init__()
        check_rope(head_dim, theta)
        self.head_dim = head_dim
        self.theta = theta

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x`` (B, H, T, dh) by ``positions`` of shape (T,) or (B, T)."""
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"expected head dim {self.head_dim}, got {x.shape[-1]}")
        if positions.dim() not in (1, 2) or positions.shape[-1] != x.shape[-2]:
            raise ValueError(f"positions must be (T,) or (B, T) with T={x.shape[-2]}, got {tuple(positions.shape)}")
        # Angles in at least fp32 (fp64 stays fp64) so bf16 activations do not lose positional precision.
        compute_dtype = torch.promote_types(x.dtype, torch.float32)
        half = self.head_dim // 2
        exponents = torch.arange(half, device=x.device, dtype=compute_dtype) * 2 / self.head_dim
        inv_freq = self.theta ** (-exponents)  # (dh/2,)
        angles = positions.to(compute_dtype)[..., None] * inv_freq  # (T, dh/2) or (B, T, dh/2)
        if angles.dim() == 3:
            angles = angles[:, None]  # (B, 1, T, dh/2): broadcast over heads
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, theta={self.theta}"
