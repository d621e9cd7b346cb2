"""BidirectionalEncoder's dilated-convolution stack: pre-norm residual blocks that start as the identity."""

import pytest
import torch
import torch.nn.functional as F

from liquid import LiquidConfig, LiquidFoundationModelOptimized
from liquid.encoder import masked

VOCAB = 60


def conv_stack(model, ids, mask):
    emb = model.encoder.embedding(ids, mask).embeddings
    x = emb
    for block in model.encoder.convs:
        x = block(x, mask)
    return emb, x


def rms(x, mask):
    return (x.square().sum(-1) * mask).sum().div(mask.sum() * x.shape[-1]).sqrt()


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_residual_stream_stays_bounded_at_init(preset):
    """After the conv stack at init: rms within 2x of the embedding's and the direction kept (cosine > 0.9).
    (GELU on the residual branch without a projection grew it from rms 0.02 to 0.48, cosine 0.05.)"""
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset(preset, vocab_size=VOCAB, conv_layers=3))
    ids = torch.randint(4, VOCAB, (4, 24))
    mask = torch.ones(4, 24)
    mask[2, 15:] = 0
    emb, x = conv_stack(model, ids, mask)
    assert rms(x, mask) < 2 * rms(emb, mask)
    real = mask.bool()
    assert F.cosine_similarity(x[real], emb[real], dim=-1).mean() > 0.9


def test_block_is_prenorm_conv_gelu_projection():
    """Independent reference of one block: x + W_o GELU(conv(RMSNorm(x) * mask)) + b_o."""
    torch.manual_seed(0)
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=VOCAB))
    block = model.encoder.convs[1]  # dilation 2
    with torch.no_grad():
        block.proj.weight.normal_(0, 0.1)
        block.proj.bias.normal_(0, 0.1)
    x = torch.randn(2, 11, 64)
    mask = torch.ones(2, 11)
    mask[1, 7:] = 0
    normed = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-5) * block.norm.weight
    normed = masked(normed, mask)
    conv = F.conv1d(normed.transpose(1, 2), block.conv.weight, block.conv.bias, padding=2, dilation=2).transpose(1, 2)
    expected = x + F.gelu(conv) @ block.proj.weight.T + block.proj.bias
    torch.testing.assert_close(block(x, mask), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel, dilation, length", [(3, 1, 9), (3, 2, 11), (3, 4, 5), (5, 2, 13), (4, 1, 7)])
def test_dilated_conv_as_shifted_matmul_equals_conv1d(kernel, dilation, length):
    """dilated_conv against F.conv1d with the same weights (nn.Conv1d's padding rule), values and gradients."""
    from liquid.encoder import dilated_conv

    torch.manual_seed(kernel * 10 + dilation)
    h = torch.randn(3, length, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 8, kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    pad = dilation * (kernel - 1) // 2
    if dilation * (kernel - 1) % 2:  # even kernels: Conv1d pads the same amount on both sides and drops one output
        reference = F.conv1d(F.pad(h.transpose(1, 2), (pad, pad + dilation * (kernel - 1) - 2 * pad)), weight, bias,
                             dilation=dilation).transpose(1, 2)
    else:
        reference = F.conv1d(h.transpose(1, 2), weight, bias, padding=pad, dilation=dilation).transpose(1, 2)
    ours = dilated_conv(h, weight, bias, dilation)
    assert ours.shape == reference.shape == (3, length, 6)
    torch.testing.assert_close(ours, reference)
    probe = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * probe).sum(), (h, weight, bias))
    expected = torch.autograd.grad((reference * probe).sum(), (h, weight, bias))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)
