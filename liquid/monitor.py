"""Activation and gradient monitoring with forward hooks, sampled every N optimizer steps."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

logger = logging.getLogger(__name__)

ACTIVATION_STATS = ("act_mean", "act_std", "act_max_abs", "act_zero_frac", "act_nonfinite_frac")
GRAD_STAT = "grad_norm"
STAT_NAMES = (*ACTIVATION_STATS, GRAD_STAT)
# Output fields tried first when a module returns a dataclass / ModelOutput / dict.
PREFERRED_OUTPUT_FIELDS = ("hidden_states", "last_hidden_state", "embeddings", "logits")
# Containers whose direct children are "layers" for the default module selection.
LAYER_CONTAINERS = (nn.ModuleList, nn.Sequential)
EMBEDDING_NAME_PART = "embed"
LM_HEAD_NAME = "lm_head"
PLOT_ROW_HEIGHT_INCHES = 2.0
PLOT_WIDTH_INCHES = 10.0


class ActivationMonitor:
    """Per-module activation statistics and output-gradient norms, recorded on sampled steps.

    For the output a of each watched module (its first floating tensor; for dataclass/dict outputs
    the `hidden_states`/`last_hidden_state`/`embeddings`/`logits` field first), over finite values:
        act_mean = mean(a), act_std = unbiased std(a), act_max_abs = max |a|,
        act_zero_frac = #(a == 0) / #a, act_nonfinite_frac = #(not finite(a)) / #a,
        grad_norm = ||dL/da||_2 (summed in squares over calls if the module runs several times).
    Activation stats come from the module's last call in the sampled step. Steps s with
    s % every_n_steps == 0 are sampled (s counts `step()` calls from 0); on other steps the hooks
    return at once. Alerts: non-finite activations or gradients, max |a| > exploding_threshold,
    grad_norm < vanishing_threshold (vanishing) or > exploding_threshold (exploding).

    Default modules (``modules=None``): the direct children of every nn.ModuleList / nn.Sequential,
    plus modules whose last name part contains "embed" or is "lm_head"; a module inside one already
    watched is skipped (outermost wins). If none match, the model's direct children are watched.
    """

    def __init__(
        self,
        model: nn.Module,
        modules: Iterable[str] | None = None,
        every_n_steps: int = 1,
        vanishing_threshold: float = 1e-7,
        exploding_threshold: float = 1e4,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if vanishing_threshold < 0 or exploding_threshold <= 0:
            raise ValueError(
                f"need vanishing_threshold >= 0 and exploding_threshold > 0, "
                f"got {vanishing_threshold} and {exploding_threshold}"
            )
        self.every_n_steps = every_n_steps
        self.vanishing_threshold = vanishing_threshold
        self.exploding_threshold = exploding_threshold
        self.module_names = _resolve_modules(model, modules)
        self.history: list[dict[str, Any]] = []
        self.alerts: list[str] = []
        self._step = 0
        self._latest: dict[str, dict[str, float]] = {}
        self._pending_activations: dict[str, Tensor] = {}
        self._pending_grad_sq: dict[str, Tensor] = {}
        self._tensor_handles: list[RemovableHandle] = []
        named = dict(model.named_modules())
        self._module_handles = [named[name].register_forward_hook(self._make_hook(name)) for name in self.module_names]

    def should_record(self) -> bool:
        """Whether the current step is sampled (hooks do nothing otherwise)."""
        return self._step % self.every_n_steps == 0

    def step(self) -> None:
        """Call once per optimizer step, after backward: records what the sampled step captured."""
        if self.should_record() and self._pending_activations:
            self._record()
        self._clear_pending()
        self._step += 1

    def summary(self) -> dict[str, dict[str, float]]:
        """Latest recorded statistics per module (grad_norm is NaN if no gradient reached it)."""
        return {name: dict(stats) for name, stats in self._latest.items()}

    def remove(self) -> None:
        """Remove every hook this monitor registered; idempotent."""
        for handle in self._module_handles:
            handle.remove()
        self._module_handles.clear()
        self._clear_pending()

    def __enter__(self) -> ActivationMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def to_csv(self, path: str | Path) -> None:
        """Write the history as CSV with columns step, module, then the statistics."""
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", "module", *STAT_NAMES])
            writer.writeheader()
            writer.writerows(self.history)

    def plot(self, path: str | Path) -> None:
        """PNG with one subplot row per statistic and one line per watched module over steps."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(PLOT_WIDTH_INCHES, PLOT_ROW_HEIGHT_INCHES * len(STAT_NAMES)))
        FigureCanvasAgg(figure)
        axes = figure.subplots(len(STAT_NAMES), 1, sharex=True)
        for axis, stat in zip(axes, STAT_NAMES):
            for name in self.module_names:
                rows = [row for row in self.history if row["module"] == name]
                axis.plot([row["step"] for row in rows], [row[stat] for row in rows], label=name)
            axis.set_ylabel(stat)
        axes[-1].set_xlabel("step")
        if self.history:
            axes[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        figure.tight_layout()
        figure.savefig(path, format="png")

    def _make_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not self.should_record():
                return
            tensor = _output_tensor(output)
            if tensor is None or tensor.numel() == 0:
                return
            self._pending_activations[name] = _activation_stats(tensor)
            if tensor.requires_grad:
                self._tensor_handles.append(tensor.register_hook(self._make_grad_hook(name)))

        return hook

    def _make_grad_hook(self, name: str) -> Callable[[Tensor], None]:
        def grad_hook(grad: Tensor) -> None:
            with torch.no_grad():
                norm_sq = grad.detach().to(_stat_dtype(grad)).square().sum()
                self._pending_grad_sq[name] = self._pending_grad_sq.get(name, 0) + norm_sq

        return grad_hook

    def _record(self) -> None:
        names = list(self._pending_activations)
        device = self._pending_activations[names[0]].device
        rows = []
        for name in names:
            activation = self._pending_activations[name].to(device=device, dtype=torch.float64)
            grad_sq = self._pending_grad_sq.get(name)
            grad_norm = torch.full((1,), math.nan, device=device, dtype=torch.float64)
            if grad_sq is not None:
                grad_norm = grad_sq.to(device=device, dtype=torch.float64).sqrt().reshape(1)
            rows.append(torch.cat([activation, grad_norm]))
        values = torch.stack(rows).tolist()  # (M, len(STAT_NAMES)): the one host sync of the step
        for name, row in zip(names, values):
            stats = dict(zip(STAT_NAMES, row))
            self._latest[name] = stats
            self.history.append({"step": self._step, "module": name, **stats})
            self._check(name, stats, has_grad=name in self._pending_grad_sq)

    def _check(self, name: str, stats: dict[str, float], has_grad: bool) -> None:
        problems = []
        if stats["act_nonfinite_frac"] > 0:
            problems.append(f"non-finite activations ({stats['act_nonfinite_frac']:.1%} of values)")
        if stats["act_max_abs"] > self.exploding_threshold:
            problems.append(f"exploding activations (max |a| {stats['act_max_abs']:.2g})")
        grad_norm = stats[GRAD_STAT]
        if has_grad and not math.isfinite(grad_norm):
            problems.append("non-finite gradient")
        elif grad_norm < self.vanishing_threshold:
            problems.append(f"vanishing gradient (norm {grad_norm:.2g})")
        elif grad_norm > self.exploding_threshold:
            problems.append(f"exploding gradient (norm {grad_norm:.2g})")
        for problem in problems:
            message = f"{name}: {problem} [step {self._step}]"
            logger.warning(message)
            self.alerts.append(message)

    def _clear_pending(self) -> None:
        for handle in self._tensor_handles:
            handle.remove()
        self._tensor_handles.clear()
        self._pending_activations.clear()
        self._pending_grad_sq.clear()


MAX_NAMED_PARAMETERS = 5  # how many non-finite parameters a message names before "and N more"


@torch.no_grad()
def nonfinite_parameters(model: nn.Module, gradients: bool = False) -> list[str]:
    """Names of the parameters (``gradients=True``: of the gradients) holding a NaN or an infinity.

    Parameter values are the place to look first: a NaN weight can give a finite loss (e.g. CPU SDPA
    with NaN queries) while every gradient turns NaN, so module-level alerts point far from the cause.
    """
    bad = []
    for name, param in model.named_parameters():
        tensor = param.grad if gradients else param
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def describe_nonfinite(kind: str, names: list[str]) -> str:
    """``"non-finite parameter decoder.layers.0.cross_attn.q_proj.weight"`` (first few names, then a count)."""
    shown = ", ".join(names[:MAX_NAMED_PARAMETERS])
    more = f" and {len(names) - MAX_NAMED_PARAMETERS} more" if len(names) > MAX_NAMED_PARAMETERS else ""
    return f"non-finite {kind}{'s' if len(names) > 1 else ''} {shown}{more}"


def _resolve_modules(model: nn.Module, modules: Iterable[str] | None) -> list[str]:
    named = dict(model.named_modules())
    if modules is not None:
        names = list(modules)
        unknown = [name for name in names if name not in named]
        if unknown:
            raise ValueError(f"unknown module names {unknown}; choose from model.named_modules()")
        if not names:
            raise ValueError("modules is empty; pass None for the default layer selection")
        return names
    names = _default_modules(model)
    if not names:
        names = [name for name, _ in model.named_children()]
    if not names:
        raise ValueError("model has no submodules to watch; pass modules=[...] explicitly")
    return names


def _default_modules(model: nn.Module) -> list[str]:
    """Children of layer containers plus embeddings and lm_head; outermost match wins."""
    selected: list[str] = []

    def covered(name: str) -> bool:
        return any(name == parent or name.startswith(parent + ".") for parent in selected)

    for name, module in model.named_modules():
        if name and covered(name):
            continue
        last = name.rsplit(".", 1)[-1]
        if name and (EMBEDDING_NAME_PART in last.lower() or last == LM_HEAD_NAME):
            selected.append(name)
        elif isinstance(module, LAYER_CONTAINERS):
            selected.extend(f"{name}.{child}" if name else child for child, _ in module.named_children())
    return selected


def _output_tensor(output: Any) -> Tensor | None:
    """The first floating tensor of a module output (preferred dataclass/dict fields first)."""
    if isinstance(output, Tensor):
        return output if output.is_floating_point() else None
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        values: dict[Any, Any] = {field.name: getattr(output, field.name) for field in dataclasses.fields(output)}
    elif isinstance(output, Mapping):
        values = dict(output)
    elif isinstance(output, (tuple, list)):
        values = dict(enumerate(output))
    else:
        return None
    for field in PREFERRED_OUTPUT_FIELDS:
        value = values.get(field)
        if isinstance(value, Tensor) and value.is_floating_point():
            return value
    for value in values.values():
        tensor = _output_tensor(value)
        if tensor is not None:
            return tensor
    return None


def _stat_dtype(tensor: Tensor) -> torch.dtype:
    return torch.promote_types(tensor.dtype, torch.float32)


@torch.no_grad()
def _activation_stats(output: Tensor) -> Tensor:
    """(5,) tensor in ACTIVATION_STATS order, computed over finite values, without a host sync."""
    values = output.detach().to(_stat_dtype(output)).reshape(-1)  # (n,)
    total = values.numel()
    finite = torch.isfinite(values)
    num_finite = finite.sum()
    num_nonfinite = total - num_finite
    finite_values = torch.where(finite, values, 0.0)  # non-finite entries replaced by 0
    mean = finite_values.sum() / num_finite.clamp(min=1)
    centred = finite_values - mean
    # Each replaced entry adds (0 - mean)^2 to the dot product: take it back out.
    squares = torch.dot(centred, centred) - num_nonfinite * mean.square()
    std = (squares.clamp(min=0) / (num_finite - 1).clamp(min=1)).sqrt()
    low, high = torch.aminmax(finite_values)
    max_abs = torch.maximum(low.abs(), high.abs())
    zero_frac = (total - torch.count_nonzero(values)) / total  # NaN counts as non-zero
    nonfinite_frac = num_nonfinite / total
    return torch.stack([mean, std, max_abs, zero_frac.to(mean.dtype), nonfinite_frac.to(mean.dtype)])
