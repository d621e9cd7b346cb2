"""LiquidEmbedding: token embedding + depthwise convolution + complexity-adaptive short-time FFT low-pass.

`PlainEmbedding` (the token table alone, same interface) replaces it when `config.embedding_type == "plain"`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid.config import INIT_STD_ATTR, check_compression_ratios, check_positive

__all__ = ["CONV_INIT_GAIN", "EmbeddingOutput", "EmbeddingState", "LiquidEmbedding", "PlainEmbedding"]

ENERGY_EPS = 1e-8  # keeps reconstruction_loss finite when the conv signal is all zero
POWER_FLOOR = 1e-12  # added to every bin's power: an all-zero window reads as flat (c = 1), gradients stay finite
FFT_PADDING = 2  # the (implicit) FFT length is 2 L: L + 1 bins, and the inverse never wraps (class docstring)
# Up to this many positions the window sums (steps 4 and 5) run as banded (T, T + L - 1) matrix products, a handful
# of ops forward and backward; beyond it as L shifted products, whose cost grows with T instead of T^2
# (benchmarks/bench_embedding.py).
BAND_MATMUL_MAX_LENGTH = 256
# ||h|| ~ CONV_INIT_GAIN ||e|| at init (depthwise taps ~ N(0, gain^2 / K)), so the compressed signal is a
# visible part of the output from step 0 (with std 0.02 it was 3% of it).
CONV_INIT_GAIN = 0.5


@dataclass
class EmbeddingOutput:
    """Output of LiquidEmbedding."""

    embeddings: Tensor  # (B, T, D), zero at padded positions
    compression_ratio: Tensor  # (B,) mean C_ratio (share of the frequency bins discarded) over real positions
    reconstruction_loss: Tensor  # scalar: share of the conv signal's energy the compression discarded
    complexity: Tensor | None = None  # (B, T) the complexity each position's cut-off follows (differentiable)


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


def spectral_entropy(power: Tensor) -> Tensor:
    """Normalised spectral entropy from channel-averaged power (..., F) -> (...) in [0, 1], differentiable.

    ``P_f = max(power_f, 0) + floor``, ``p_f = P_f / sum_f P_f``, ``c = -sum_f p_f log p_f / log F``. Power from
    lag products (`_window_power`) is >= 0 in exact arithmetic but can round to about -1e-9 at a silent bin,
    which would make log p_f NaN: hence the max.
    """
    power = power.clamp_min(0.0) + POWER_FLOOR
    probs = power / power.sum(dim=-1, keepdim=True)
    entropy = -(probs * probs.log()).sum(dim=-1)
    return (entropy / math.log(power.shape[-1])).clamp(0.0, 1.0)


def _history(previous: Tensor | None, size: int, like: Tensor) -> Tensor:
    """Past rows (B, size, D): the stored ones, or zeros before the first token."""
    if previous is not None:
        return previous
    return like.new_zeros(like.shape[0], size, like.shape[-1])


def _last_rows(x: Tensor, size: int) -> Tensor:
    return x[:, x.shape[1] - size :]  # (B, size, D); empty when size == 0


def _band_matrix(taps: Tensor, width: int) -> Tensor:
    """``A[b, t, t + l] = taps[b, t, l]`` and 0 elsewhere: (B, T, L) -> (B, T, width), width = T + L - 1.

    Each row, padded to width + 1 and laid end to end, starts one column further right than the row before when the
    buffer is read back in rows of `width`: the skew of a banded matrix, built from pad, reshape and slice alone.
    """
    batch, length, window = taps.shape
    flat = F.pad(taps, (0, width + 1 - window)).reshape(batch, length * (width + 1))
    return flat[:, : length * width].reshape(batch, length, width)


def _band_rows(square: Tensor, band: int) -> Tensor:
    """``R[b, s, k] = square[b, s, s + k]`` for k < band: (B, N, N) -> (B, N, band) (the inverse skew of
    `_band_matrix`). Entries with s + k >= N read the next row's start and are not meaningful; callers sum only
    pairs that lie inside the matrix."""
    batch, size, _ = square.shape
    flat = F.pad(square.reshape(batch, size * size), (0, size))
    return flat.reshape(batch, size, size + 1)[:, :, :band]


class LiquidEmbedding(nn.Module):
    """Token embedding whose convolved signal is low-passed with a cut-off set by its complexity.

    With ``m_t = 1`` for real tokens and 0 for padding, K = ``kernel_size``, L = ``fft_window``, the FFT length
    N = 2 L (zero padding), F = N // 2 + 1 = L + 1 bins, t's index in its window n0 = L - 1 (causal) or L // 2
    (bidirectional), and R = the largest distance from n0 inside the window (L - 1 causal, L // 2 bidirectional):

    1. ``e_t = m_t E[x_t]``   (the table ``self.token_embedding`` can be shared with the LM head)
    2. ``h_t = m_t * sum_k w_k * e_{t + k - K + 1}``   causal (left-padded), or centred when bidirectional;
       depthwise (one filter per channel), zero outside the sequence. Taps start ~ N(0, CONV_INIT_GAIN^2 / K).
    3. ``u_{t,l} = g_l h_{t - n0 + l}`` for l = 0..L-1 with the taper ``g_l = cos^2(pi (l - n0) / (2 (R + 1)))``
       (1 at t, near 0 at the window's far end); outside or padded positions count as zero.
       ``X_t = rfft(u_t, n=N)``: zero-padded, so reading the inverse transform at n0 below is a linear filter
       ``z_t = sum_l u_{t,l} k_t(|n0 - l|)`` with |n0 - l| <= R < N / 2: it never wraps around to the window's
       other end (with N = L, a causal low-pass weighed h_{t-L+1} like h_{t-1}).
    4. complexity of a window: normalised spectral entropy of the channel-averaged power of the plain window's
       spectrum ``Y_t = rfft(h[t - n0 .. t - n0 + L - 1])`` (L points, F' = L // 2 + 1 bins, no taper or padding,
       which would smear even a constant signal over several bins):
       ``P_f = mean_d |Y_{t,d,f}|^2 + floor``, ``p_f = P_f / sum P``, ``c_t = H(p) / log F'`` in [0, 1]: a flat
       spectrum (high variability between neighbouring tokens) gives 1, a constant signal (all power at f = 0) 0.
       Sequence complexity: bidirectional ``cbar_t = mean_{real s} c_s`` (one value per sequence);
       causal ``cbar_t = mean_{real s <= t} c_s`` (a prefix mean, so no position looks ahead).
    5. ``C_t = max(base * (1 - cbar_t), min)``; kept bins ``k_t = max((1 - C_t) F, 1)``; the mask is the
       fractional ramp ``M_{t,f} = clamp(k_t - f, 0, 1)`` (bins below floor(k_t) kept, bin floor(k_t) kept in
       part), so ``sum_f M_{t,f} = k_t`` and the reported ``C_ratio_t = 1 - k_t / F`` is exactly the share of the
       F bins discarded, continuous in cbar_t. Only t's sample of the inverse transform is computed:
       ``z_t = irfft(X_t * M_t, n=N)[n0] = (1/N) sum_f a_f M_{t,f} Re(X_{t,f} exp(2 pi i f n0 / N))``,
       ``a_f = 1`` for f = 0 and f = N/2, else 2. With every bin kept, ``z_t = g_{n0} h_t = h_t``.
    6. ``embeddings_t = e_t + z_t`` (residual: token identity is never lost), zero at padding;
       ``reconstruction_loss = sum_{real t} ||z_t - h_t||^2 / (sum_{real t} ||h_t||^2 + eps)``;
       ``compression_ratio = mean_{real t} C_ratio_t`` per sequence.

    Implementation: no transform of a (D, L) window is ever formed. Step 5 is linear in the window with
    coefficients shared by the D channels, ``z_t = sum_l K_{t,l} h_{t - n0 + l}``, ``K_t = M_t S`` (S: the
    (F, L) synthesis matrix, taper included), applied as L shifted multiply-adds; step 4's channel-averaged
    power is a cosine transform of the window's lagged products ``mean_d h_{s,d} h_{s+k,d}``
    (``_window_power``). Both equal the rfft / irfft definitions above (tests compare with torch.fft in
    float64) at about 3x less time than transforming every window.

    Gradients reach the table and the convolution through the kept spectrum, the residual, and the complexity:
    c_t is computed from the live spectrum and the ramp mask is piecewise linear in k_t, so the task loss also
    moves the cut-off (where ``C_t`` is not clamped at ``min``).

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
        check_positive(vocab_size=vocab_size, d_model=d_model, max_length=max_length, kernel_size=kernel_size)
        check_compression_ratios(min_compression_ratio, base_compression_ratio)
        if fft_window < 2:
            raise ValueError(f"fft_window must be >= 2 (at least two samples per window), got {fft_window}")
        if padding_idx is not None and not 0 <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx must be in [0, {vocab_size}), got {padding_idx}")
        self.max_length = max_length
        self.base_compression_ratio = base_compression_ratio
        self.min_compression_ratio = min_compression_ratio
        self.causal = causal
        self.kernel_size = kernel_size
        self.fft_window = fft_window
        self.fft_length = FFT_PADDING * fft_window
        self.num_bins = self.fft_length // 2 + 1
        self.centre = fft_window - 1 if causal else fft_window // 2  # n0
        self.reach = max(self.centre, fft_window - 1 - self.centre)  # R
        self.band_matmul_max_length = BAND_MATMUL_MAX_LENGTH  # T above which steps 4-5 use shifted products
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)  # depthwise, padding done by hand
        # taps ~ N(0, CONV_INIT_GAIN^2 / K), bias 0: ||h|| ~ CONV_INIT_GAIN ||e|| at init (here and in the model)
        setattr(self.conv, INIT_STD_ATTR, CONV_INIT_GAIN / math.sqrt(kernel_size))
        with torch.no_grad():
            self.conv.weight.normal_(0.0, getattr(self.conv, INIT_STD_ATTR))
            self.conv.bias.zero_()

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
        fft_dtype = torch.promote_types(h.dtype, torch.float32)  # spectra in fp32 at least (bf16 training)
        padded = self._padded(h, h_history).to(fft_dtype)  # (B, T + L - 1, D): window t is rows t .. t + L - 1
        with torch.autocast(device_type=h.device.type, enabled=False):  # the spectra stay in fp32 (bf16 training)
            power = self._window_power(padded)  # (B, T, F') mean_d |Y_{t,d,f}|^2
        window_complexity = spectral_entropy(power)  # (B, T)
        complexity = self._sequence_complexity(window_complexity, valid, state)  # (B, T)
        ratio = (self.base_compression_ratio * (1.0 - complexity)).clamp_min(self.min_compression_ratio)  # (B, T)
        kept_bins = ((1.0 - ratio) * self.num_bins).clamp_min(1.0)  # (B, T) k_t
        frequencies = torch.arange(self.num_bins, dtype=fft_dtype, device=h.device)  # (F,)
        mask = (kept_bins[..., None] - frequencies).clamp(0.0, 1.0)  # (B, T, F)  M_{t,f}
        # z_t = sum_f M_{t,f} sum_l S_{f,l} u-window_{t,l} = sum_l K_{t,l} h_{t - n0 + l}: one filter per position,
        # shared by the D channels, applied as L shifted multiply-adds (no (B, T, D, L) window tensor)
        with torch.autocast(device_type=h.device.type, enabled=False):
            taps = mask @ self._synthesis_basis(fft_dtype, h.device)  # (B, T, L)  K_{t,l}
        if length == 1:  # one decode step: the L taps of its one window as one product
            z = taps @ padded  # (B, 1, L) @ (B, L, D) -> (B, 1, D)
        elif length <= self.band_matmul_max_length:  # the taps as a band matrix: one product
            z = _band_matrix(taps, padded.shape[1]) @ padded  # (B, T, T + L - 1) @ (B, T + L - 1, D) -> (B, T, D)
        else:
            z = sum(taps[:, :, l, None] * padded[:, l:l + length] for l in range(self.fft_window))  # (B, T, D)
        z = z * keep_rows.to(fft_dtype)  # fp32 or fp64
        h_fft = h.to(fft_dtype)
        reconstruction_loss = (z - h_fft).square().sum() / (h_fft.square().sum() + ENERGY_EPS)
        valid_ratio = valid.to(ratio.dtype)
        discarded = 1.0 - kept_bins / self.num_bins  # (B, T) C_ratio_t
        compression_ratio = (discarded * valid_ratio).sum(1) / valid_ratio.sum(1).clamp_min(1.0)  # (B,)
        if state is not None:
            self._update_state(state, e_history, e, h_history, h, window_complexity, valid)
        return EmbeddingOutput(e + z.to(e.dtype), compression_ratio, reconstruction_loss, complexity)

    def _taper(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """g_l = cos^2(pi (l - n0) / (2 (R + 1))), (L,). Computed on the fly: no buffer for loading to miss."""
        distance = torch.arange(self.fft_window, dtype=dtype, device=device) - self.centre
        return torch.cos(math.pi * distance / (2 * (self.reach + 1))).square()

    def _validate(self, input_ids: Tensor, attention_mask: Tensor | None, state: EmbeddingState | None) -> None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got {tuple(input_ids.shape)}")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must match input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(attention_mask.shape)}")
        if state is not None and not self.causal:
            raise ValueError("the decode state is only defined for the causal embedding (causal=True)")
        end = input_ids.shape[1] + (state.seen_tokens if state is not None else 0)
        if end > self.max_length:
            raise ValueError(f"sequence length {end} exceeds max_length={self.max_length}")

    def _convolve(self, e: Tensor, history: Tensor) -> Tensor:
        """Depthwise convolution: causal over [history, e], or centred with zero padding. (B, T, D) -> (B, T, D)."""
        if self.causal:
            signal = torch.cat((history, e), dim=1).transpose(1, 2)  # (B, D, K - 1 + T)
            if e.shape[1] == 1:  # one decode step: the K taps as one multiply-sum (a conv call costs ~25x more here)
                return ((signal * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)[:, None]  # (B, 1, D)
        else:
            left = (self.kernel_size - 1) // 2
            signal = F.pad(e.transpose(1, 2), (left, self.kernel_size - 1 - left))  # (B, D, T + K - 1)
        return self.conv(signal).transpose(1, 2)  # (B, T, D)

    def _padded(self, h: Tensor, history: Tensor) -> Tensor:
        """h with the rows before and after it that the windows read: window t (t at its index n0) is rows
        t .. t + L - 1 of the result, (B, T + L - 1, D)."""
        if self.causal:
            return torch.cat((history, h), dim=1)
        return F.pad(h, (0, 0, self.centre, self.fft_window - 1 - self.centre))

    def _window_power(self, padded: Tensor) -> Tensor:
        """Step 4's channel-averaged power of every plain window, (B, T + L - 1, D) -> (B, T, F'), from lags:

        ``mean_d |Y_{t,d,f}|^2 = sum_{l,m} G_{t,l,m} cos(2 pi f (l - m) / L)`` with the window's Gram matrix
        ``G_{t,l,m} = mean_d h_{t+l,d} h_{t+m,d}`` (rows of `padded`), which depends on the lag k = |l - m|
        through ``r_k(s) = mean_d h_{s,d} h_{s+k,d}``: ``sum_k w_k cos(2 pi f k / L) sum_{l < L - k} r_k(t + l)``,
        w_0 = 1, w_k = 2. L products of (B, T, D) instead of a DFT of every (D, L) window.
        """
        window = self.fft_window
        lags = torch.arange(window, dtype=padded.dtype, device=padded.device)
        bins = torch.arange(window // 2 + 1, dtype=padded.dtype, device=padded.device)
        if padded.shape[1] == window:  # T = 1 (a decode step): the one Gram matrix, then the sum over (l, m) at once
            gram = padded @ padded.transpose(1, 2) / padded.shape[-1]  # (B, L, L)  G_{l,m}
            offsets = lags[:, None] - lags[None, :]  # (L, L)  l - m
            cosines = torch.cos(2 * math.pi * offsets[..., None] * bins / window).flatten(0, 1)  # (L * L, F')
            return (gram.flatten(1) @ cosines)[:, None]  # (B, 1, F')
        weights = torch.cos(2 * math.pi * lags[:, None] * bins / window) * torch.where(lags == 0, 1.0, 2.0)[:, None]
        length = padded.shape[1] - window + 1  # T
        if length <= self.band_matmul_max_length:
            # r_k(s) for every s and k < L from the Gram matrix of all rows, then the window sums
            # sum_{l < L - k} r_k(t + l) as one masked sum over the (k, l) pairs of each window, folded into weights
            gram = padded @ padded.transpose(1, 2) / padded.shape[-1]  # (B, T + L - 1, T + L - 1)
            lagged = _band_rows(gram, window)  # (B, T + L - 1, L)  r_k(s)
            in_window = (lags[None, :] < window - lags[:, None]).to(padded.dtype)  # (L_k, L_l)  l < L - k
            folded = (in_window[..., None] * weights[:, None, :]).flatten(0, 1)  # (L * L, F')
            windows = lagged.unfold(1, window, 1)  # (B, T, L_k, L_l)  r_k(t + l)
            return windows.flatten(2) @ folded  # (B, T, L * L) @ (L * L, F') -> (B, T, F')
        lag_sums = []
        for lag in range(window):
            r = (padded[:, : padded.shape[1] - lag] * padded[:, lag:]).mean(dim=-1)  # (B, T + L - 1 - k)
            lag_sums.append(r.unfold(1, window - lag, 1).sum(dim=-1))  # (B, T)
        return torch.stack(lag_sums, dim=-1) @ weights  # (B, T, L) @ (L, F') -> (B, T, F')

    def _sequence_complexity(self, window_complexity: Tensor, valid: Tensor, state: EmbeddingState | None) -> Tensor:
        """Bidirectional: mean c_t over real positions; causal: prefix mean over real s <= t. (B, T) -> (B, T)."""
        weights = valid.to(window_complexity.dtype)
        weighted = window_complexity * weights
        if not self.causal:
            mean = weighted.sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1)
            return mean.expand_as(window_complexity)
        prefix_sum, prefix_count = weighted.cumsum(1), weights.cumsum(1)  # (B, T)
        if state is not None and state.complexity_sum is not None:
            prefix_sum = prefix_sum + state.complexity_sum[:, None]
            prefix_count = prefix_count + state.complexity_count[:, None]
        return prefix_sum / prefix_count.clamp_min(1.0)

    def _synthesis_basis(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Steps 3 and 5 as real filters: irfft(rfft(g * window, N) * M, N)[n0] = sum_f M_f sum_l window_l S_{f,l}
        with S_{f,l} = g_l a_f cos(2 pi f (n0 - l) / N) / N (M real). Returns S, (F, L)."""
        frequencies = torch.arange(self.num_bins, dtype=dtype, device=device)  # (F,)
        hermitian = torch.full((self.num_bins,), 2.0, dtype=dtype, device=device)
        hermitian[0] = hermitian[-1] = 1.0  # f = 0 and the Nyquist bin (N is even) appear once
        offsets = self.centre - torch.arange(self.fft_window, dtype=dtype, device=device)  # (L,) n0 - l
        synthesis = torch.cos(2 * math.pi * frequencies[:, None] * offsets / self.fft_length)  # (F, L)
        return synthesis * (hermitian[:, None] / self.fft_length) * self._taper(dtype, device)

    def _update_state(
        self, state: EmbeddingState, e_history: Tensor, e: Tensor, h_history: Tensor, h: Tensor,
        window_complexity: Tensor, valid: Tensor,
    ) -> None:
        """The state is an inference cache: it holds values, never autograd graphs."""
        state.token_embeddings = _last_rows(torch.cat((e_history, e), dim=1), self.kernel_size - 1).detach()
        state.conv_outputs = _last_rows(torch.cat((h_history, h), dim=1), self.fft_window - 1).detach()
        weights = valid.to(window_complexity.dtype)
        added_sum = (window_complexity.detach() * weights).sum(1)  # (B,)
        added_count = weights.sum(1)  # (B,)
        if state.complexity_sum is None:
            state.complexity_sum, state.complexity_count = added_sum, added_count
        else:
            state.complexity_sum = state.complexity_sum + added_sum
            state.complexity_count = state.complexity_count + added_count
        state.seen_tokens += e.shape[1]


class PlainEmbedding(nn.Module):
    """``embeddings_t = m_t E[x_t]``: the token table alone, with LiquidEmbedding's interface (ablation baseline).

    Compression ratio and reconstruction loss are 0; the decode state only counts tokens.
    """

    def __init__(self, vocab_size: int, d_model: int, max_length: int, padding_idx: int | None = 0) -> None:
        super().__init__()
        check_positive(vocab_size=vocab_size, d_model=d_model, max_length=max_length)
        self.max_length = max_length
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, state: EmbeddingState | None = None
    ) -> EmbeddingOutput:
        end = input_ids.shape[1] + (state.seen_tokens if state is not None else 0)
        if end > self.max_length:
            raise ValueError(f"sequence length {end} exceeds max_length={self.max_length}")
        e = self.token_embedding(input_ids)  # (B, T, D)
        if attention_mask is not None:
            e = e * attention_mask[..., None].to(e.dtype)
        if state is not None:
            state.seen_tokens += input_ids.shape[1]
        zeros = e.new_zeros(input_ids.shape[0])
        return EmbeddingOutput(e, zeros, e.new_zeros(()), None)
