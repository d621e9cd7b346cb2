"""Rotary position embedding (RoPE, Su et al. 2021) with absolute positions."""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

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
        if head_dim < 2 or head_dim % 2 != 0:
            raise ValueError(f"RotaryEmbedding needs an even head_dim >= 2, got {head_dim}")
        if theta <= 0:
            raise ValueError(f"RotaryEmbedding needs theta > 0, got {theta}")
        self.head_dim = head_dim
        self.theta = theta

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x`` (B, H, T, dh) by ``positions`` of shape (T,) or (B, T)."""
        self._check(x, positions)
        cos, sin = self._cos_sin(positions, x.dtype, x.device)
        return _apply(x, cos, sin)

    def rotate_pair(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``(rope(q, positions), rope(k, positions))`` with the angles computed once for both."""
        self._check(q, positions)
        self._check(k, positions)
        if q.dtype != k.dtype:
            return self(q, positions), self(k, positions)
        cos, sin = self._cos_sin(positions, q.dtype, q.device)
        return _apply(q, cos, sin), _apply(k, cos, sin)

    def _check(self, x: Tensor, positions: Tensor) -> None:
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"expected head dim {self.head_dim}, got {x.shape[-1]}")
        if positions.dim() not in (1, 2) or positions.shape[-1] != x.shape[-2]:
            raise ValueError(f"positions must be (T,) or (B, T) with T={x.shape[-2]}, got {tuple(positions.shape)}")

    def _cos_sin(self, positions: Tensor, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """``[cos, cos]`` and ``[-sin, sin]`` of the angles, each (T, dh) or (B, 1, T, dh), in ``dtype``.

        Elementwise in the positions, so the result does not depend on how many positions are asked for.
        """
        # Angles in at least fp32 (fp64 stays fp64) so bf16 activations do not lose positional precision.
        compute_dtype = torch.promote_types(dtype, torch.float32)
        half = self.head_dim // 2
        exponents = torch.arange(half, device=device, dtype=compute_dtype) * 2 / self.head_dim
        inv_freq = self.theta ** (-exponents)  # (dh/2,)
        angles = positions.to(device=device, dtype=compute_dtype)[..., None] * inv_freq  # (..., T, dh/2)
        if angles.dim() == 3:
            angles = angles[:, None]  # (B, 1, T, dh/2): broadcast over heads
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        return torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)


def _apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``x * [cos, cos] + [x2, x1] * [-sin, sin] = [x1 cos - x2 sin, x2 cos + x1 sin]`` (exact: negation is exact)."""
    half = x.shape[-1] // 2
    swapped = torch.cat((x[..., half:], x[..., :half]), dim=-1)  # [x2, x1]
    return x * cos + swapped * sin

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, theta={self.theta}"
