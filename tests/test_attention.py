"""EnhancedLocalAttention / CrossAttention against plain full-attention references in float64."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import liquid.attention as attention_module
from liquid.attention import CrossAttention, EnhancedLocalAttention, LocalKVCache
from liquid.rope import RotaryEmbedding

D_MODEL = 16
NUM_HEADS = 4
THETA = 10000.0
ATOL = 1e-10


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- independent references
def reference_band(length: int, window: int, causal: bool, overlap: bool) -> torch.Tensor:
    """(T, T) bool: may query i see key j, written directly from the definitions with explicit loops."""
    mask = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(length):
            if overlap:
                mask[i, j] = (i - window < j <= i) if causal else abs(i - j) <= window // 2
            else:
                mask[i, j] = (i // window == j // window) and (j <= i or not causal)
    return mask


def reference_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """RoPE as a complex rotation of pairs (x[m], x[m + dh/2]) by angle p * theta^(-2m/dh)."""
    half = x.shape[-1] // 2
    freqs = THETA ** (-torch.arange(half, dtype=torch.float64) * 2 / x.shape[-1])
    rotated = torch.complex(x[..., :half], x[..., half:]) * torch.polar(
        torch.ones(len(positions), half, dtype=torch.float64), positions.double()[:, None] * freqs
    )
    return torch.cat((rotated.real, rotated.imag), dim=-1)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)


def reference_attention(q, k, v, allowed: torch.Tensor) -> torch.Tensor:
    """Full (T x S) softmax attention; kv head of query head h is h // (H / Hkv)."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return weights @ v


def reference_rms(x: torch.Tensor, gain: torch.Tensor, eps: float | None) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) * gain over the last dim (eps None: torch's default, the dtype's machine eps)."""
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * gain


def reference_local(module: EnhancedLocalAttention, x: torch.Tensor, attention_mask=None) -> torch.Tensor:
    b, t, _ = x.shape
    q = split_heads(x @ module.q_proj.weight.T, module.num_heads)
    k = split_heads(x @ module.k_proj.weight.T, module.num_kv_heads)
    if module.q_norm is not None:  # QK-norm: per-head RMSNorm of queries and keys, before RoPE
        q = reference_rms(q, module.q_norm.weight, module.q_norm.eps)
        k = reference_rms(k, module.k_norm.weight, module.k_norm.eps)
    v = split_heads(x @ module.v_proj.weight.T, module.num_kv_heads)
    positions = torch.arange(t)
    q, k = reference_rope(q, positions), reference_rope(k, positions)
    allowed = reference_band(t, module.window_size, module.causal, module.overlap)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    out = reference_attention(q, k, v, allowed)
    return out.transpose(1, 2).reshape(b, t, -1) @ module.o_proj.weight.T


def make_local(window: int, causal: bool, overlap: bool, num_kv_heads: int | None = None,
               qk_norm: bool = False) -> EnhancedLocalAttention:
    return EnhancedLocalAttention(D_MODEL, NUM_HEADS, window, causal=causal, overlap=overlap,
                                  num_kv_heads=num_kv_heads, qk_norm=qk_norm).double().eval()


MODES = [(c, o) for c in (True, False) for o in (True, False)]


# ----------------------------------------------------------------------------- local attention
@pytest.mark.parametrize("causal,overlap", MODES)
def test_band_is_full_agrees_with_reference_band(causal, overlap):
    """The Python-side "no mask needed" decision equals the reference band being all True, at every length
    around the window's reach; and the cached band, when one is needed, is the reference band."""
    for window in (1, 2, 3, 4, 5, 8):
        module = make_local(window, causal, overlap)
        for length in range(1, 3 * window + 3):
            reference = reference_band(length, window, causal, overlap)
            assert module._band_is_full(length) == bool(reference.all()), (window, length)
            band = module._band(length, torch.device("cpu"))
            assert (band is None) if reference.all() else torch.equal(band, reference), (window, length)


@pytest.mark.parametrize("causal,overlap", MODES)
@pytest.mark.parametrize("window,length", [(4, 3), (4, 4), (4, 16), (5, 23), (3, 64), (1, 7)])
def test_local_matches_band_reference(causal, overlap, window, length):
    module = make_local(window, causal, overlap)
    x = torch.randn(2, length, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(module(x), reference_local(module, x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("causal,overlap", MODES)
@pytest.mark.parametrize("window,length", [(4, 4), (5, 23)])
def test_qk_norm_matches_reference_and_ignores_the_projection_scale(causal, overlap, window, length):
    """QK-norm: softmax(n(q).n(k) / sqrt(dh)) V with n = per-head RMSNorm; scaling W_q, W_k changes nothing."""
    module = make_local(window, causal, overlap, num_kv_heads=2, qk_norm=True)
    with torch.no_grad():
        module.q_norm.weight.uniform_(0.5, 1.5)
        module.k_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, length, D_MODEL, dtype=torch.float64)
    out = module(x)
    torch.testing.assert_close(out, reference_local(module, x), atol=ATOL, rtol=0)
    with torch.no_grad():
        module.q_proj.weight.mul_(30.0)
        module.k_proj.weight.mul_(0.1)
    torch.testing.assert_close(module(x), out, atol=1e-8, rtol=0)


@pytest.mark.parametrize("causal,overlap", MODES)
@pytest.mark.parametrize("num_kv_heads", [1, 2])
def test_gqa_matches_reference(causal, overlap, num_kv_heads):
    module = make_local(5, causal, overlap, num_kv_heads)
    x = torch.randn(2, 19, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(module(x), reference_local(module, x), atol=ATOL, rtol=0)


def right_padding_mask(lengths: list[int], total: int) -> torch.Tensor:
    return (torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]).long()


@pytest.mark.parametrize("causal,overlap", MODES)
@pytest.mark.parametrize("num_kv_heads", [None, 2])
@pytest.mark.parametrize("window", [4, 8])  # 8: the short (T <= 2W) path at 13 positions, blocked at 20
def test_padding_matches_reference_and_is_invariant(causal, overlap, num_kv_heads, window):
    module = make_local(window, causal, overlap, num_kv_heads)
    lengths, total = [13, 9, 2], 13
    mask = right_padding_mask(lengths, total)
    x = torch.randn(3, total, D_MODEL, dtype=torch.float64)
    out = module(x, attention_mask=mask)
    ref = reference_local(module, x, mask)
    real = mask.bool()
    torch.testing.assert_close(out[real], ref[real], atol=ATOL, rtol=0)
    assert torch.all(out[~real] == 0)

    # Appending more padding (with arbitrary content) and changing padded content keeps real outputs.
    extra = 7
    x_more = torch.cat((x, torch.randn(3, extra, D_MODEL, dtype=torch.float64)), dim=1)
    x_more[~torch.cat((real, torch.zeros(3, extra, dtype=torch.bool)), dim=1)] = 100.0
    out_more = module(x_more, attention_mask=right_padding_mask(lengths, total + extra))
    torch.testing.assert_close(out_more[:, :total][real], out[real], atol=ATOL, rtol=0)


@pytest.mark.parametrize("causal,overlap", MODES)
@pytest.mark.parametrize("window", [4, 16])
def test_all_padding_row_is_finite(causal, overlap, window):
    module = make_local(window, causal, overlap)
    x = torch.randn(2, 10, D_MODEL, dtype=torch.float64, requires_grad=True)
    mask = right_padding_mask([10, 0], 10)
    out = module(x, attention_mask=mask)
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.fixture
def seen_shapes(monkeypatch):
    """(query length, key length) of every `scaled_dot_product_attention` call the attention module makes."""
    shapes = []
    real_sdpa = F.scaled_dot_product_attention

    def recording_sdpa(q, k, v, **kwargs):
        shapes.append((q.shape[-2], k.shape[-2]))
        return real_sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", recording_sdpa)
    return shapes


def test_no_quadratic_tensor_is_passed_to_sdpa(seen_shapes):
    window, length = 8, 256
    for causal in (True, False):
        make_local(window, causal, True)(torch.randn(1, length, D_MODEL, dtype=torch.float64))
    assert seen_shapes and all(q_len <= window and k_len <= 3 * window for q_len, k_len in seen_shapes)


@pytest.mark.parametrize("causal,overlap", MODES)
@pytest.mark.parametrize("length", [5, 8, 12, 16, 17])
def test_short_path_is_one_call_and_matches_blocked(monkeypatch, seen_shapes, causal, overlap, length):
    """T <= 2W (overlap) or T <= W (disjoint blocks): one SDPA call over all T keys, same output as blocks."""
    window = 8
    module = make_local(window, causal, overlap)
    x = torch.randn(2, length, D_MODEL, dtype=torch.float64)
    mask = right_padding_mask([length, max(1, length - 3)], length)
    out = module(x, attention_mask=mask)
    short = length <= (2 * window if overlap else window)
    assert (seen_shapes == [(length, length)]) == short
    monkeypatch.setattr(module, "_short_path", lambda _length: False)
    torch.testing.assert_close(out, module(x, attention_mask=mask), atol=ATOL, rtol=0)


def test_rope_table_matches_reference_and_survives_inference_mode():
    rotary = RotaryEmbedding(8, THETA)
    q, k = torch.randn(2, 4, 5, 8, dtype=torch.float64), torch.randn(2, 2, 5, 8, dtype=torch.float64)
    for start in (0, 3, 100, 2):  # 100 grows the table; 2 reads the grown one
        positions = torch.arange(start, start + 5)
        rotated_q, rotated_k = rotary.rotate_pair(q, k, start)
        torch.testing.assert_close(rotated_q, reference_rope(q, positions), atol=ATOL, rtol=0)
        torch.testing.assert_close(rotated_k, reference_rope(k, positions), atol=ATOL, rtol=0)
        torch.testing.assert_close(rotary(q, positions), rotated_q, atol=0, rtol=0)
    with torch.inference_mode():
        rotary.rotate_pair(q, k, 300)  # a table built under inference mode ...
    leaf = q.clone().requires_grad_()
    rotary.rotate_pair(leaf, k, 0)[0].square().sum().backward()  # ... is not used where autograd needs it
    assert torch.isfinite(leaf.grad).all()


# ----------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("num_kv_heads", [None, 1])
@pytest.mark.parametrize("prefill", [0, 3, 11])
def test_cached_decoding_equals_full_forward(overlap, num_kv_heads, prefill):
    window, length = 4, 15
    module = make_local(window, True, overlap, num_kv_heads)
    x = torch.randn(2, length, D_MODEL, dtype=torch.float64)
    full = module(x)
    cache = LocalKVCache()
    pieces = [module(x[:, :prefill], cache=cache)] if prefill else []
    for t in range(prefill, length):
        pieces.append(module(x[:, t : t + 1], cache=cache))
        assert cache.key.shape[2] <= window - 1 and cache.value.shape[2] <= window - 1
        assert cache.seen_tokens == t + 1
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=0)


def test_cache_reorder_follows_beams():
    window, prefill, length = 4, 6, 10
    module = make_local(window, True, True)
    x = torch.randn(3, length, D_MODEL, dtype=torch.float64)
    beam_idx = torch.tensor([2, 0, 0])
    cache = LocalKVCache()
    module(x[:, :prefill], cache=cache)
    cache.reorder(beam_idx)
    steps = module(x[beam_idx, prefill:], cache=cache)
    torch.testing.assert_close(steps, module(x[beam_idx])[:, prefill:], atol=ATOL, rtol=0)


def test_cache_requires_causal_and_no_mask():
    x = torch.randn(1, 3, D_MODEL)
    with pytest.raises(ValueError):
        EnhancedLocalAttention(D_MODEL, NUM_HEADS, 4, causal=False)(x, cache=LocalKVCache())
    with pytest.raises(ValueError):
        EnhancedLocalAttention(D_MODEL, NUM_HEADS, 4, causal=True)(x, torch.ones(1, 3), cache=LocalKVCache())


@pytest.mark.parametrize(
    "kwargs",
    [dict(window_size=0), dict(num_heads=3), dict(num_kv_heads=3), dict(d_model=12, num_heads=4), dict(dropout=1.0)],
)
def test_impossible_options_raise(kwargs):
    args = dict(d_model=D_MODEL, num_heads=NUM_HEADS, window_size=4) | kwargs
    with pytest.raises(ValueError):
        EnhancedLocalAttention(**args)


def test_dropout_only_in_training():
    module = EnhancedLocalAttention(D_MODEL, NUM_HEADS, 4, dropout=0.5).double()
    x = torch.randn(1, 12, D_MODEL, dtype=torch.float64)
    module.eval()
    torch.testing.assert_close(module(x), reference_local(module, x), atol=ATOL, rtol=0)
    module.train()
    assert not torch.allclose(module(x), reference_local(module, x))


# ----------------------------------------------------------------------------- cross-attention
@pytest.mark.parametrize("num_kv_heads", [None, 2])
def test_cross_attention_matches_reference_and_memory_path(num_kv_heads):
    module = CrossAttention(D_MODEL, NUM_HEADS, num_kv_heads=num_kv_heads).double().eval()
    x = torch.randn(2, 5, D_MODEL, dtype=torch.float64)
    enc = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    enc_mask = right_padding_mask([7, 4], 7)

    q = split_heads(x @ module.q_proj.weight.T, NUM_HEADS)
    k = split_heads(enc @ module.k_proj.weight.T, module.num_kv_heads)
    v = split_heads(enc @ module.v_proj.weight.T, module.num_kv_heads)
    allowed = enc_mask.bool()[:, None, None, :].expand(2, NUM_HEADS, 5, 7)
    ref = reference_attention(q, k, v, allowed).transpose(1, 2).reshape(2, 5, D_MODEL) @ module.o_proj.weight.T

    out = module(x, encoder_states=enc, encoder_mask=enc_mask)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    memory = module.project_memory(enc)
    assert memory[0].shape == (2, module.num_kv_heads, 7, D_MODEL // NUM_HEADS) and memory[2] is None
    torch.testing.assert_close(module(x, encoder_mask=enc_mask, memory=memory), out, atol=0, rtol=0)
    masked_memory = module.project_memory(enc, enc_mask)  # the key mask prepared once, as the decoder caches it
    assert masked_memory[2].shape == (2, 1, 1, 7)
    torch.testing.assert_close(module(x, memory=masked_memory), out, atol=0, rtol=0)

    # Padded encoder states do not matter.
    enc_changed = enc.clone()
    enc_changed[1, 4:] = 50.0
    torch.testing.assert_close(module(x, enc_changed, enc_mask), out, atol=ATOL, rtol=0)


def test_cross_attention_all_padded_encoder_is_finite():
    module = CrossAttention(D_MODEL, NUM_HEADS)
    out = module(torch.randn(1, 3, D_MODEL), torch.randn(1, 4, D_MODEL), torch.zeros(1, 4))
    assert torch.isfinite(out).all()
