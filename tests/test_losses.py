"""Tests for liquid.losses.OptimizedFocalLoss against cross-entropy and a plain float64 reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from liquid.losses import OptimizedFocalLoss

IGNORE = -100
VOCAB = 7


def make_batch(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    logits = 3 * torch.randn(*shape, VOCAB)
    targets = torch.randint(0, VOCAB, shape)
    targets.view(-1)[::4] = IGNORE
    return logits, targets


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, eps: float, reduction: str) -> torch.Tensor:
    flat = F.cross_entropy(
        logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=IGNORE, label_smoothing=eps, reduction=reduction
    )
    return flat.reshape(targets.shape) if reduction == "none" else flat


def reference_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha, eps: float) -> torch.Tensor:
    """Per-target focal loss in plain python float64 (0 at ignored targets)."""
    rows = logits.reshape(-1, VOCAB).double().tolist()
    out = []
    for row, target in zip(rows, targets.reshape(-1).tolist()):
        if target == IGNORE:
            out.append(0.0)
            continue
        norm = sum(math.exp(v) for v in row)
        probs = [math.exp(v) / norm for v in row]
        if alpha is None:
            weight = [1.0] * VOCAB
        elif isinstance(alpha, float):
            weight = [alpha] * VOCAB
        else:
            weight = alpha.tolist()

        def fl(c: int) -> float:
            return -weight[c] * (1 - probs[c]) ** gamma * math.log(probs[c])

        out.append((1 - eps) * fl(target) + eps / VOCAB * sum(fl(c) for c in range(VOCAB)))
    return torch.tensor(out, dtype=torch.float64).reshape(targets.shape)


@pytest.mark.parametrize("shape", [(12,), (3, 5)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma_zero_equals_cross_entropy(shape: tuple[int, ...], eps: float, reduction: str) -> None:
    logits, targets = make_batch(shape)
    loss = OptimizedFocalLoss(gamma=0.0, label_smoothing=eps, ignore_index=IGNORE, reduction=reduction)(logits, targets)
    torch.testing.assert_close(loss, cross_entropy(logits, targets, eps, reduction))


@pytest.mark.parametrize("alpha", [0.25, torch.linspace(0.1, 1.0, VOCAB, dtype=torch.float64)])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(10,), (2, 6)])
def test_gamma_two_matches_float64_reference(alpha, eps: float, shape: tuple[int, ...]) -> None:
    logits, targets = make_batch(shape, seed=3)
    logits = logits.double()
    loss_fn = OptimizedFocalLoss(gamma=2.0, alpha=alpha, label_smoothing=eps, ignore_index=IGNORE, reduction="none")
    expected = reference_focal(logits, targets, 2.0, alpha, eps)
    per_target = loss_fn(logits, targets)
    torch.testing.assert_close(per_target, expected, rtol=1e-10, atol=1e-12)
    loss_fn.reduction = "mean"
    valid = targets != IGNORE
    torch.testing.assert_close(loss_fn(logits, targets), expected[valid].mean(), rtol=1e-10, atol=1e-12)


def test_alpha_list_equals_tensor() -> None:
    logits, targets = make_batch((9,))
    weights = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    from_list = OptimizedFocalLoss(alpha=weights)(logits, targets)
    torch.testing.assert_close(from_list, OptimizedFocalLoss(alpha=torch.tensor(weights))(logits, targets))


def test_easy_examples_are_down_weighted() -> None:
    targets = torch.tensor([0, 0])
    logits = torch.tensor([[6.0, 0.0, 0.0], [0.3, 0.0, 0.0]])  # confident correct, then uncertain
    focal = OptimizedFocalLoss(gamma=2.0, reduction="none")(logits, targets)
    ce = F.cross_entropy(logits, targets, reduction="none")
    ratio = focal / ce
    p_t = torch.softmax(logits, -1)[:, 0]
    torch.testing.assert_close(ratio, (1 - p_t) ** 2)
    assert ratio[0] < ratio[1] < 1


def test_bf16_logits_are_stable() -> None:
    logits, targets = make_batch((4, 9))
    logits = 40 * logits  # saturated softmax: p_t rounds to 0 or 1 for many rows
    loss_fn = OptimizedFocalLoss(gamma=2.0, label_smoothing=0.1)
    bf16 = loss_fn(logits.bfloat16(), targets)
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16)
    torch.testing.assert_close(bf16, loss_fn(logits.bfloat16().float(), targets))
    torch.testing.assert_close(bf16, loss_fn(logits, targets), rtol=2e-2, atol=2e-2)
    logits_bf16 = logits.bfloat16().requires_grad_()
    loss_fn(logits_bf16, targets).backward()
    assert torch.isfinite(logits_bf16.grad.float()).all()


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_saturated_logits_have_finite_gradients(gamma: float) -> None:
    logits = torch.tensor([[200.0, 0.0, 0.0]], requires_grad=True)  # p_t == 1 exactly in fp32
    loss = OptimizedFocalLoss(gamma=gamma)(logits, torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_batch_gives_zero(reduction: str) -> None:
    logits = torch.randn(2, 3, VOCAB, requires_grad=True)
    targets = torch.full((2, 3), IGNORE)
    loss = OptimizedFocalLoss(gamma=2.0, label_smoothing=0.1, reduction=reduction)(logits, targets)
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad.abs().max() == 0


def test_gradcheck_float64() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 3, IGNORE], [2, 1, 1]])
    alpha = torch.tensor([0.2, 0.5, 1.0, 0.7], dtype=torch.float64)
    loss_fn = OptimizedFocalLoss(gamma=2.0, alpha=alpha, label_smoothing=0.1)
    assert torch.autograd.gradcheck(lambda z: loss_fn(z, targets), (logits,))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(gamma=-1.0),
        dict(label_smoothing=1.0),
        dict(label_smoothing=-0.1),
        dict(alpha=-0.5),
        dict(alpha=torch.ones(2, 2)),
        dict(reduction="avg"),
    ],
)
def test_invalid_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        OptimizedFocalLoss(**kwargs)


def test_alpha_size_and_shape_mismatch_raise() -> None:
    logits, targets = make_batch((5,))
    with pytest.raises(ValueError, match="per-class alpha"):
        OptimizedFocalLoss(alpha=torch.ones(VOCAB + 1))(logits, targets)
    with pytest.raises(ValueError, match="class dimension"):
        OptimizedFocalLoss()(logits, targets[:-1])
