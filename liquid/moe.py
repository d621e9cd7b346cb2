"""Sparse mixture of SwiGLU experts with static top-k or dynamic-K routing.

Routing follows the seed: a softmax gate ``G(x) = softmax(W_g x)`` picks, per token, either the
``top_k`` most probable experts (static) or the fewest experts whose sorted probabilities reach
``threshold`` (dynamic K, Huang et al. 2024, "Harder Tasks Need More Experts"), at least 1 and at
most ``top_k``. Tokens are dispatched grouped by expert (sort the (token, slot) pairs by expert id),
so no expert ever computes a token that was not routed to it.

Each chosen expert's output is scaled by its raw gate probability p_e (Switch Transformer, Fedus et al.
2021), not by p_e renormalised over the chosen set: after renormalisation a token routed to one expert
gets weight exactly 1, so the task loss would send its router no gradient. With ``gate_weights=
"renormalized"`` the weight is p_e / sg(sum_{j in S} p_j) (sg: stop-gradient): the chosen weights sum to 1,
as a dense layer's output has weight 1, while dL/dp_e, and so the router's gradient, stays non-zero
(d w_e / d p_e = 1 / sum_S p even for |S| = 1).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid.config import GATE_WEIGHTS, check_choice, check_positive, check_routing

logger = logging.getLogger(__name__)

# Offsets passed to torch._grouped_mm must be int32.
GROUPED_MM_OFFSET_DTYPE = torch.int32
# The grouped-matmul kernels only exist for CUDA bf16 inputs.
GROUPED_MM_DTYPE = torch.bfloat16


@dataclass
class MoEOutput:
    """Output of :class:`MoELayer`.

    hidden_states: same shape as the input; 0 at padded (unrouted) tokens.
    aux_loss: scalar, weighted load-balancing loss plus router z-loss.
    experts_per_token: scalar tensor, mean number of experts per routed (real) token.
    expert_load: (E,) fraction of routed (token, expert) assignments given to each expert; sums to 1.
    router_logits: (N, E) router logits of every flattened token (padded ones included).
    router_entropy: scalar, mean over real tokens of -sum_e p_e log p_e (log E: uniform, 0: one-hot).
    """

    hidden_states: Tensor
    aux_loss: Tensor
    experts_per_token: Tensor
    expert_load: Tensor
    router_logits: Tensor
    router_entropy: Tensor


@dataclass
class Routing:
    """Sparse routing decision for N tokens with K = top_k slots each.

    expert_ids: (N, K) chosen experts, sorted by decreasing probability.
    weights: (N, K) combine weights (the raw gate probabilities) in the router dtype, 0 at inactive slots.
    active: (N, K) bool, slot used (dynamic K drops the tail; padded tokens use no slot).
    """

    expert_ids: Tensor
    weights: Tensor
    active: Tensor


def swiglu(x: Tensor, w_gate: Tensor, w_up: Tensor, w_down: Tensor) -> Tensor:
    """One SwiGLU expert: (silu(x W_g) * (x W_u)) W_d; x (M, D), W_g/W_u (D, F), W_d (F, D) -> (M, D)."""
    return (F.silu(x @ w_gate) * (x @ w_up)) @ w_down


class SwiGLUExperts(nn.Module):
    """E independent SwiGLU feed-forward networks stored as 3-D weights.

    expert_e(x) = (silu(x W_g^e) * (x W_u^e)) W_d^e,
    with W_g, W_u of shape (E, D, F) and W_d of shape (E, F, D).
    """

    def __init__(self, num_experts: int, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.num_experts = num_experts
        self.w_gate = nn.Parameter(torch.empty(num_experts, d_model, d_ff))
        self.w_up = nn.Parameter(torch.empty(num_experts, d_model, d_ff))
        self.w_down = nn.Parameter(torch.empty(num_experts, d_ff, d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) per matrix, the scale of nn.Linear's default init."""
        d_model, d_ff = self.w_gate.shape[1], self.w_gate.shape[2]
        for weight, fan_in in ((self.w_gate, d_model), (self.w_up, d_model), (self.w_down, d_ff)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x_sorted: Tensor, counts: list[int]) -> Tensor:
        """Experts on tokens sorted by expert: rows [start_e, start_e + counts[e]) go to expert e.

        Experts with no tokens are never called. x_sorted (M, D) -> (M, D).
        """
        # unbind once: its backward stacks the per-expert gradients in one (E, D, F) write,
        # where indexing w[e] per expert would allocate a full-size zero gradient per call.
        gates, ups, downs = self.w_gate.unbind(0), self.w_up.unbind(0), self.w_down.unbind(0)
        pieces = []
        start = 0
        for expert_index, count in enumerate(counts):
            if count == 0:
                continue
            rows = x_sorted[start : start + count]  # (count, D)
            pieces.append(swiglu(rows, gates[expert_index], ups[expert_index], downs[expert_index]))
            start += count
        return torch.cat(pieces, dim=0)

    def grouped(self, x_sorted: Tensor, counts: Tensor) -> Tensor:
        """Same as :meth:`forward` with ``torch._grouped_mm`` (one kernel per matmul, no host sync)."""
        offsets = counts.cumsum(0).to(GROUPED_MM_OFFSET_DTYPE)  # (E,) end row of each group
        dtype = x_sorted.dtype
        gate = torch._grouped_mm(x_sorted, self.w_gate.to(dtype), offs=offsets)  # (M, F)
        up = torch._grouped_mm(x_sorted, self.w_up.to(dtype), offs=offsets)  # (M, F)
        return torch._grouped_mm(F.silu(gate) * up, self.w_down.to(dtype), offs=offsets)  # (M, D)


class MoELayer(nn.Module):
    """Sparse mixture of SwiGLU experts.

    Gate: p = softmax(W_g x) over E experts (W_g: Linear(D, E, bias=False)).
    Selection S(x): the top_k experts (static), or with dynamic K the fewest experts in decreasing
    probability whose probabilities sum to >= threshold, clamped to [1, top_k].
    Output: y = sum_{e in S(x)} w_e expert_e(x) with w_e = p_e (``gate_weights="raw"``) or
    w_e = p_e / sg(sum_{j in S(x)} p_j) (``"renormalized"``); either way dL/dW_g != 0 even when
    |S(x)| = 1 (module docstring).
    aux_loss = load_balance_weight * E * sum_i f_i P_i + z_loss_weight * mean_t logsumexp(logits_t)^2,
    with f_i the fraction of routed (token, expert) assignments going to expert i (Switch Transformer)
    and P_i the mean router probability of expert i, both over real (unpadded) tokens only; the
    second term is the ST-MoE router z-loss.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        num_experts: int,
        top_k: int = 2,
        dynamic_k: bool = False,
        threshold: float = 0.4,
        load_balance_weight: float = 1e-2,
        z_loss_weight: float = 1e-3,
        gate_weights: str = "raw",
    ) -> None:
        super().__init__()
        check_positive(d_model=d_model, d_ff=d_ff)
        check_routing(num_experts, top_k, threshold, load_balance_weight, z_loss_weight)
        check_choice("gate_weights", gate_weights, GATE_WEIGHTS)
        self.d_model = d_model
        self.num_experts = num_experts
        self.top_k = top_k
        self.dynamic_k = dynamic_k
        self.threshold = threshold
        self.load_balance_weight = load_balance_weight
        self.z_loss_weight = z_loss_weight
        self.gate_weights = gate_weights
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.experts = SwiGLUExperts(num_experts, d_model, d_ff)
        self._grouped_mm_usable = hasattr(torch, "_grouped_mm")

    def forward(self, x: Tensor, mask: Tensor | None = None) -> MoEOutput:
        """x: (B, T, D) or (N, D); mask: x.shape[:-1], 1 for real tokens (padded ones are not routed)."""
        if x.shape[-1] != self.d_model:
            raise ValueError(f"expected last dimension {self.d_model}, got input of shape {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:-1]:
            raise ValueError(f"mask shape {tuple(mask.shape)} must equal input shape without D {tuple(x.shape[:-1])}")
        x_flat = x.reshape(-1, self.d_model)  # (N, D)
        if mask is None:
            real = torch.ones(x_flat.shape[0], dtype=torch.bool, device=x.device)  # (N,)
        else:
            real = mask.reshape(-1).bool()  # (N,)
        router_logits = self.router(x_flat)  # (N, E)
        probs = torch.softmax(router_logits, dim=-1, dtype=_router_dtype(router_logits))  # (N, E)
        routing = self._route(probs, real)
        hidden = self._dispatch(x_flat, routing)  # (N, D)
        expert_load = self._expert_load(routing)
        num_real = real.sum().clamp(min=1)
        return MoEOutput(
            hidden_states=hidden.reshape(x.shape),
            aux_loss=self._aux_loss(router_logits, probs, expert_load, real, num_real),
            experts_per_token=routing.active.sum() / num_real,
            expert_load=expert_load,
            router_logits=router_logits,
            router_entropy=_mean_entropy(probs, real, num_real),
        )

    def _route(self, probs: Tensor, real: Tensor) -> Routing:
        top_probs, expert_ids = probs.topk(self.top_k, dim=-1)  # (N, K), sorted descending
        if self.dynamic_k:
            # Slot j is needed while the mass of the slots before it is still below threshold;
            # slot 0 always is (its exclusive prefix sum is 0 < threshold).
            mass_before = top_probs.cumsum(dim=-1) - top_probs  # (N, K)
            active = mass_before < self.threshold
        else:
            active = torch.ones_like(top_probs, dtype=torch.bool)
        active = active & real[:, None]
        weights = top_probs * active  # (N, K) raw probabilities p_e, 0 at inactive slots
        if self.gate_weights == "renormalized":
            # value p_e / sum_S p (sums to 1), gradient through the numerator only (module docstring)
            chosen_mass = weights.sum(dim=-1, keepdim=True).detach()  # (N, 1), 0 for padded tokens
            weights = weights / chosen_mass.clamp_min(torch.finfo(weights.dtype).tiny)
        return Routing(expert_ids=expert_ids, weights=weights, active=active)

    def _dispatch(self, x_flat: Tensor, routing: Routing) -> Tensor:
        num_tokens = x_flat.shape[0]
        token_ids = torch.arange(num_tokens, device=x_flat.device)[:, None].expand_as(routing.expert_ids)  # (N, K)
        flat_experts = routing.expert_ids[routing.active]  # (M,) one entry per routed (token, expert) pair
        order = torch.argsort(flat_experts, stable=True)
        sorted_tokens = token_ids[routing.active][order]  # (M,)
        sorted_weights = routing.weights[routing.active][order]  # (M,)
        counts = torch.bincount(flat_experts, minlength=self.num_experts)  # (E,)
        output = x_flat.new_zeros(x_flat.shape)
        if sorted_tokens.numel() == 0:
            return output
        expert_out = self._run_experts(x_flat.index_select(0, sorted_tokens), counts)  # (M, D)
        expert_out = expert_out * sorted_weights[:, None].to(expert_out.dtype)
        return output.index_add(0, sorted_tokens, expert_out.to(output.dtype))  # autocast: experts may run in bf16

    def _run_experts(self, x_sorted: Tensor, counts: Tensor) -> Tensor:
        if self._grouped_mm_usable and x_sorted.is_cuda and x_sorted.dtype == GROUPED_MM_DTYPE:
            try:
                return self.experts.grouped(x_sorted, counts)
            except (RuntimeError, NotImplementedError) as error:
                logger.warning("torch._grouped_mm failed (%s); falling back to the per-expert loop", error)
                self._grouped_mm_usable = False
        return self.experts(x_sorted, counts.tolist())

    def _expert_load(self, routing: Routing) -> Tensor:
        flat_experts = routing.expert_ids[routing.active]
        counts = torch.bincount(flat_experts, minlength=self.num_experts).to(routing.weights.dtype)  # (E,)
        return counts / counts.sum().clamp(min=1)

    def _aux_loss(
        self, router_logits: Tensor, probs: Tensor, expert_load: Tensor, real: Tensor, num_real: Tensor
    ) -> Tensor:
        real_f = real.to(probs.dtype)[:, None]  # (N, 1)
        mean_probs = (probs * real_f).sum(dim=0) / num_real  # (E,)
        balance = self.num_experts * (expert_load * mean_probs).sum()
        log_z = torch.logsumexp(router_logits.to(probs.dtype), dim=-1)  # (N,)
        z_loss = (log_z.square() * real_f[:, 0]).sum() / num_real
        return self.load_balance_weight * balance + self.z_loss_weight * z_loss


def _router_dtype(router_logits: Tensor) -> torch.dtype:
    """Routing runs in at least float32 (stable softmax under bf16/fp16), float64 stays float64."""
    return torch.promote_types(router_logits.dtype, torch.float32)


def _mean_entropy(probs: Tensor, real: Tensor, num_real: Tensor) -> Tensor:
    """Mean router entropy -sum_e p_e log p_e over real tokens (a statistic: no gradient)."""
    entropy = -torch.special.xlogy(probs.detach(), probs.detach()).sum(dim=-1)  # (N,)
    return (entropy * real.to(entropy.dtype)).sum() / num_real
