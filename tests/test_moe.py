"""Tests for liquid.moe: sparse grouped dispatch against a dense every-expert reference."""

import math

import pytest
import torch
import torch.nn.functional as F

import liquid.moe as moe_module
from liquid.moe import MoELayer, MoEOutput, SwiGLUExperts

D_MODEL, D_FF, NUM_EXPERTS = 8, 16, 6
BATCH, SEQ = 2, 7


def make_layer(**kwargs) -> MoELayer:
    torch.manual_seed(0)
    options = dict(d_model=D_MODEL, d_ff=D_FF, num_experts=NUM_EXPERTS, top_k=3)
    options.update(kwargs)
    return MoELayer(**options).double()


def make_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(BATCH, SEQ, D_MODEL, dtype=torch.float64)
    mask = torch.ones(BATCH, SEQ)
    mask[1, 4:] = 0
    return x, mask


def reference_weights(layer: MoELayer, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Dense (N, E) combine weights, chosen token by token in plain python."""
    x_flat = x.reshape(-1, D_MODEL).double()
    probs = torch.softmax(x_flat @ layer.router.weight.double().T, dim=-1)
    real = [True] * x_flat.shape[0] if mask is None else mask.reshape(-1).bool().tolist()
    weights = torch.zeros_like(probs)
    for n, is_real in enumerate(real):
        if not is_real:
            continue
        order = sorted(range(layer.num_experts), key=lambda e: -probs[n, e].item())
        k = layer.top_k
        if layer.dynamic_k:
            k = 1
            while k < layer.top_k and sum(probs[n, e].item() for e in order[:k]) < layer.threshold:
                k += 1
        chosen = order[:k]
        total = sum(probs[n, e].item() for e in chosen)
        for e in chosen:
            # raw gate probability (Switch), or its share of the chosen experts' mass
            weights[n, e] = probs[n, e] / (total if layer.gate_weights == "renormalized" else 1.0)
    return weights


def dense_reference(layer: MoELayer, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Every expert on every token, combined with the sparse weights above."""
    x_flat = x.reshape(-1, D_MODEL).double()
    ex = layer.experts
    outs = torch.stack(
        [(F.silu(x_flat @ ex.w_gate[e]) * (x_flat @ ex.w_up[e])) @ ex.w_down[e] for e in range(layer.num_experts)]
    )  # (E, N, D)
    weights = reference_weights(layer, x, mask)
    return torch.einsum("ne,end->nd", weights, outs).reshape(x.shape)


def constant_feature_inputs(favoured: list[int], scale: float, **kwargs) -> tuple[MoELayer, torch.Tensor]:
    """Feature 0 of every token is 1 and the router only reads it: experts in `favoured` get logit `scale`."""
    layer = make_layer(**kwargs)
    x, _ = make_inputs()
    x[..., 0] = 1.0
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[favoured, 0] = scale
    return layer, x


@pytest.mark.parametrize("gate_weights", ["raw", "renormalized"])
@pytest.mark.parametrize("dynamic_k", [False, True])
@pytest.mark.parametrize("use_mask", [False, True])
def test_matches_dense_reference(dynamic_k: bool, use_mask: bool, gate_weights: str) -> None:
    layer = make_layer(dynamic_k=dynamic_k, threshold=0.45, gate_weights=gate_weights)
    x, mask = make_inputs()
    mask = mask if use_mask else None
    out = layer(x, mask)
    assert isinstance(out, MoEOutput)
    torch.testing.assert_close(out.hidden_states, dense_reference(layer, x, mask), rtol=1e-10, atol=1e-12)
    if use_mask:
        assert out.hidden_states[1, 4:].abs().max() == 0


def test_flat_input_shape_matches_batched() -> None:
    layer = make_layer()
    x, _ = make_inputs()
    batched = layer(x).hidden_states
    flat = layer(x.reshape(-1, D_MODEL)).hidden_states
    torch.testing.assert_close(flat, batched.reshape(-1, D_MODEL))


def test_dynamic_k_uses_fewer_experts_for_confident_router() -> None:
    options = dict(top_k=4, dynamic_k=True, threshold=0.45)
    confident_layer, x = constant_feature_inputs(favoured=[2], scale=30.0, **options)
    confident = confident_layer(x).experts_per_token.item()
    flat_layer, x = constant_feature_inputs(favoured=[], scale=0.0, **options)
    flat = flat_layer(x).experts_per_token.item()
    assert confident == 1.0
    # Uniform probabilities 1/E: the fewest experts reaching the threshold is ceil(threshold * E).
    assert flat == math.ceil(flat_layer.threshold * NUM_EXPERTS)
    assert confident < flat


def test_static_experts_per_token_and_load() -> None:
    layer = make_layer(top_k=3)
    x, mask = make_inputs()
    out = layer(x, mask)
    assert out.experts_per_token.item() == 3
    assert out.expert_load.shape == (NUM_EXPERTS,)
    torch.testing.assert_close(out.expert_load.sum(), torch.tensor(1.0, dtype=out.expert_load.dtype))
    assigned = (reference_weights(layer, x, mask) > 0).double().sum(dim=0)
    torch.testing.assert_close(out.expert_load, assigned / assigned.sum())


@pytest.mark.parametrize("dynamic_k", [False, True])
def test_aux_loss_hand_formula(dynamic_k: bool) -> None:
    layer = make_layer(dynamic_k=dynamic_k, load_balance_weight=0.3, z_loss_weight=0.05)
    x, mask = make_inputs()
    out = layer(x, mask)
    real = mask.reshape(-1).bool()
    logits = x.reshape(-1, D_MODEL)[real] @ layer.router.weight.T
    probs = torch.softmax(logits, dim=-1)
    assigned = (reference_weights(layer, x, mask)[real] > 0).double()
    f = assigned.sum(0) / assigned.sum()
    p = probs.mean(0)
    expected = 0.3 * NUM_EXPERTS * (f * p).sum() + 0.05 * (torch.logsumexp(logits, -1) ** 2).mean()
    torch.testing.assert_close(out.aux_loss, expected)


@pytest.mark.parametrize("dynamic_k", [False, True])
def test_padding_changes_nothing_real(dynamic_k: bool) -> None:
    layer = make_layer(dynamic_k=dynamic_k)
    x, mask = make_inputs()
    out = layer(x, mask)
    x_junk = x.clone()
    x_junk[1, 4:] = 1e3 * torch.randn_like(x_junk[1, 4:])
    out_junk = layer(x_junk, mask)
    real = mask.bool()
    torch.testing.assert_close(out_junk.hidden_states[real], out.hidden_states[real])
    torch.testing.assert_close(out_junk.aux_loss, out.aux_loss)
    torch.testing.assert_close(out_junk.expert_load, out.expert_load)
    torch.testing.assert_close(out_junk.experts_per_token, out.experts_per_token)


def test_gradients_reach_router_and_experts() -> None:
    layer = make_layer()
    x, mask = make_inputs()
    out = layer(x, mask)
    (out.hidden_states.square().sum() + out.aux_loss).backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_single_expert_tokens_send_task_gradient_to_their_router() -> None:
    """Dynamic K with a confident router: every token uses one expert. The task loss alone (no aux loss) must
    reach the router: y = p_e expert_e(x) depends on W_g. (With weights renormalised over the chosen set, y =
    expert_e(x) and the router's task gradient was ~1e-7 -- numerically zero.)"""
    layer = make_layer(dynamic_k=True, threshold=0.4)
    x, mask = make_inputs()
    with torch.no_grad():
        layer.router.weight.mul_(0.0).add_(torch.randn_like(layer.router.weight) * 3.0)
    out = layer(x, mask)
    assert out.experts_per_token.item() == pytest.approx(1.0)
    out.hidden_states.square().sum().backward()
    grad = layer.router.weight.grad
    # finite difference of the same task loss along the gradient: a real, not rounding-level, dependence
    step = 1e-6 * grad / grad.norm()
    with torch.no_grad():
        layer.router.weight.add_(step)
        shifted = layer(x, mask).hidden_states.square().sum()
        layer.router.weight.sub_(step)
    base = out.hidden_states.detach().square().sum()
    assert grad.norm().item() > 1e-3
    assert (shifted - base).item() == pytest.approx((grad * step).sum().item(), rel=1e-3)


def test_renormalized_single_expert_tokens_keep_router_gradient() -> None:
    """Renormalised weights: a one-expert token gets weight exactly 1 (its output is expert_e(x), the raw
    output divided by p_e), yet the task loss still reaches the router through the numerator p_e."""
    raw_layer = make_layer(dynamic_k=True, threshold=0.4)
    renorm_layer = make_layer(dynamic_k=True, threshold=0.4, gate_weights="renormalized")
    x, mask = make_inputs()
    with torch.no_grad():
        weights = torch.randn_like(raw_layer.router.weight) * 3.0
        raw_layer.router.weight.copy_(weights)
        renorm_layer.router.weight.copy_(weights)
    raw, renorm = raw_layer(x, mask), renorm_layer(x, mask)
    assert renorm.experts_per_token.item() == pytest.approx(1.0)
    top_prob = torch.softmax(x @ weights.T, dim=-1).amax(dim=-1, keepdim=True)  # (B, T, 1)
    real = mask.bool()
    torch.testing.assert_close(renorm.hidden_states[real], (raw.hidden_states / top_prob)[real])
    renorm.hidden_states.square().sum().backward()
    assert renorm_layer.router.weight.grad.norm().item() > 1e-3


def test_router_entropy_matches_hand_formula() -> None:
    layer = make_layer(dynamic_k=True)
    x, mask = make_inputs()
    out = layer(x, mask)
    probs = torch.softmax(x.reshape(-1, D_MODEL) @ layer.router.weight.T, dim=-1)
    real = mask.reshape(-1).bool()
    expected = -(probs[real] * probs[real].log()).sum(-1).mean()
    torch.testing.assert_close(out.router_entropy, expected)
    assert 0 < out.router_entropy.item() <= math.log(NUM_EXPERTS)


def test_expert_without_tokens_is_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    layer, x = constant_feature_inputs(favoured=[1, 4], scale=30.0, top_k=2)
    rows_per_expert: dict[int, int] = {}
    original = moe_module.swiglu

    def counting_swiglu(tokens, w_gate, w_up, w_down):
        expert = next(e for e in range(NUM_EXPERTS) if torch.equal(w_gate, layer.experts.w_gate[e]))
        rows_per_expert[expert] = rows_per_expert.get(expert, 0) + tokens.shape[0]
        return original(tokens, w_gate, w_up, w_down)

    monkeypatch.setattr(moe_module, "swiglu", counting_swiglu)
    out = layer(x)
    num_tokens = BATCH * SEQ
    assert rows_per_expert == {1: num_tokens, 4: num_tokens}
    torch.testing.assert_close(out.hidden_states, dense_reference(layer, x))


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm unavailable")
def test_grouped_experts_match_loop_with_empty_group() -> None:
    torch.manual_seed(0)
    experts = SwiGLUExperts(num_experts=4, d_model=16, d_ff=32)
    counts = torch.tensor([3, 0, 5, 2])
    x = torch.randn(int(counts.sum()), 16)
    try:
        grouped = experts.grouped(x, counts)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"torch._grouped_mm not supported here: {error}")
    upstream = torch.randn_like(grouped)
    grouped_grads = torch.autograd.grad(grouped, list(experts.parameters()), upstream)
    looped = experts(x, counts.tolist())
    looped_grads = torch.autograd.grad(looped, list(experts.parameters()), upstream)
    torch.testing.assert_close(grouped, looped, rtol=1e-5, atol=1e-5)
    for got, expected in zip(grouped_grads, looped_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert all(grad[1].abs().max() == 0 for grad in grouped_grads)  # the empty expert gets no gradient


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm unavailable")
def test_cuda_bf16_grouped_path_matches_loop() -> None:
    torch.manual_seed(0)
    layer = MoELayer(d_model=64, d_ff=128, num_experts=8, top_k=2).cuda().bfloat16()
    x = torch.randn(4, 32, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grouped = layer(x).hidden_states
    assert layer._grouped_mm_usable, "grouped path fell back to the loop"
    grouped.float().square().sum().backward()
    grad_grouped = layer.experts.w_gate.grad.clone()
    layer.zero_grad()
    layer._grouped_mm_usable = False
    looped = layer(x).hidden_states
    looped.float().square().sum().backward()
    torch.testing.assert_close(grouped.float(), looped.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(grad_grouped.float(), layer.experts.w_gate.grad.float(), rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(top_k=0),
        dict(top_k=NUM_EXPERTS + 1),
        dict(threshold=0.0),
        dict(threshold=1.5),
        dict(num_experts=0, top_k=1),
        dict(load_balance_weight=-1.0),
        dict(gate_weights="softmax"),
    ],
)
def test_invalid_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_layer(**kwargs)


def test_wrong_mask_shape_raises() -> None:
    layer = make_layer()
    x, mask = make_inputs()
    with pytest.raises(ValueError, match="mask shape"):
        layer(x, mask[:, :-1])


def test_bf16_autocast_runs_and_stays_close_to_fp32() -> None:
    torch.manual_seed(0)
    layer = MoELayer(16, 32, num_experts=4, top_k=2)
    x = torch.randn(2, 5, 16)
    reference = layer(x).hidden_states
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x).hidden_states
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, rtol=5e-2, atol=5e-2)
