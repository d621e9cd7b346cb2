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
@pytest.mark.parametrize("band_matmul", [True, False], ids=["band-matmul", "shifted-products"])
def test_matches_plain_fft_reference(causal, kernel_size, fft_window, band_matmul):
    """Both implementations of the window sums: banded matrix products (short sequences) and L shifted products."""
    module = make(causal, kernel_size=kernel_size, fft_window=fft_window)
    if not band_matmul:
        module.band_matmul_max_length = 0
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


@pytest.mark.parametrize("causal", [True, False])
def test_one_token_matches_plain_fft_reference(causal):
    """A one-token input (every decode step) takes the single-window paths: the convolution as a multiply-sum, the
    window's power from its Gram matrix, the synthesis as one product. Same reference as above, non-zero bias."""
    module = make(causal)
    with torch.no_grad():
        module.conv.bias.normal_()
    ids = random_ids(3, 1)
    out = module(ids)
    ref_rows, ref_ratio, ref_loss = reference_embedding(module, ids, [1, 1, 1])
    torch.testing.assert_close(out.embeddings[:, 0], torch.cat(ref_rows), atol=1e-10, rtol=0)
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
    with torch.no_grad():
        module.conv.bias.normal_()  # zero at init: a trained bias must enter the one-token decode path too
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


# ----------------------------------------------------------------------------- issue 9: the compression does work
def model_embedding(causal: bool, **overrides) -> LiquidEmbedding:
    """The embedding as the model initialises it (LiquidPreTrainedModel._init_weights), tiny preset, L = 8."""
    from liquid import LiquidConfig, LiquidFoundationModelOptimized

    torch.manual_seed(0)
    config = LiquidConfig.from_preset("tiny", vocab_size=VOCAB, **overrides)
    model = LiquidFoundationModelOptimized(config)
    return (model.decoder if causal else model.encoder).embedding.double()


def set_ratio(module: LiquidEmbedding, ratio: float) -> None:
    module.base_compression_ratio = module.min_compression_ratio = ratio  # C_ratio_t = ratio everywhere


@pytest.mark.parametrize("causal", [True, False])
def test_compression_changes_the_output_at_init(causal):
    """With the model's init and the default bounds, switching the cut-off off must change the embedding output
    by a visible amount (it changed it by exactly 0: 5 bins, ceil kept all, and ||z|| / ||e|| was 0.03)."""
    module = model_embedding(causal)
    ids = random_ids(4, 30)
    on = module(ids).embeddings
    set_ratio(module, 0.0)
    off = module(ids).embeddings
    assert ((on - off).norm() / off.norm()).item() > 0.02


@pytest.mark.parametrize("causal", [True, False])
def test_ratio_is_the_share_of_bins_discarded_at_fine_resolution(causal):
    """C_ratio = 0.1 and 0.5 both discard something, 0.5 more than 0.1, and the reported ratio is what was asked
    (with L = 8: F = 9 bins and a fractional ramp mask)."""
    module = model_embedding(causal)
    ids = random_ids(3, 25)
    set_ratio(module, 0.0)
    full = module(ids).embeddings
    change = {}
    for ratio in (0.1, 0.2, 0.5):
        set_ratio(module, ratio)
        out = module(ids)
        torch.testing.assert_close(out.compression_ratio, torch.full((3,), ratio, dtype=torch.float64))
        change[ratio] = (out.embeddings - full).norm().item()
    assert 0 < change[0.1] < change[0.2] < change[0.5]


def test_causal_low_pass_does_not_wrap_around():
    """Impulse response of the causal filter keeping 3 of 9 bins: the oldest sample of the window weighs much less
    than the previous one (a periodic L-point window weighed h(t-7) like h(t-1))."""
    module = make(True, kernel_size=1, fft_window=8)
    with torch.no_grad():
        module.conv.weight.fill_(1.0)
        module.conv.bias.zero_()
    synthesis = module._synthesis_basis(torch.float64, torch.device("cpu"))  # (F, L)
    mask = (3.0 - torch.arange(module.num_bins, dtype=torch.float64)).clamp(0, 1)  # 3 bins kept
    taps = mask @ synthesis  # (L,) weight of h_{t - n0 + l}
    assert taps[-1] > 0 and abs(taps[0]) < 0.1 * abs(taps[-2])
    # the same taps from torch.fft directly: impulse at l, zero-padded, masked, inverse read at n0
    for l in range(8):
        window = torch.zeros(8, dtype=torch.float64)
        window[l] = module._taper(torch.float64, torch.device("cpu"))[l]
        direct = torch.fft.irfft(torch.fft.rfft(window, n=16) * mask, n=16)[7]
        assert direct.item() == pytest.approx(taps[l].item(), abs=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_gradient_reaches_the_complexity_path(causal):
    """The task loss moves the cut-off: d(output)/d(complexity) != 0 where C_ratio is not clamped at min (the
    complexity was computed from a detached spectrum: no gradient path at all)."""
    module = make(causal, base_compression_ratio=0.9, min_compression_ratio=0.0)
    ids = random_ids(2, 20)
    out = module(ids)
    (grad,) = torch.autograd.grad(out.embeddings.square().sum(), out.complexity)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


def test_spectral_entropy_is_finite_when_rounding_makes_a_bin_slightly_negative():
    """Lag-product power can round below 0 at a silent bin; log p_f must not see a negative number."""
    from liquid.embedding import spectral_entropy

    power = torch.tensor([[1.0, 0.5, -1e-9, 0.0, 0.25]])
    entropy = spectral_entropy(power)
    assert torch.isfinite(entropy).all() and 0.0 < entropy.item() < 1.0
    assert torch.allclose(entropy, spectral_entropy(power.clamp_min(0.0)))


@pytest.mark.parametrize("causal", [True, False])
def test_band_matmul_and_shifted_products_agree_in_value_and_gradient(causal):
    """The two window-sum paths compute the same outputs and the same gradients (padding included)."""
    short, long = make(causal), make(causal)
    long.load_state_dict(short.state_dict())
    long.band_matmul_max_length = 0
    ids = random_ids(3, 30)
    mask = torch.ones_like(ids)
    mask[1, 21:] = 0
    ids = ids * mask
    outputs = []
    for module in (short, long):
        out = module(ids, attention_mask=mask)
        (out.embeddings.square().sum() + out.reconstruction_loss + out.compression_ratio.sum()).backward()
        outputs.append((out, [p.grad.clone() for p in module.parameters()]))
    (a, grads_a), (b, grads_b) = outputs
    torch.testing.assert_close(a.embeddings, b.embeddings, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.reconstruction_loss, b.reconstruction_loss, atol=1e-12, rtol=0)
    for grad_a, grad_b in zip(grads_a, grads_b):
        torch.testing.assert_close(grad_a, grad_b, atol=1e-10, rtol=1e-10)
