"""LiquidEmbedding: token embedding + depthwise convolution + complexity-adaptive short-time FFT compression."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingOutput", "EmbeddingState", "LiquidEmbedding"]

ENERGY_EPS = 1e-8  # keeps reconstruction_loss finite when the conv signal is all zero
TINY_POWER = 1e-30  # denominator guard of the power distribution of an all-zero window
SEQ_DIM = 1  # sequence axis of (B, T, D) tensors


@dataclass
class EmbeddingOutput:
    """Output of LiquidEmbedding."""

    embeddings: Tensor  # (B, T, D), zero at padded positions
    compression_ratio: Tensor  # (B,) mean C_ratio (share of the spectrum discarded) over real positions
    reconstruction_loss: Tensor  # scalar: share of the conv signal's energy the compression discarded


@dataclass
class EmbeddingState:
    """Decode-time state of the causal LiquidEmbedding (everything position t needs from the past).

    ``token_embeddings``: (B, kernel_size - 1, D) last token embeddings (the causal convolution's input history).
    ``conv_outputs``: (B, fft_window - 1, D) last convolution outputs (the causal FFT window's history).
    ``complexity_sum`` / ``complexity_count``: (B,) running sum and count of per-window complexities c_t.
    ``seen_tokens``: number of tokens processed so far. ``None`` tensors mean "no history" (zeros).
    """

    token_embeddings: Tensor | None = None
    conv_outputs: Tensor | None = None
    complexity_sum: Tensor | None = None
    complexity_count: Tensor | None = None
    seen_tokens: int = 0

    def reorder(self, beam_idx: torch.LongTensor) -> None:
        """Select batch rows (beam search)."""
        for name in ("token_embeddings", "conv_outputs", "complexity_sum", "complexity_count"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, beam_idx.to(value.device)))


def spectral_entropy(spectrum: Tensor) -> Tensor:
    """Normalised spectral entropy of windows: spectrum (..., D, F) complex -> (...) in [0, 1].

    ``P_f = mean_d |X_{d,f}|^2``, ``p_f = P_f / sum_f P_f``, ``c = -sum_f p_f log p_f / log F``.
    An all-zero window has c = 0.
    """
    power = spectrum.abs().square().mean(dim=-2)  # (..., F)
    probs = power / power.sum(dim=-1, keepdim=True).clamp_min(TINY_POWER)
    entropy = -torch.special.xlogy(probs, probs).sum(dim=-1)
    return (entropy / math.log(spectrum.shape[-1])).clamp(0.0, 1.0)


def _history(previous: Tensor | None, size: int, like: Tensor) -> Tensor:
    """Past rows (B, size, D): the stored ones, or zeros before the first token."""
    if previous is not None:
        return previous
    return like.new_zeros(like.shape[0], size, like.shape[-1])


def _last_rows(x: Tensor, size: int) -> Tensor:
    return x[:, x.shape[SEQ_DIM] - size :]  # (B, size, D); empty when size == 0


class LiquidEmbedding(nn.Module):
    """Token embedding whose convolved signal is compressed in frequency according to its complexity.

    With ``m_t = 1`` for real tokens and 0 for padding, K = ``kernel_size``, L = ``fft_window``, F = L // 2 + 1:

    1. ``e_t = m_t E[x_t]``   (the table ``self.token_embedding`` can be shared with the LM head)
    2. ``h_t = m_t * sum_k w_k * e_{t + k - K + 1}``   causal (left-padded), or centred when bidirectional;
       depthwise (one filter per channel), zero outside the sequence.
    3. ``X_t = rfft(h[window_t])`` over L positions, ``window_t = [t - L + 1, t]`` when causal,
       ``[t - L//2, t + L - L//2)`` when bidirectional; outside or padded positions count as zero.
    4. complexity of a window: normalised spectral entropy of the channel-averaged power,
       ``P_f = mean_d |X_{t,d,f}|^2``, ``p_f = P_f / sum P``, ``c_t = H(p) / log F`` in [0, 1]: a flat spectrum
       (high variability between neighbouring tokens) gives 1, a constant signal (all power at f = 0) gives 0.
       Sequence complexity: bidirectional ``c = mean_{real t} c_t`` (one value per sequence);
       causal ``c_{<=t} = mean_{real s <= t} c_s`` (a prefix mean, so no position looks ahead).
    5. ``C_ratio = max(base * (1 - c), min)`` is the share of the spectrum DISCARDED (more complex, more kept):
       keep the lowest ``k = ceil((1 - C_ratio) F)`` bins (hard mask, at least the f = 0 bin) and read the inverse
       transform at t's index n0 inside its window (L - 1 causal, L // 2 bidirectional):
       ``z_t = irfft(X_t * 1[f < k])[n0] = (1/L) sum_{f < k} a_f Re(X_{t,f} exp(2 pi i f n0 / L))``
       with ``a_f = 1`` for f = 0 and f = L/2, else 2 (only that one sample is computed).
    6. ``embeddings_t = e_t + z_t`` (residual: token identity is never lost), zero at padding;
       ``reconstruction_loss = sum_{real t} ||z_t - h_t||^2 / (sum_{real t} ||h_t||^2 + eps)``;
       ``compression_ratio = mean_{real t} C_ratio_t`` per sequence.

    Complexity (hence the bin count) is a non-differentiable statistic: it is computed from a detached spectrum.
    Gradients reach the table and the convolution through the kept spectrum and the residual.

    Causality (``causal=True``): the convolution, the window and the complexity only use positions <= t, so a
    change at position k never changes outputs before k. ``forward(new_ids, state=EmbeddingState())`` continues
    a sequence token by token (or in chunks) and equals the matching slice of the full causal forward; the
    returned loss and ratio then cover only the new tokens.
    ``max_length`` bounds the sequence length (ValueError beyond it); there is no absolute position table.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_length: int,
        base_compression_ratio: float = 0.5,
        min_compression_ratio: float = 0.1,
        causal: bool = False,
        kernel_size: int = 3,
        fft_window: int = 16,
        padding_idx: int | None = 0,
    ) -> None:
        super().__init__()
        if vocab_size < 1 or d_model < 1 or max_length < 1:
            raise ValueError(
                f"vocab_size, d_model and max_length must be >= 1, got {vocab_size}, {d_model}, {max_length}"
            )
        if not 0.0 <= min_compression_ratio <= base_compression_ratio <= 1.0:
            raise ValueError(
                "need 0 <= min_compression_ratio <= base_compression_ratio <= 1, got "
                f"min={min_compression_ratio}, base={base_compression_ratio}"
            )
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        if fft_window < 2:
            raise ValueError(f"fft_window must be >= 2 (at least two frequency bins), got {fft_window}")
        if padding_idx is not None and not 0 <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx must be in [0, {vocab_size}), got {padding_idx}")
        self.max_length = max_length
        self.base_compression_ratio = base_compression_ratio
        self.min_compression_ratio = min_compression_ratio
        self.causal = causal
        self.kernel_size = kernel_size
        self.fft_window = fft_window
        self.num_bins = fft_window // 2 + 1
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)  # depthwise, padding done by hand

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, state: EmbeddingState | None = None
    ) -> EmbeddingOutput:
        """input_ids (B, T), attention_mask (B, T) with 1 = real token. With ``state`` (causal only) the ids (and
        the mask, if given, for these new positions only) continue the sequence the state has seen; the state is
        updated in place."""
        batch, length = input_ids.shape
        self._validate(input_ids, attention_mask, state)
        if attention_mask is None:
            valid = torch.ones(batch, length, dtype=torch.bool, device=input_ids.device)
        else:
            valid = attention_mask.to(torch.bool)
        keep_rows = valid[..., None].to(self.token_embedding.weight.dtype)  # (B, T, 1)

        e = self.token_embedding(input_ids) * keep_rows  # (B, T, D)
        e_history = _history(state.token_embeddings if state is not None else None, self.kernel_size - 1, e)
        h = self._convolve(e, e_history) * keep_rows  # (B, T, D)
        h_history = _history(state.conv_outputs if state is not None else None, self.fft_window - 1, h)
        fft_dtype = torch.promote_types(h.dtype, torch.float32)  # FFTs need fp32 at least (bf16 training)
        spectrum = torch.fft.rfft(self._windows(h, h_history).to(fft_dtype), dim=-1)  # (B, T, D, F)

        window_complexity = spectral_entropy(spectrum.detach())  # (B, T)
        complexity = self._sequence_complexity(window_complexity, valid, state)  # (B, T)
        ratio = (self.base_compression_ratio * (1.0 - complexity)).clamp_min(self.min_compression_ratio)  # (B, T)
        z = self._compressed_sample(spectrum, ratio) * keep_rows.to(fft_dtype)  # (B, T, D), fp32 or fp64
        h_fft = h.to(fft_dtype)
        reconstruction_loss = (z - h_fft).square().sum() / (h_fft.square().sum() + ENERGY_EPS)
        valid_ratio = valid.to(ratio.dtype)
        compression_ratio = (ratio * valid_ratio).sum(SEQ_DIM) / valid_ratio.sum(SEQ_DIM).clamp_min(1.0)  # (B,)
        if state is not None:
            self._update_state(state, e_history, e, h_history, h, window_complexity, valid)
        return EmbeddingOutput(e + z.to(e.dtype), compression_ratio, reconstruction_loss)

    def _validate(self, input_ids: Tensor, attention_mask: Tensor | None, state: EmbeddingState | None) -> None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must match input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(attention_mask.shape)}")
        if state is not None and not self.causal:
            raise ValueError("the decode state is only defined for the causal embedding (causal=True)")
        end = input_ids.shape[SEQ_DIM] + (state.seen_tokens if state is not None else 0)
        if end > self.max_length:
            raise ValueError(f"sequence length {end} exceeds max_length={self.max_length}")

    def _convolve(self, e: Tensor, history: Tensor) -> Tensor:
        """Depthwise convolution: causal over [history, e], or centred with zero padding. (B, T, D) -> (B, T, D)."""
        if self.causal:
            signal = torch.cat((history, e), dim=SEQ_DIM).transpose(1, 2)  # (B, D, K - 1 + T)
        else:
            left = (self.kernel_size - 1) // 2
            signal = F.pad(e.transpose(1, 2), (left, self.kernel_size - 1 - left))  # (B, D, T + K - 1)
        return self.conv(signal).transpose(1, 2)  # (B, T, D)

    def _windows(self, h: Tensor, history: Tensor) -> Tensor:
        """Short-time windows of L positions around (bidirectional) or ending at (causal) each t: (B, T, D, L)."""
        if self.causal:
            padded = torch.cat((history, h), dim=SEQ_DIM)  # (B, L - 1 + T, D)
        else:
            left = self.fft_window // 2
            padded = F.pad(h, (0, 0, left, self.fft_window - 1 - left))  # (B, T + L - 1, D)
        return padded.unfold(SEQ_DIM, self.fft_window, 1)  # (B, T, D, L)

    def _sequence_complexity(self, window_complexity: Tensor, valid: Tensor, state: EmbeddingState | None) -> Tensor:
        """Bidirectional: mean c_t over real positions; causal: prefix mean over real s <= t. (B, T) -> (B, T)."""
        weights = valid.to(window_complexity.dtype)
        weighted = window_complexity * weights
        if not self.causal:
            mean = weighted.sum(SEQ_DIM, keepdim=True) / weights.sum(SEQ_DIM, keepdim=True).clamp_min(1.0)  # (B, 1)
            return mean.expand_as(window_complexity)
        prefix_sum, prefix_count = weighted.cumsum(SEQ_DIM), weights.cumsum(SEQ_DIM)  # (B, T)
        if state is not None and state.complexity_sum is not None:
            prefix_sum = prefix_sum + state.complexity_sum[:, None]
            prefix_count = prefix_count + state.complexity_count[:, None]
        return prefix_sum / prefix_count.clamp_min(1.0)

    def _compressed_sample(self, spectrum: Tensor, ratio: Tensor) -> Tensor:
        """Keep the lowest ceil((1 - C_ratio) F) bins and evaluate the inverse rfft at t's window index.

        spectrum (B, T, D, F) complex, ratio (B, T) -> z (B, T, D) real.
        """
        window, bins = self.fft_window, self.num_bins
        centre = window - 1 if self.causal else window // 2
        kept_bins = torch.ceil((1.0 - ratio) * bins).clamp(1, bins)  # (B, T)
        frequencies = torch.arange(bins, device=spectrum.device)
        kept = (frequencies < kept_bins[..., None]).to(spectrum.real.dtype)  # (B, T, F)
        hermitian = torch.full((bins,), 2.0, dtype=spectrum.real.dtype, device=spectrum.device)
        hermitian[0] = 1.0
        if window % 2 == 0:
            hermitian[-1] = 1.0  # the Nyquist bin appears once
        phase = torch.polar(hermitian / window, 2 * math.pi * frequencies.to(hermitian.dtype) * centre / window)  # (F,)
        weights = kept.to(spectrum.dtype) * phase  # (B, T, F)
        return torch.einsum("btdf,btf->btd", spectrum, weights).real  # (B, T, D)

    def _update_state(
        self, state: EmbeddingState, e_history: Tensor, e: Tensor, h_history: Tensor, h: Tensor,
        window_complexity: Tensor, valid: Tensor,
    ) -> None:
        state.token_embeddings = _last_rows(torch.cat((e_history, e), dim=SEQ_DIM), self.kernel_size - 1)
        state.conv_outputs = _last_rows(torch.cat((h_history, h), dim=SEQ_DIM), self.fft_window - 1)
        weights = valid.to(window_complexity.dtype)
        added_sum, added_count = (window_complexity * weights).sum(SEQ_DIM), weights.sum(SEQ_DIM)  # (B,)
        if state.complexity_sum is None:
            state.complexity_sum, state.complexity_count = added_sum, added_count
        else:
            state.complexity_sum = state.complexity_sum + added_sum
            state.complexity_count = state.complexity_count + added_count
        state.seen_tokens += e.shape[SEQ_DIM]
