"""LiquidEmbedding: causality, padding invariance, decode state, and a plain float64 torch.fft reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from liquid.embedding import EmbeddingState, LiquidEmbedding

VOCAB = 50
D_MODEL = 8
MAX_LENGTH = 64
PAD = 0


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make(causal: bool, **kwargs) -> LiquidEmbedding:
    return LiquidEmbedding(VOCAB, D_MODEL, MAX_LENGTH, causal=causal, **kwargs).double()


def random_ids(batch: int, length: int) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length))


# ----------------------------------------------------------------------------- independent reference
def reference_embedding(module: LiquidEmbedding, ids: torch.Tensor, lengths: list[int]):
    """Steps 1-6 written position by position with torch.fft.rfft / irfft in float64 (one sequence at a time):
    the masked spectrum is inverted in full and its sample at t's window index read off."""
    K, L = module.kernel_size, module.fft_window
    N = 2 * L
    F_bins = N // 2 + 1
    w = module.conv.weight.detach()[:, 0, :]  # (D, K)
    bias = module.conv.bias.detach()
    outputs, ratios, z_energy, h_energy = [], [], 0.0, 0.0
    for row, n in zip(ids, lengths):
        e = module.token_embedding.weight.detach()[row[:n]]  # (n, D) real tokens only

        def e_at(s):
            return e[s] if 0 <= s < n else torch.zeros(D_MODEL, dtype=torch.float64)

        left = K - 1 if module.causal else (K - 1) // 2
        h = torch.stack([bias + sum(w[:, k] * e_at(t + k - left) for k in range(K)) for t in range(n)])

        def h_at(s):
            return h[s] if 0 <= s < n else torch.zeros(D_MODEL, dtype=torch.float64)

        centre = L - 1 if module.causal else L // 2
        reach = max(centre, L - 1 - centre)
        taper = [math.cos(math.pi * (l - centre) / (2 * (reach + 1))) ** 2 for l in range(L)]
        spectra, c = [], []
        for t in range(n):
            window = torch.stack([taper[l] * h_at(t - centre + l) for l in range(L)], dim=-1)  # (D, L)
            X = torch.fft.rfft(window, n=N, dim=-1)  # (D, F)
            plain = torch.stack([h_at(t - centre + l) for l in range(L)], dim=-1)  # (D, L) untapered
            P = (torch.fft.rfft(plain, dim=-1).abs() ** 2).mean(0) + 1e-12
            p = P / P.sum()
            c.append(float(-(p * p.log()).sum() / math.log(L // 2 + 1)))
            spectra.append(X)
        z_rows, row_ratios = [], []
        for t in range(n):
            complexity = sum(c[: t + 1]) / (t + 1) if module.causal else sum(c) / n
            ratio = max(module.base_compression_ratio * (1 - complexity), module.min_compression_ratio)
            keep = max(1.0, (1 - ratio) * F_bins)
            mask = torch.tensor([min(max(keep - f, 0.0), 1.0) for f in range(F_bins)], dtype=torch.float64)
            z_rows.append(torch.fft.irfft(spectra[t] * mask, n=N, dim=-1)[:, centre])
            row_ratios.append(1 - float(mask.sum()) / F_bins)
        z = torch.stack(z_rows)
        outputs.append(e + z)
        ratios.append(sum(row_ratios) / n)
        z_energy += float(((z - h) ** 2).sum())
        h_energy += float((h**2).sum())
    return outputs, torch.tensor(ratios, dtype=torch.float64), z_energy / h_energy


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel_size,fft_window", [(3, 16), (4, 7), (1, 2)])
def test_matches_plain_fft_reference(causal, kernel_size, fft_window):
    module = make(causal, kernel_size=kernel_size, fft_window=fft_window)
    lengths, total = [20, 13], 20
    ids = random_ids(2, total)
    ids[1, 13:] = PAD
    mask = (torch.arange(total)[None] < torch.tensor(lengths)[:, None]).long()
    out = module(ids, attention_mask=mask)
    ref_rows, ref_ratio, ref_loss = reference_embedding(module, ids, lengths)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(out.embeddings[b, :n], ref_rows[b], atol=1e-10, rtol=0)
        assert torch.all(out.embeddings[b, n:] == 0)
    torch.testing.assert_close(out.compression_ratio, ref_ratio, atol=1e-12, rtol=0)
    assert out.reconstruction_loss.item() == pytest.approx(ref_loss, abs=1e-10)


def test_shapes_and_ratio_range():
    module = LiquidEmbedding(VOCAB, D_MODEL, MAX_LENGTH, base_compression_ratio=0.6, min_compression_ratio=0.2)
    out = module(random_ids(3, 17))
    assert out.embeddings.shape == (3, 17, D_MODEL)
    assert out.compression_ratio.shape == (3,) and out.reconstruction_loss.shape == ()
    assert torch.all((out.compression_ratio >= 0.2) & (out.compression_ratio <= 0.6))


def test_no_compression_keeps_the_conv_signal():
    """base = min = 0 keeps every bin: z_t = h_t exactly, so the loss is 0 and embeddings = e + conv(e)."""
    module = make(False, base_compression_ratio=0.0, min_compression_ratio=0.0)
    ids = random_ids(2, 11)
    out = module(ids)
    e = module.token_embedding(ids)
    h = F.conv1d(e.transpose(1, 2), module.conv.weight, module.conv.bias, padding=1, groups=D_MODEL).transpose(1, 2)
    torch.testing.assert_close(out.embeddings, e + h, atol=1e-12, rtol=0)
    assert out.reconstruction_loss.item() < 1e-20


@pytest.mark.parametrize("causal", [True, False])
def test_random_tokens_are_compressed_less_than_a_repeated_token(causal):
    """A repeated token gives a (nearly) constant conv signal: its power sits in the f = 0 bin, spectral entropy
    ~ 0, so C_ratio ~ base. Random tokens spread power over all bins (entropy near 1): C_ratio goes down."""
    module = make(causal)
    constant = torch.full((1, 48), 7)
    random = random_ids(1, 48)
    ratio_constant = module(constant).compression_ratio.item()
    ratio_random = module(random).compression_ratio.item()
    assert ratio_random < ratio_constant - 0.1


def test_causal_change_never_reaches_earlier_positions():
    module = make(True)
    ids = random_ids(2, 24)
    base = module(ids).embeddings
    for k in (0, 5, 15, 23):
        changed = ids.clone()
        changed[:, k] = (changed[:, k] % (VOCAB - 1)) + 1
        out = module(changed).embeddings
        assert torch.equal(out[:, :k], base[:, :k])
        assert not torch.equal(out[:, k], base[:, k])


def test_bidirectional_change_reaches_earlier_positions():
    module = make(False)
    ids = random_ids(1, 24)
    changed = ids.clone()
    changed[0, 12] = (changed[0, 12] % (VOCAB - 1)) + 1
    assert not torch.allclose(module(changed).embeddings[:, :12], module(ids).embeddings[:, :12])


@pytest.mark.parametrize("causal", [True, False])
def test_padding_invariance(causal):
    module = make(causal)
    ids = random_ids(2, 15)
    ids[1, 10:] = PAD
    mask = torch.ones(2, 15, dtype=torch.long)
    mask[1, 10:] = 0
    out = module(ids, attention_mask=mask)
    more_ids = torch.cat((ids, torch.full((2, 6), PAD)), dim=1)
    more_ids[1, 10:] = 3  # padded content must not matter either
    more_mask = torch.cat((mask, torch.zeros(2, 6, dtype=torch.long)), dim=1)
    more = module(more_ids, attention_mask=more_mask)
    torch.testing.assert_close(more.embeddings[:, :15], out.embeddings, atol=1e-12, rtol=0)
    assert torch.all(more.embeddings[:, 15:] == 0)
    torch.testing.assert_close(more.compression_ratio, out.compression_ratio, atol=1e-12, rtol=0)
    torch.testing.assert_close(more.reconstruction_loss, out.reconstruction_loss, atol=1e-12, rtol=0)


@pytest.mark.parametrize("chunks", [[1] * 20, [7, 1, 1, 11], [20]])
def test_decode_state_equals_full_causal_forward(chunks):
    module = make(True)
    ids = random_ids(3, 20)
    full = module(ids).embeddings
    state = EmbeddingState()
    pieces, start = [], 0
    for size in chunks:
        pieces.append(module(ids[:, start : start + size], state=state).embeddings)
        start += size
        assert state.seen_tokens == start
        assert state.conv_outputs.shape[1] == module.fft_window - 1
        assert state.token_embeddings.shape[1] == module.kernel_size - 1
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-12, rtol=0)


def test_decode_state_with_mask_equals_masked_full_forward():
    module = make(True)
    ids = random_ids(2, 14)
    mask = torch.ones(2, 14, dtype=torch.long)
    mask[0, 9:] = 0
    mask[1, 4] = 0
    full = module(ids, attention_mask=mask).embeddings
    state = EmbeddingState()
    pieces = [module(ids[:, t : t + 1], attention_mask=mask[:, t : t + 1], state=state).embeddings for t in range(14)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-12, rtol=0)


def test_state_reorder_follows_beams():
    module = make(True)
    ids = random_ids(3, 12)
    beam_idx = torch.tensor([1, 1, 0])
    state = EmbeddingState()
    module(ids[:, :5], state=state)
    state.reorder(beam_idx)
    steps = module(ids[beam_idx, 5:], state=state).embeddings
    torch.testing.assert_close(steps, module(ids[beam_idx]).embeddings[:, 5:], atol=1e-12, rtol=0)


def test_gradients_reach_table_and_conv():
    module = LiquidEmbedding(VOCAB, D_MODEL, MAX_LENGTH, causal=True)
    out = module(random_ids(2, 10))
    (out.embeddings.square().mean() + out.reconstruction_loss).backward()
    for param in (module.token_embedding.weight, module.conv.weight, module.conv.bias):
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_invalid_options_and_inputs_raise():
    for kwargs in (dict(base_compression_ratio=0.1, min_compression_ratio=0.2), dict(fft_window=1),
                   dict(kernel_size=0), dict(padding_idx=VOCAB)):
        with pytest.raises(ValueError):
            LiquidEmbedding(VOCAB, D_MODEL, MAX_LENGTH, **kwargs)
    with pytest.raises(ValueError):
        make(False)(random_ids(1, MAX_LENGTH + 1))
    with pytest.raises(ValueError):
        make(False)(random_ids(1, 4), state=EmbeddingState())
    with pytest.raises(ValueError):
        state = EmbeddingState(seen_tokens=MAX_LENGTH)
        make(True)(random_ids(1, 1), state=state)
