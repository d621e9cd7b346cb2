"""PNG plots of a run from its ``log.jsonl`` records (matplotlib, Agg canvas: no display needed).

- ``loss.png``: training losses (total, token, cross-entropy) and validation losses over steps, and
  validation accuracy on a second axis row.
- ``accuracy.png``: validation accuracy per task against training wall-clock minutes (the learning curve
  that matters for a time-budgeted run).
- ``expert_load.png``: one row per decoder MoE layer, one line per expert: the share of routed tokens
  the expert received at each logged step (a balanced layer sits at 1 / num_experts).
- ``components.png`` (when logged): LiquidEmbedding's compression ratio (encoder, decoder) and each MoE
  layer's router entropy and experts per token over steps.

The ActivationMonitor's own plot is written by `ActivationMonitor.plot`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

LOSS_PLOT = "loss.png"
ACCURACY_PLOT = "accuracy.png"
EXPERT_LOAD_PLOT = "expert_load.png"
COMPONENTS_PLOT = "components.png"
COMPONENT_PREFIXES = ("compression_ratio_", "router_entropy_", "experts_per_token_")  # one axis row each
FIGURE_WIDTH_INCHES = 9.0
ROW_HEIGHT_INCHES = 3.0
TRAIN_CURVES = ("loss", "lm_loss", "ce_loss")
EVAL_CURVES = ("val_loss", "val_lm_loss", "val_ce_loss")


def latest_per_step(records: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Records of one type, one per step (the last written wins: a resumed run rewrites its tail), by step."""
    by_step = {record["step"]: record for record in records if record.get("type") == kind}
    return [by_step[step] for step in sorted(by_step)]


def _new_figure(rows: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(FIGURE_WIDTH_INCHES, ROW_HEIGHT_INCHES * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return figure, list(axes)


def plot_losses(records: Sequence[dict[str, Any]], path: Path) -> None:
    train = latest_per_step(records, "train")
    evals = latest_per_step(records, "eval")
    figure, (loss_axis, accuracy_axis) = _new_figure(2)
    for key in TRAIN_CURVES:
        points = [(r["step"], r[key]) for r in train if r.get(key) is not None]
        loss_axis.plot([s for s, _ in points], [v for _, v in points], label=f"train {key}")
    for key in EVAL_CURVES:
        points = [(r["step"], r[key]) for r in evals if key in r]
        loss_axis.plot([s for s, _ in points], [v for _, v in points], marker="o", label=key)
    loss_axis.set_ylabel("loss")
    loss_axis.legend(fontsize="small")
    accuracy_keys = sorted({key for r in evals for key in r if key.startswith("val_accuracy")})
    for key in accuracy_keys:
        accuracy_axis.plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r],
                           marker="o", label=key)
    accuracy_axis.set_ylabel("validation accuracy")
    accuracy_axis.set_xlabel("step")
    if accuracy_keys:
        accuracy_axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")


def plot_accuracy_vs_time(records: Sequence[dict[str, Any]], path: Path) -> bool:
    """Writes the plot; False (nothing written) when no validation carries a wall-clock time."""
    evals = [r for r in latest_per_step(records, "eval") if r.get("elapsed_minutes") is not None]
    if not evals:
        return False
    figure, (axis,) = _new_figure(1)
    minutes = [r["elapsed_minutes"] for r in evals]
    for key in sorted({key for r in evals for key in r if key.startswith("val_accuracy")}):
        label = key.removeprefix("val_accuracy").lstrip("_") or "overall"
        axis.plot(minutes, [r.get(key, float("nan")) for r in evals], marker="o", label=label,
                  linewidth=2.5 if label == "overall" else 1.5)
    axis.set_xlabel("training wall-clock (minutes)")
    axis.set_ylabel("validation accuracy")
    axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return True


def plot_expert_load(records: Sequence[dict[str, Any]], path: Path) -> bool:
    """Writes the plot; False (nothing written) when no record carries expert loads."""
    train = [r for r in latest_per_step(records, "train") if r.get("expert_load")]
    if not train:
        return False
    layers = len(train[0]["expert_load"])
    figure, axes = _new_figure(layers)
    steps = [r["step"] for r in train]
    for layer, axis in enumerate(axes):
        experts = len(train[0]["expert_load"][layer])
        for expert in range(experts):
            axis.plot(steps, [r["expert_load"][layer][expert] for r in train], label=f"expert {expert}")
        axis.axhline(1.0 / experts, color="grey", linestyle="--", linewidth=1)
        axis.set_ylabel(f"decoder layer {layer}\nload share")
    axes[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[-1].set_xlabel("step")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return True


def plot_components(records: Sequence[dict[str, Any]], path: Path) -> bool:
    """One row per prefix of COMPONENT_PREFIXES, one line per logged key; False (nothing written) if none."""
    train = latest_per_step(records, "train")
    rows = [(prefix, sorted({k for r in train for k in r if k.startswith(prefix)})) for prefix in COMPONENT_PREFIXES]
    rows = [(prefix, keys) for prefix, keys in rows if keys]
    if not rows:
        return False
    figure, axes = _new_figure(len(rows))
    for axis, (prefix, keys) in zip(axes, rows):
        for key in keys:
            axis.plot([r["step"] for r in train if key in r], [r[key] for r in train if key in r],
                      label=key[len(prefix):])
        axis.set_ylabel(prefix.rstrip("_"))
        axis.legend(fontsize="small")
    axes[-1].set_xlabel("step")
    figure.tight_layout()
    figure.savefig(path)
    return True


def plot_run(records: Sequence[dict[str, Any]], directory: Path) -> list[Path]:
    """Every plot of a run into `directory`; returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / LOSS_PLOT]
    plot_losses(records, written[0])
    if plot_accuracy_vs_time(records, directory / ACCURACY_PLOT):
        written.append(directory / ACCURACY_PLOT)
    if plot_expert_load(records, directory / EXPERT_LOAD_PLOT):
        written.append(directory / EXPERT_LOAD_PLOT)
    if plot_components(records, directory / COMPONENTS_PLOT):
        written.append(directory / COMPONENTS_PLOT)
    logger.info("plots written to %s", directory)
    return written


__all__ = ["latest_per_step", "plot_accuracy_vs_time", "plot_components", "plot_expert_load", "plot_losses", "plot_run"]
