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
    (``forward``), or ``rotary.rotate_pair(q, k, start)`` for consecutive positions (what attention
    does), which reads the angles from a table kept as a plain attribute. There are no parameters and no
    buffers, so save/load and meta-device initialisation never touch them.
    """

    def __init__(self, head_dim: int, theta: float = DEFAULT_ROPE_THETA) -> None:
        super().__init__()
        check_rope(head_dim, theta)
        self.head_dim = head_dim
        self.theta = theta
        # (dtype, device) -> ([cos, cos], [-sin, sin]) at positions 0..n-1, each (n, dh); grown on demand.
        # A plain attribute, not a buffer: nothing is saved and a new device or dtype builds its own table.
        self._tables: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x`` (B, H, T, dh) by ``positions`` of shape (T,) or (B, T)."""
        self._check(x, positions)
        cos, sin = self._cos_sin(positions, x.dtype, x.device)
        return _apply(x, cos, sin)

    def rotate_pair(self, q: Tensor, k: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        """``(rope(q, p), rope(k, p))`` at positions ``p = start .. start + T - 1``.

        q (B, H, T, dh), k (B, Hkv, T, dh).
        The angles come from a table over positions 0..n-1, built once per (dtype, device) and grown to the
        next power of two when a later position is asked for; a row depends only on its own position, so
        it equals the row ``forward`` computes directly.
        """
        length = q.shape[-2]
        if k.shape[-2] != length or q.dtype != k.dtype or start < 0:
            positions = torch.arange(start, start + length, device=q.device)
            return self(q, positions), self(k, positions)
        for x in (q, k):
            if x.shape[-1] != self.head_dim:
                raise ValueError(f"expected head dim {self.head_dim}, got {x.shape[-1]}")
        key = (q.dtype, q.device)
        table = self._tables.get(key)
        end = start + length
        stale = table is not None and table[0].is_inference() and not torch.is_inference_mode_enabled()
        if table is None or stale or table[0].shape[0] < end:  # inference tensors cannot be saved for backward
            size = 1 << max(end - 1, 1).bit_length()  # >= end
            table = self._cos_sin(torch.arange(size, device=q.device), q.dtype, q.device)
            self._tables[key] = table
        cos, sin = table[0][start:end], table[1][start:end]  # (T, dh)
        return _apply(q, cos, sin), _apply(k, cos, sin)

    def _check(self, x: Tensor, positions: Tensor) -> None:
        if x.shape[-1] != self.head_dim:
            raise ValueError(f"expected head dim {self.head_dim}, got {x.shape[-1]}")
        if positions.dim() not in (1, 2) or positions.shape[-1] != x.shape[-2]:
            raise ValueError(f"positions must be (T,) or (B, T) with T={x.shape[-2]}, got {tuple(positions.shape)}")

    def _cos_sin(self, positions: Tensor, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """``[cos, cos]`` and ``[-sin, sin]`` of the angles, each (T, dh) or (B, 1, T, dh), in ``dtype``."""
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

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, theta={self.theta}"


def _apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``x * [cos, cos] + [x2, x1] * [-sin, sin] = [x1 cos - x2 sin, x2 cos + x1 sin]`` (exact: negation is exact)."""
    half = x.shape[-1] // 2
    swapped = torch.cat((x[..., half:], x[..., :half]), dim=-1)  # [x2, x1]
    return x * cos + swapped * sin
