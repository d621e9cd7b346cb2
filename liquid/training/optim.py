"""Optimisers: AdamW, or Muon for the hidden weight matrices with AdamW for everything else.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers"; Liu et al. 2025, "Muon is scalable for
LLM training") replaces each matrix's update by the nearest semi-orthogonal matrix of its momentum::

    B_t = mu B_{t-1} + G_t                    (momentum; Nesterov: M_t = G_t + mu B_t, else M_t = B_t)
    O_t = NS_5(M_t) ~ U V^T  for  M_t = U S V^T      (5 Newton-Schulz steps, no SVD)
    W_t = W_{t-1} - lr * wd * W_{t-1} - lr * 0.2 * sqrt(max(m, n)) * O_t

The factor ``0.2 sqrt(max(m, n))`` gives the update the RMS of a typical AdamW update (Liu et al.), so Muon
takes the learning rate and weight decay tuned for AdamW. The Newton-Schulz step on X (scaled to
spectral norm <= 1, the short side first) is ``X <- a X + (b A + c A^2) X`` with ``A = X X^T`` and
(a, b, c) = (3.4445, -4.7750, 2.0315), which pushes every singular value towards 1 in five steps.

`Muon` itself orthogonalises a stack of matrices (E, m, n) per matrix, but `split_parameters` gives it only
the 2-D weights (attention projections, the dense SwiGLU, the convolutions' 1x1 projections): on a 2-core
CPU the Newton-Schulz steps cost about 5 x 3 m^2 n FLOPs per matrix and step, which for the `small` preset
with its MoE experts included is as much as the forward and backward pass itself (docs/experiments.md,
session 9). Embedding tables (the tied LM head), norms, biases, convolution kernels, MoE routers and expert
stacks stay with AdamW. `MuonWithAdamW` presents both as one `torch.optim.Optimizer`, so the trainer's scheduler,
gradient clipping and checkpoints see a single optimizer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Iterable

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "muon")
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
MUON_MOMENTUM = 0.95
MUON_RMS_MATCH = 0.2  # update RMS of AdamW (Liu et al. 2025)
FUSED_ADAMW_DEVICES = ("cpu", "cuda")
NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
ADAMW_ONLY_MODULES = NO_DECAY_MODULES + (nn.Conv1d, nn.Conv2d)


def newton_schulz(matrix: Tensor, steps: int = NS_STEPS, eps: float = 1e-7) -> Tensor:
    """An approximately semi-orthogonal matrix with the singular vectors of `matrix` (..., m, n), in fp32."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.float()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT  # (..., n, m): the Gram matrix A is the smaller one
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + eps)  # Frobenius >= spectral norm: sigma <= 1
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """Muon (module docstring) for parameters of ndim >= 2 (leading dims: a stack of matrices)."""

    def __init__(self, params: Iterable[Any], lr: float, weight_decay: float = 0.0, momentum: float = MUON_MOMENTUM,
                 nesterov: bool = True, ns_steps: int = NS_STEPS) -> None:
        if lr <= 0 or weight_decay < 0 or not 0 <= momentum < 1:
            raise ValueError(f"Muon needs lr > 0, weight_decay >= 0 and momentum in [0, 1), got {lr}, "
                             f"{weight_decay}, {momentum}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      ns_steps=ns_steps))
        for group in self.param_groups:
            for param in group["params"]:
                if param.ndim < 2:
                    raise ValueError(f"Muon updates matrices; got a parameter of shape {tuple(param.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, mu = group["lr"], group["weight_decay"], group["momentum"]
            # matrices of one shape are orthogonalised together: one batched Newton-Schulz per shape instead of
            # one per matrix, the same arithmetic (on the 2-core Zen 1 the update went from 71.6 to 47.4 ms:
            # benchmarks/NOTES.md, row 17)
            by_shape: dict[tuple, list[tuple[nn.Parameter, Tensor]]] = {}
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad)
                buffer = state["momentum_buffer"]
                buffer.mul_(mu).add_(grad)
                direction = grad.add(buffer, alpha=mu) if group["nesterov"] else buffer
                by_shape.setdefault((tuple(param.shape), param.dtype, param.device), []).append((param, direction))
            for pairs in by_shape.values():
                params = [param for param, _ in pairs]
                directions = torch.stack([direction for _, direction in pairs])  # (k, ..., m, n)
                updates = newton_schulz(directions, group["ns_steps"]).to(params[0].dtype)
                scale = MUON_RMS_MATCH * max(params[0].shape[-2:]) ** 0.5
                for param, update in zip(params, updates):
                    if decay:
                        param.mul_(1 - lr * decay)
                    param.add_(update, alpha=-lr * scale)
        return loss


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(matrices, other decayed, not decayed): matrices are the hidden 2-D weights Muon takes (Linear weights);
    embeddings, norms, convolutions, biases, routers and expert stacks are the AdamW ones."""
    adamw_only = {id(p) for module in model.modules() if isinstance(module, ADAMW_ONLY_MODULES)
                  for p in module.parameters(recurse=False)}
    no_decay = {id(p) for module in model.modules() if isinstance(module, NO_DECAY_MODULES)
                for p in module.parameters(recurse=False)}
    matrices, decay, rest = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or id(param) in no_decay:
            rest.append(param)
        elif id(param) in adamw_only or param.ndim != 2 or name.split(".")[-2:-1] == ["router"]:
            decay.append(param)
        else:
            matrices.append(param)
    return matrices, decay, rest


def _adamw(groups: list[dict[str, Any]], learning_rate: float, beta2: float) -> torch.optim.AdamW:
    params = [p for group in groups for p in group["params"]]
    # fused AdamW (one kernel over all tensors, same update) is about 4x faster than foreach on CPU
    # (benchmarks/NOTES.md); used where every parameter is a float tensor on CPU or CUDA
    fused = all(p.device.type in FUSED_ADAMW_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, beta2), fused=fused or None)


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon for `matrices`, AdamW for `adamw_groups`, as one optimizer.

    ``param_groups`` is the two optimizers' own group dicts (Muon's first), so a learning-rate scheduler that
    sets ``group["lr"]`` drives both; ``state_dict`` is ``{"muon": ..., "adamw": ...}`` (plus ``"late"``).

    With ``muon_until < 1`` the matrices move to a fresh AdamW (the ``late`` optimizer, at the Muon group's
    scheduled learning rate) once `set_progress` reports that share of the run done: Muon's fast early steps,
    then AdamW's cheaper ones for the annealing.
    """

    def __init__(self, matrices: list[nn.Parameter], adamw_groups: list[dict[str, Any]], learning_rate: float,
                 weight_decay: float, beta2: float, ns_steps: int = NS_STEPS, muon_until: float = 1.0) -> None:
        # no Optimizer.__init__: the inner optimizers own the parameters and their state
        self.muon = Muon(matrices, lr=learning_rate, weight_decay=weight_decay, ns_steps=ns_steps)
        self.adamw = _adamw(adamw_groups, learning_rate, beta2)
        self.late: torch.optim.AdamW | None = None
        self.muon_until, self._beta2 = muon_until, beta2
        self.defaults = dict(lr=learning_rate)
        self.param_groups = self.muon.param_groups + self.adamw.param_groups
        self._optimizer_step_pre_hooks: OrderedDict = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict = OrderedDict()

    @property
    def state(self) -> dict:  # read-only view of the inner optimizers' per-parameter state
        return {**self.muon.state, **self.adamw.state, **(self.late.state if self.late is not None else {})}

    def set_progress(self, progress: float) -> None:
        """The trainer's share of the run done; at ``muon_until`` the matrices switch to AdamW (once)."""
        if self.late is None and progress >= self.muon_until:
            group = self.muon.param_groups[0]
            self.late = _adamw([{"params": group["params"], "weight_decay": group["weight_decay"]}], group["lr"],
                               self._beta2)
            logger.info("optimizer: %.0f%% of the run done, the weight matrices move from Muon to AdamW",
                        100 * progress)

    def step(self, closure=None):
        if self.late is None:
            loss = self.muon.step(closure)
        else:
            loss = None
            for group in self.late.param_groups:
                group["lr"] = self.muon.param_groups[0]["lr"]  # the scheduler drives the Muon group's dict
            self.late.step(closure)
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        state = {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}
        if self.late is not None:
            state["late"] = self.late.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) - {"late"} != {"muon", "adamw"}:
            raise ValueError(f"not a Muon + AdamW optimizer state (keys: {sorted(state_dict)}); was the run "
                             "started with another --optimizer?")
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups
        if "late" in state_dict:
            self.set_progress(1.0)
            self.late.load_state_dict(state_dict["late"])

    def __repr__(self) -> str:
        return f"MuonWithAdamW(muon={self.muon!r}, adamw={self.adamw!r})"


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float, beta2: float = 0.999,
                    optimizer: str = "adamw", ns_steps: int = NS_STEPS, muon_until: float = 1.0
                    ) -> torch.optim.Optimizer:
    """AdamW with decay on parameters of ndim >= 2 except embedding tables and norm weights; or (``"muon"``)
    Muon (`ns_steps` Newton-Schulz steps; until `muon_until` of the run) for the hidden weight matrices and
    that AdamW for the rest."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    matrices, decay, rest = split_parameters(model)
    if optimizer == "adamw":
        decayed = {id(p) for p in matrices + decay}
        ordered = [p for p in model.parameters() if id(p) in decayed]  # model order: checkpoints stay compatible
        return _adamw([{"params": ordered, "weight_decay": weight_decay},
                       {"params": rest, "weight_decay": 0.0}], learning_rate, beta2)
    logger.info("optimizer: Muon (%d Newton-Schulz steps) for %d weight matrices (%d values), AdamW for %d other "
                "tensors", ns_steps, len(matrices), sum(p.numel() for p in matrices), len(decay) + len(rest))
    return MuonWithAdamW(matrices, [{"params": decay, "weight_decay": weight_decay},
                                    {"params": rest, "weight_decay": 0.0}], learning_rate, weight_decay, beta2,
                         ns_steps, muon_until)


__all__ = ["MUON_MOMENTUM", "NS_STEPS", "Muon", "MuonWithAdamW", "OPTIMIZERS", "build_optimizer", "newton_schulz",
           "split_parameters"]
