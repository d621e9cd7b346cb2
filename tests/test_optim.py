"""Muon + AdamW (liquid/training/optim.py) against independent references: the SVD, torch.optim.Muon, AdamW."""

import copy

import pytest
import torch
from torch import nn

from liquid.config import LiquidConfig
from liquid.modeling import LiquidFoundationModelOptimized
from liquid.training.optim import Muon, MuonWithAdamW, build_optimizer, newton_schulz, split_parameters


@pytest.mark.parametrize("shape", [(16, 40), (40, 16), (3, 12, 20)])
def test_newton_schulz_keeps_the_singular_vectors_and_flattens_the_spectrum(shape):
    """NS_5(G) = U S' V^T with the SVD's U, V (G = U S V^T) and every s' near 1 (Keller's quintic: ~0.68-1.13)."""
    gen = torch.Generator().manual_seed(0)
    grad = torch.randn(shape, generator=gen) * torch.logspace(-0.5, 0.5, shape[-1])  # spread the singular values
    out = newton_schulz(grad)
    u, _, vh = torch.linalg.svd(grad, full_matrices=False)
    core = u.mT @ out @ vh.mT  # diagonal iff out has grad's singular vectors
    diagonal = torch.diagonal(core, dim1=-2, dim2=-1)
    assert torch.allclose(core, torch.diag_embed(diagonal), atol=1e-4)
    assert diagonal.min() > 0.6 and diagonal.max() < 1.2
    assert out.shape == grad.shape


def test_muon_steps_match_torch_muon_run_on_each_matrix_alone():
    """Three steps (Nesterov momentum, decoupled decay, the 0.2 sqrt(max(m, n)) AdamW-RMS scale) over six matrices of
    three shapes, orthogonalised in one batched Newton-Schulz per shape (one shape holds a single matrix) ==
    torch.optim.Muon run on each matrix alone; NS precision differs slightly."""
    gen = torch.Generator().manual_seed(2)
    shapes = [(24, 40), (24, 40), (40, 24), (24, 40), (40, 24), (16, 24)]
    ours = [nn.Parameter(torch.randn(shape, generator=gen)) for shape in shapes]
    refs = [nn.Parameter(p.detach().clone()) for p in ours]
    mine = Muon(ours, lr=0.02, weight_decay=0.1)
    theirs = [torch.optim.Muon([ref], lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw") for ref in refs]
    start = [p.detach().clone() for p in ours]
    for _ in range(3):
        for mine_p, ref in zip(ours, refs):
            grad = torch.randn(mine_p.shape, generator=gen)
            mine_p.grad, ref.grad = grad.clone(), grad.clone()
        mine.step()
        for optimizer in theirs:
            optimizer.step()
    for mine_p, ref, first in zip(ours, refs, start):
        moved = (ref.detach() - first).abs().max()
        assert moved > 0.02
        assert (mine_p.detach() - ref.detach()).abs().max() < 0.02 * moved


def test_muon_refuses_vectors():
    with pytest.raises(ValueError, match="Muon updates matrices"):
        Muon([nn.Parameter(torch.zeros(3))], lr=0.1)


def test_the_split_gives_muon_the_hidden_matrices_and_adamw_the_rest():
    model = LiquidFoundationModelOptimized(LiquidConfig.from_preset("tiny", vocab_size=50))
    matrices, decay, rest = split_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for p in matrices}
    adamw = {names[id(p)] for p in decay + rest}
    assert muon.isdisjoint(adamw) and muon | adamw == set(names.values())
    assert "shared.weight" in adamw  # the embedding table, tied to the LM head
    assert all(name.endswith(("proj.weight", "w_gate", "w_up", "w_down")) for name in muon)
    assert any(name.endswith("q_proj.weight") for name in muon)
    assert all(not name.endswith(("conv.weight", "router.weight", "norm.weight", "bias")) for name in muon)
    assert any(".experts." in name for name in adamw) and not any(".experts." in name for name in muon)


def test_muon_with_adamw_follows_the_scheduler_and_restores_its_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 10))
    twin = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 10))
    ids = torch.randint(0, 10, (4, 5))

    def step(net, optimizer):
        optimizer.zero_grad()
        net(ids).logsumexp(-1).mean().backward()
        optimizer.step()

    optimizer = build_optimizer(model, 0.01, 0.1, optimizer="muon")
    assert isinstance(optimizer, MuonWithAdamW)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 ** s)
    for _ in range(2):
        step(model, optimizer)
        scheduler.step()
    assert {g["lr"] for g in optimizer.muon.param_groups + optimizer.adamw.param_groups} == {0.0025}

    twin.load_state_dict(model.state_dict())  # a resume: the weights and the optimizer state, then one more step
    other = build_optimizer(twin, 0.01, 0.1, optimizer="muon")
    other.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # a copy, as a checkpoint is (torch shares tensors)
    assert other.muon.state and other.adamw.state
    step(model, optimizer)
    step(twin, other)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b), (a - b).abs().max()
    with pytest.raises(ValueError, match="another --optimizer"):
        other.load_state_dict(torch.optim.AdamW(twin.parameters()).state_dict())


def test_adamw_is_the_default_and_unknown_names_are_refused():
    model = nn.Linear(4, 4)
    assert type(build_optimizer(model, 1e-3, 0.0)) is torch.optim.AdamW
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(model, 1e-3, 0.0, optimizer="sgd")


def test_muon_until_hands_the_matrices_to_a_fresh_adamw():
    """After set_progress(>= muon_until) a matrix moves exactly as a fresh AdamW at the scheduled lr moves it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 8, bias=False))
    reference = copy.deepcopy(model[1])
    optimizer = build_optimizer(model, 0.01, 0.0, optimizer="muon", muon_until=0.5)
    optimizer.muon.param_groups[0]["lr"] = 0.004  # what a scheduler would have set
    optimizer.set_progress(0.3)
    assert optimizer.late is None
    optimizer.set_progress(0.5)
    assert optimizer.late is not None and "late" in optimizer.state_dict()
    grad = torch.randn(8, 8)
    model[1].weight.grad, reference.weight.grad = grad.clone(), grad.clone()
    optimizer.step()
    torch.optim.AdamW(reference.parameters(), lr=0.004, weight_decay=0.0).step()
    assert torch.allclose(model[1].weight, reference.weight, atol=1e-7)
    assert not optimizer.muon.state  # Muon never ran

    resumed = build_optimizer(copy.deepcopy(model), 0.01, 0.0, optimizer="muon", muon_until=0.5)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    assert resumed.late is not None and resumed.late.state
