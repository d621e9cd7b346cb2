"""Local (windowed) self-attention with a rolling decode cache, and full cross-attention.

Both use ``torch.nn.functional.scaled_dot_product_attention`` (SDPA) with grouped-query attention
(``enable_gqa``) when ``num_kv_heads < num_heads``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid.rope import DEFAULT_ROPE_THETA, RotaryEmbedding

logger = logging.getLogger(__name__)

__all__ = ["CrossAttention", "EnhancedLocalAttention", "LocalKVCache", "RotaryEmbedding"]

SEQ_DIM = 2  # sequence axis of (B, H, T, dh) tensors


def _window_mask(q_pos: Tensor, k_pos: Tensor, window_size: int, causal: bool, overlap: bool) -> Tensor:
    """Boolean "query at q_pos may see key at k_pos" (broadcasting) from the window definitions.

    overlap=True:  causal ``i - W < j <= i``; bidirectional ``|i - j| <= W // 2``.
    overlap=False: same block ``i // W == j // W`` (and ``j <= i`` when causal).
    """
    offset = q_pos - k_pos  # i - j
    if overlap:
        if causal:
            return (offset >= 0) & (offset < window_size)
        return offset.abs() <= window_size // 2
    same_block = torch.div(q_pos, window_size, rounding_mode="floor") == torch.div(
        k_pos, window_size, rounding_mode="floor"
    )
    return same_block & (offset >= 0) if causal else same_block


def _allow_empty_rows(mask: Tensor) -> Tensor:
    """Let rows that see no key see every key, so softmax stays finite (their outputs are discarded)."""
    return mask | ~mask.any(dim=-1, keepdim=True)


def _neighbour_blocks(blocks: Tensor, block_dim: int, before: int, after: int, pad_value: float = 0) -> Tensor:
    """Concatenate each block with its ``before`` previous and ``after`` next blocks.

    ``blocks`` has the block index at ``block_dim`` and the within-block position at ``block_dim + 1``,
    e.g. (B, H, nb, W, dh) with block_dim=2 -> (B, H, nb, (before + 1 + after) * W, dh).
    Neighbours beyond either end are filled with ``pad_value``.
    """
    if before == 0 and after == 0:
        return blocks
    num_blocks = blocks.shape[block_dim]
    trailing_dims = blocks.dim() - 1 - block_dim
    padded = F.pad(blocks, (0, 0) * trailing_dims + (before, after), value=pad_value)  # nb -> before + nb + after
    shifted = [padded.narrow(block_dim, start, num_blocks) for start in range(before + after + 1)]
    return torch.cat(shifted, dim=block_dim + 1)


@dataclass
class LocalKVCache:
    """Rolling self-attention cache for one causal layer: keeps at most window_size - 1 past positions (O(W) memory).

    ``key`` / ``value``: (B, Hkv, S, dh) with S <= W - 1; keys are stored after the rotary embedding.
    ``seen_tokens``: absolute position of the next token.
    """

    key: Tensor | None = None
    value: Tensor | None = None
    seen_tokens: int = 0

    def reorder(self, beam_idx: torch.LongTensor) -> None:
        """Select batch rows (beam search): ``key <- key[beam_idx]``, same for ``value``."""
        if self.key is not None:
            self.key = self.key.index_select(0, beam_idx.to(self.key.device))
            self.value = self.value.index_select(0, beam_idx.to(self.value.device))


def _validate_heads(d_model: int, num_heads: int, num_kv_heads: int, dropout: float) -> None:
    if d_model < 1 or num_heads < 1:
        raise ValueError(f"d_model and num_heads must be >= 1, got d_model={d_model}, num_heads={num_heads}")
    if d_model % num_heads != 0:
        raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
    if num_kv_heads < 1 or num_heads % num_kv_heads != 0:
        raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads}) >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


class _MultiHeadProjections(nn.Module):
    """Query/key/value/output projections shared by the attention modules (GQA-aware)."""

    def __init__(
        self, d_model: int, num_heads: int, num_kv_heads: int | None, dropout: float, bias: bool, qk_norm: bool = False
    ) -> None:
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        _validate_heads(d_model, num_heads, num_kv_heads, dropout)
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(num_heads * self.head_dim, d_model, bias=bias)
        # QK-norm: RMSNorm over each head's query and key (one gain of size dh each), so that the logits
        # q.k / sqrt(dh) stay bounded by sqrt(dh) * gain^2 however large the projections grow.
        self.q_norm = nn.RMSNorm(self.head_dim) if qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim) if qk_norm else None

    @property
    def use_gqa(self) -> bool:
        return self.num_kv_heads != self.num_heads

    def _dropout_p(self) -> float:
        return self.dropout if self.training else 0.0

    def _split_heads(self, x: Tensor, num_heads: int) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, num_heads, self.head_dim).transpose(1, 2)  # (B, h, T, dh)

    def _queries(self, x: Tensor) -> Tensor:
        q = self._split_heads(self.q_proj(x), self.num_heads)  # (B, H, T, dh)
        return q if self.q_norm is None else self.q_norm(q)

    def _keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self._split_heads(self.k_proj(x), self.num_kv_heads)  # (B, Hkv, T, dh)
        if self.k_norm is not None:
            k = self.k_norm(k)
        v = self._split_heads(self.v_proj(x), self.num_kv_heads)  # (B, Hkv, T, dh)
        return k, v

    def _merge_heads(self, heads: Tensor) -> Tensor:
        batch, _, length, _ = heads.shape
        merged = heads.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)  # (B, T, H*dh)
        return self.o_proj(merged)  # (B, T, D)


class EnhancedLocalAttention(_MultiHeadProjections):
    """Multi-head self-attention restricted to a local window of W positions.

    ``A_ij = Q_i K_j^T / sqrt(d_k)`` only for keys j inside query i's window, ``out_i = sum_j softmax_j(A_ij) V_j``:

    * ``overlap=True``:  causal ``i - W < j <= i`` (W keys including itself); bidirectional ``|i - j| <= W // 2``.
    * ``overlap=False``: only keys in the query's own block ``[bW, (b+1)W)``; causal adds ``j <= i``.

    RoPE (absolute positions) is applied to Q and K; with ``qk_norm`` each head's Q and K are first RMS-normalised,
    ``Q <- g_q * Q / rms(Q)``, ``K <- g_k * K / rms(K)`` (learned gains of size d_k). ``attention_mask`` (B, T) marks real tokens with 1;
    padded keys are never attended to, and outputs at padded query positions are zero.

    Short sequences (T <= 2W with overlap, T <= W without) take one SDPA call over all T keys with the
    (T, T) band mask (``is_causal`` when it is just the causal mask): no padding to blocks, no gathering.
    Longer ones keep memory linear in T: the sequence is cut into blocks of W (T padded up to a multiple), and each
    query block attends through SDPA to the concatenation of its own block and the neighbours the window
    can reach (causal overlap: previous + own; bidirectional overlap: previous + own + next; no overlap:
    own), with a per-block band mask combined with the key padding mask. No (T x T) tensor is formed there.

    Decoding (causal only): ``forward(x_new, cache=LocalKVCache())`` attends to the cached W - 1 past
    keys plus the new ones and rolls the cache, so decode memory is O(W).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        window_size: int,
        causal: bool = False,
        overlap: bool = True,
        num_kv_heads: int | None = None,
        dropout: float = 0.0,
        rope: bool = True,
        rope_theta: float = DEFAULT_ROPE_THETA,
        bias: bool = False,
        qk_norm: bool = False,
    ) -> None:
        super().__init__(d_model, num_heads, num_kv_heads, dropout, bias, qk_norm)
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if rope and self.head_dim % 2 != 0:
            raise ValueError(f"rope needs an even head dim, got d_model / num_heads = {self.head_dim}")
        self.window_size = window_size
        self.causal = causal
        self.overlap = overlap
        self.rotary = RotaryEmbedding(self.head_dim, rope_theta) if rope else None
        self._band_cache: dict[tuple[int, torch.device], Tensor | None] = {}  # not state: rebuilt on demand

    def _rotate(self, q: Tensor, k: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """RoPE at positions start .. start + T - 1."""
        if self.rotary is None:
            return q, k
        return self.rotary.rotate_pair(q, k, start)

    def forward(self, x: Tensor, attention_mask: Tensor | None = None, cache: LocalKVCache | None = None) -> Tensor:
        """x (B, T, D) -> (B, T, D). With ``cache`` (causal only), x holds the new tokens and the cache is updated."""
        if cache is not None:
            if attention_mask is not None:
                raise ValueError("the cache path takes unpadded inputs: pass attention_mask=None with a cache")
            return self._forward_cached(x, cache)
        batch, length, _ = x.shape
        if attention_mask is not None and attention_mask.shape != (batch, length):
            raise ValueError(f"attention_mask must be (B, T) = {(batch, length)}, got {tuple(attention_mask.shape)}")
        q = self._queries(x)  # (B, H, T, dh)
        k, v = self._keys_values(x)  # (B, Hkv, T, dh)
        q, k = self._rotate(q, k, 0)
        valid = None if attention_mask is None else attention_mask.to(torch.bool)  # (B, T)
        if self._short_path(length):
            heads = self._full_band_attention(q, k, v, valid)
        else:
            if valid is None:
                valid = torch.ones(batch, length, dtype=torch.bool, device=x.device)
            heads = self._blocked_attention(q, k, v, valid)
        out = self._merge_heads(heads)  # (B, T, D)
        if valid is None:
            return out
        return out * valid[..., None].to(out.dtype)

    def _short_path(self, length: int) -> bool:
        """Whether one (T x T) band-masked SDPA call costs no more than the blocked path.

        Overlapping windows: the blocked path pads T up to nb * W and scores W x (2W or 3W) per block, at
        least T^2 whenever T <= 2W. Disjoint blocks: only when T <= W (a single block).
        """
        return length <= (2 * self.window_size if self.overlap else self.window_size)

    def _band(self, length: int, device: torch.device) -> Tensor | None:
        """(T, T) window mask for positions 0..T-1, cached per (T, device); None when every pair is allowed."""
        if self._band_is_full(length):  # decided in Python: no tensor-to-bool sync (a graph break under compile)
            return None
        key = (length, device)
        if key not in self._band_cache:
            positions = torch.arange(length, device=device)
            self._band_cache[key] = _window_mask(positions[:, None], positions[None, :], self.window_size,
                                                 self.causal, self.overlap)
        return self._band_cache[key]

    def _band_is_full(self, length: int) -> bool:
        """Whether the window lets every position 0..T-1 see every other (then no mask is needed): one position
        when causal; otherwise T - 1 <= W // 2 with overlapping windows, T <= W (one block) with disjoint ones."""
        if self.causal or length <= 1:
            return length <= 1
        return length - 1 <= self.window_size // 2 if self.overlap else length <= self.window_size

    def _full_band_attention(self, q: Tensor, k: Tensor, v: Tensor, valid: Tensor | None) -> Tensor:
        """Short sequences: one SDPA call over all T keys with the (T, T) band mask (and key padding).

        Same result as the blocked path; used only when T is at most a couple of windows, so the (T, T)
        mask is no larger than the blocked path's masks. q (B, H, T, dh), k/v (B, Hkv, T, dh) -> (B, H, T, dh).
        """
        length = q.shape[SEQ_DIM]
        band = self._band(length, q.device)  # (T, T) or None
        is_causal = False
        if valid is None:
            # causal with T <= W (one window, one block) is exactly the causal mask: SDPA's is_causal
            if self.causal and length <= self.window_size:
                mask, is_causal = None, True
            else:
                mask = band
        else:
            key_valid = valid[:, None, None, :]  # (B, 1, 1, T)
            mask = _allow_empty_rows(key_valid if band is None else band & key_valid)  # (B, 1, 1 or T, T)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self._dropout_p(), is_causal=is_causal, enable_gqa=self.use_gqa
        )  # (B, H, T, dh)

    def _blocked_attention(self, q: Tensor, k: Tensor, v: Tensor, valid: Tensor) -> Tensor:
        """Windowed attention in blocks of W. q (B, H, T, dh), k/v (B, Hkv, T, dh), valid (B, T) -> (B, H, T, dh)."""
        batch, num_heads, length, head_dim = q.shape
        num_kv_heads = k.shape[1]
        block = min(self.window_size, length)  # one block when T <= W
        num_blocks = math.ceil(length / block)
        padded_length = num_blocks * block
        reaches_neighbours = self.overlap and num_blocks > 1
        before = 1 if reaches_neighbours else 0
        after = 1 if reaches_neighbours and not self.causal else 0

        extra = padded_length - length
        q, k, v = (F.pad(t, (0, 0, 0, extra)) for t in (q, k, v))  # (B, h, Tp, dh)
        valid = F.pad(valid, (0, extra), value=False)  # (B, Tp)

        q_blocks = q.view(batch, num_heads, num_blocks, block, head_dim)  # (B, H, nb, W, dh)
        k_ctx = _neighbour_blocks(k.view(batch, num_kv_heads, num_blocks, block, head_dim), 2, before, after)
        v_ctx = _neighbour_blocks(v.view(batch, num_kv_heads, num_blocks, block, head_dim), 2, before, after)
        # k_ctx, v_ctx: (B, Hkv, nb, C, dh) with C = (before + 1 + after) * W
        key_valid = _neighbour_blocks(valid.view(batch, num_blocks, block), 1, before, after, pad_value=False)
        # key_valid: (B, nb, C)

        positions = torch.arange(padded_length, device=q.device).view(num_blocks, block)  # (nb, W)
        context = (before + 1 + after) * block
        k_positions = positions[:, :1] - before * block + torch.arange(context, device=q.device)  # (nb, C)
        band = _window_mask(positions[:, :, None], k_positions[:, None, :], self.window_size, self.causal, self.overlap)
        mask = _allow_empty_rows(band[None] & key_valid[:, :, None, :])  # (B, nb, W, C)

        out = F.scaled_dot_product_attention(
            q_blocks.transpose(1, 2).reshape(batch * num_blocks, num_heads, block, head_dim),  # (B*nb, H, W, dh)
            k_ctx.transpose(1, 2).reshape(batch * num_blocks, num_kv_heads, context, head_dim),  # (B*nb, Hkv, C, dh)
            v_ctx.transpose(1, 2).reshape(batch * num_blocks, num_kv_heads, context, head_dim),  # (B*nb, Hkv, C, dh)
            attn_mask=mask.reshape(batch * num_blocks, 1, block, context),  # (B*nb, 1, W, C)
            dropout_p=self._dropout_p(),
            enable_gqa=self.use_gqa,
        )  # (B*nb, H, W, dh)
        out = out.view(batch, num_blocks, num_heads, block, head_dim).transpose(1, 2)  # (B, H, nb, W, dh)
        return out.reshape(batch, num_heads, padded_length, head_dim)[:, :, :length]  # (B, H, T, dh)

    def _forward_cached(self, x: Tensor, cache: LocalKVCache) -> Tensor:
        """Incremental causal attention over [cached keys, new keys]; processes new tokens in chunks of W."""
        if not self.causal:
            raise ValueError("the KV cache path is only defined for causal attention (causal=True)")
        length = x.shape[1]
        start = cache.seen_tokens
        q = self._queries(x)  # (B, H, t, dh)
        k, v = self._keys_values(x)  # (B, Hkv, t, dh)
        q, k = self._rotate(q, k, start)
        # Chunks of at most W new tokens keep every score matrix at most W x (2W - 1): memory O(W) per chunk.
        outputs = []
        for lo in range(0, length, self.window_size):
            chunk = slice(lo, lo + self.window_size)
            outputs.append(self._attend_with_cache(q[:, :, chunk], k[:, :, chunk], v[:, :, chunk], cache))
        return self._merge_heads(torch.cat(outputs, dim=SEQ_DIM))  # (B, t, D)

    def _attend_with_cache(self, q: Tensor, k: Tensor, v: Tensor, cache: LocalKVCache) -> Tensor:
        """q (B, H, c, dh), k/v (B, Hkv, c, dh) at positions seen_tokens.. ; updates ``cache`` in place."""
        if cache.key is not None:
            k = torch.cat((cache.key, k), dim=SEQ_DIM)  # (B, Hkv, S + c, dh)
            v = torch.cat((cache.value, v), dim=SEQ_DIM)
        new, total = q.shape[SEQ_DIM], k.shape[SEQ_DIM]
        end = cache.seen_tokens + new
        if self.overlap and new == 1:
            mask = None  # one query sees its W - 1 predecessors, exactly what the cache keeps
        else:
            q_positions = torch.arange(end - new, end, device=q.device)
            k_positions = torch.arange(end - total, end, device=q.device)
            mask = _window_mask(q_positions[:, None], k_positions[None, :], self.window_size, True, self.overlap)
            # mask: (c, S + c)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self._dropout_p(), enable_gqa=self.use_gqa
        )  # (B, H, c, dh)
        keep = min(total, self.window_size - 1)
        cache.key = k[:, :, total - keep :]  # (B, Hkv, <= W - 1, dh)
        cache.value = v[:, :, total - keep :]
        cache.seen_tokens = end
        return out

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, causal={self.causal}, overlap={self.overlap}"


class CrossAttention(_MultiHeadProjections):
    """Full attention from decoder queries to all encoder states (no RoPE): softmax(Q K^T / sqrt(dk) + mask) V.

    ``encoder_mask`` (B, S) marks real encoder tokens with 1; padded encoder states get weight 0.
    ``project_memory(encoder_states, encoder_mask)`` returns the (k, v) projections and the prepared key mask once,
    so the decoder can cache them and pass ``memory=(k, v, key_mask)`` at every decoding step.
    """

    def __init__(
        self, d_model: int, num_heads: int, num_kv_heads: int | None = None, dropout: float = 0.0, bias: bool = False,
        qk_norm: bool = False,
    ) -> None:
        super().__init__(d_model, num_heads, num_kv_heads, dropout, bias, qk_norm)

    def project_memory(self, encoder_states: Tensor,
                       encoder_mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """encoder_states (B, S, D) -> (k, v, key_mask): k, v (B, Hkv, S, dh); key_mask (B, 1, 1, S) bool, or None
        without an encoder_mask."""
        k, v = self._keys_values(encoder_states)
        return k, v, self._key_mask(encoder_mask, k)

    @staticmethod
    def _key_mask(encoder_mask: Tensor | None, k: Tensor) -> Tensor | None:
        """(B, S) 1 = real -> (B, 1, 1, S) bool for SDPA (a row with no real key sees every key: finite softmax)."""
        if encoder_mask is None:
            return None
        if encoder_mask.shape != (k.shape[0], k.shape[SEQ_DIM]):
            raise ValueError(f"encoder_mask must be (B, S) = {(k.shape[0], k.shape[SEQ_DIM])}, "
                             f"got {tuple(encoder_mask.shape)}")
        return _allow_empty_rows(encoder_mask.to(torch.bool))[:, None, None, :]  # (B, 1, 1, S)

    def forward(
        self,
        x: Tensor,
        encoder_states: Tensor | None = None,
        encoder_mask: Tensor | None = None,
        memory: tuple[Tensor, Tensor, Tensor | None] | None = None,
    ) -> Tensor:
        """x (B, T, D) queries; keys/values (and key mask) from ``memory`` if given, else from ``encoder_states``
        and ``encoder_mask``. -> (B, T, D)."""
        if memory is None:
            if encoder_states is None:
                raise ValueError("CrossAttention needs encoder_states or memory=(k, v, key_mask)")
            memory = self.project_memory(encoder_states, encoder_mask)
        k, v, mask = memory  # (B, Hkv, S, dh) x 2, (B, 1, 1, S) or None
        if mask is None:
            mask = self._key_mask(encoder_mask, k)
        out = F.scaled_dot_product_attention(
            self._queries(x),  # (B, H, T, dh)
            k,
            v,
            attn_mask=mask,
            dropout_p=self._dropout_p(),
            enable_gqa=self.use_gqa,
        )  # (B, H, T, dh)
        return self._merge_heads(out)
