"""Focal loss for token classification, computed in fp32 (or fp64) from log-softmax."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from liquid.config import check_choice, check_token_loss

REDUCTIONS = ("mean", "sum", "none")
DEFAULT_IGNORE_INDEX = -100


class OptimizedFocalLoss(nn.Module):
    """FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t  (Lin et al., 2017).

    p_t is the softmax probability of the target class, computed from log-softmax in at least float32
    (logits are cast first, so bf16/fp16 logits are stable). alpha is None (alpha_t = 1), a float
    (the same for every class) or a 1-D tensor / list of per-class weights (alpha_t = alpha[target]).
    With label smoothing eps over V classes:
        loss = (1 - eps) FL_target + eps / V * sum_c FL_c,   FL_c = -alpha_c (1 - p_c)^gamma log p_c,
    so gamma = 0 and alpha = None give exactly F.cross_entropy(..., label_smoothing=eps).
    Targets equal to ignore_index contribute 0. reduction "mean" averages over non-ignored targets
    (0, not NaN, when all are ignored; not weighted by alpha, unlike F.cross_entropy(weight=...)),
    "sum" sums them, "none" returns the per-target loss with the targets' shape.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | Tensor | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int = DEFAULT_IGNORE_INDEX,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_token_loss(gamma, label_smoothing)
        check_choice("reduction", reduction, REDUCTIONS)
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.alpha_scalar: float | None = None
        if isinstance(alpha, (list, tuple)):
            alpha = torch.tensor(alpha, dtype=torch.float32)
        if isinstance(alpha, Tensor):
            if alpha.dim() != 1 or (alpha < 0).any():
                raise ValueError(
                    f"per-class alpha must be a 1-D tensor of non-negative weights, got shape {tuple(alpha.shape)}"
                )
            self.register_buffer("alpha", alpha.detach().clone().to(torch.promote_types(alpha.dtype, torch.float32)))
        else:
            if alpha is not None and alpha < 0:
                raise ValueError(f"alpha must be >= 0, got {alpha}")
            self.alpha_scalar = alpha
            self.register_buffer("alpha", None)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits (N, V) with targets (N,), or (B, T, V) with (B, T)."""
        if logits.shape[:-1] != targets.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} must be targets {tuple(targets.shape)} plus a class dimension"
            )
        compute_dtype = torch.promote_types(logits.dtype, torch.float32)
        log_probs = torch.log_softmax(logits.reshape(-1, logits.shape[-1]).to(compute_dtype), dim=-1)  # (N, V)
        return self.from_log_probs(log_probs, targets)

    def from_log_probs(self, log_probs: Tensor, targets: Tensor) -> Tensor:
        """The same loss from log-softmax output (N, V) in fp32 or wider, targets of any shape with N entries
        (a caller that needs the log-probabilities for something else computes them once)."""
        num_classes = log_probs.shape[-1]
        if self.alpha is not None and self.alpha.numel() != num_classes:
            raise ValueError(f"per-class alpha has {self.alpha.numel()} entries but logits have {num_classes} classes")
        flat_targets = targets.reshape(-1)  # (N,)
        valid = flat_targets != self.ignore_index
        safe_targets = torch.where(valid, flat_targets, torch.zeros_like(flat_targets))
        target_log_probs = log_probs.gather(1, safe_targets[:, None]).squeeze(1)  # (N,)
        alpha_t = None if self.alpha is None else self.alpha[safe_targets]
        loss = self._focal_terms(target_log_probs, alpha_t)  # (N,)
        if self.label_smoothing > 0:
            # Only here do we need FL_c for every class: (N, V) extra memory.
            smooth = self._focal_terms(log_probs, self.alpha).sum(dim=-1)  # (N,)
            loss = (1 - self.label_smoothing) * loss + self.label_smoothing / num_classes * smooth
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        return self._reduce(loss, valid, targets.shape)

    def _focal_terms(self, log_probs: Tensor, alpha: Tensor | None) -> Tensor:
        """-alpha (1 - p)^gamma log p elementwise; alpha broadcasts against log_probs (None: the scalar alpha)."""
        terms = -log_probs
        if self.gamma > 0:
            # 1 - p = -expm1(log p) keeps precision near p = 1; the floor keeps the gradient finite for gamma < 1.
            one_minus_p = (-torch.expm1(log_probs)).clamp(min=torch.finfo(log_probs.dtype).tiny)
            terms = one_minus_p.pow(self.gamma) * terms
        if alpha is not None:
            terms = terms * alpha.to(terms.dtype)
        elif self.alpha_scalar is not None:
            terms = terms * self.alpha_scalar
        return terms

    def _reduce(self, loss: Tensor, valid: Tensor, target_shape: torch.Size) -> Tensor:
        if self.reduction == "none":
            return loss.reshape(target_shape)
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / valid.sum().clamp(min=1)
