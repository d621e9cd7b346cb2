"""Tests for liquid.monitor.ActivationMonitor on a small hand-built model."""

import csv
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import liquid.monitor as monitor_module
from liquid.monitor import STAT_NAMES, ActivationMonitor

WIDTH, NUM_LAYERS = 8, 3
DEFAULT_MODULES = ["embed", "layers.0", "layers.1", "layers.2", "lm_head"]


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, WIDTH)
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(NUM_LAYERS)])
        self.lm_head = nn.Linear(WIDTH, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return self.lm_head(h)


def make_model() -> tuple[TinyNet, torch.Tensor]:
    torch.manual_seed(0)
    return TinyNet(), torch.randn(5, 6, 4)


def train_step(model: nn.Module, x: torch.Tensor, monitor: ActivationMonitor) -> None:
    model(x).square().mean().backward()
    monitor.step()


def capture_outputs(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """Keep each module's output (with its .grad retained) for an independent computation."""
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for name in names:

        def keep(module: nn.Module, inputs: tuple, output: torch.Tensor, name: str = name) -> None:
            if output.requires_grad:
                output.retain_grad()
            captured[name] = output

        modules[name].register_forward_hook(keep)
    return captured


def make_nan_hook(count: int):
    def corrupt(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[..., :count] = float("nan")
        return output

    return corrupt


def test_default_modules_are_layers_embeddings_and_head() -> None:
    model, _ = make_model()
    with ActivationMonitor(model) as monitor:
        assert monitor.module_names == DEFAULT_MODULES


def test_summary_matches_direct_computation() -> None:
    model, x = make_model()
    captured = capture_outputs(model, DEFAULT_MODULES)
    with ActivationMonitor(model) as monitor:
        train_step(model, x, monitor)
        summary = monitor.summary()
    assert set(summary) == set(DEFAULT_MODULES)
    for name, output in captured.items():
        a = output.detach().double()
        expected = {
            "act_mean": a.mean().item(),
            "act_std": a.std().item(),
            "act_max_abs": a.abs().max().item(),
            "act_zero_frac": (a == 0).double().mean().item(),
            "act_nonfinite_frac": 0.0,
            "grad_norm": output.grad.double().norm().item(),
        }
        assert summary[name] == pytest.approx(expected, rel=1e-5, abs=1e-7), name
    assert summary["layers.0"]["act_zero_frac"] > 0  # ReLU output: the zero share is really measured


def test_non_finite_output_names_module() -> None:
    model, x = make_model()
    model.layers[1].register_forward_hook(make_nan_hook(3))
    captured = capture_outputs(model, ["layers.1"])
    with ActivationMonitor(model) as monitor:
        with torch.no_grad():
            model(x)
        monitor.step()
    assert any(alert.startswith("layers.1: non-finite activations (37.5% of values)") for alert in monitor.alerts)
    assert not any(alert.startswith(("layers.0", "embed")) for alert in monitor.alerts)
    a = captured["layers.1"].double()
    finite = a[torch.isfinite(a)]
    stats = monitor.summary()["layers.1"]
    assert stats["act_nonfinite_frac"] == pytest.approx(3 / WIDTH)
    assert stats["act_mean"] == pytest.approx(finite.mean().item(), rel=1e-5, abs=1e-7)
    assert stats["act_std"] == pytest.approx(finite.std().item(), rel=1e-5, abs=1e-7)


def test_vanishing_gradient_flagged() -> None:
    model, x = make_model()
    with torch.no_grad():
        model.layers[2][0].weight.zero_()
    with ActivationMonitor(model) as monitor:
        train_step(model, x, monitor)
    assert any(alert.startswith("layers.1: vanishing gradient") for alert in monitor.alerts)
    assert monitor.summary()["layers.1"]["grad_norm"] == 0.0
    assert not any("lm_head: vanishing" in alert for alert in monitor.alerts)


def test_exploding_activation_flagged() -> None:
    model, x = make_model()
    with torch.no_grad():
        model.layers[0][0].weight.mul_(1e6)
    with ActivationMonitor(model, exploding_threshold=1e4) as monitor:
        train_step(model, x, monitor)
    assert any(alert.startswith("layers.0: exploding activations") for alert in monitor.alerts)
    assert not any(alert.startswith("embed: exploding activations") for alert in monitor.alerts)


def assert_no_hooks(model: nn.Module) -> None:
    for name, module in model.named_modules():
        assert not module._forward_hooks, name
        assert not module._backward_hooks, name
        assert not module._forward_pre_hooks, name


def test_remove_and_context_exit_leave_no_hooks() -> None:
    model, x = make_model()
    monitor = ActivationMonitor(model)
    train_step(model, x, monitor)
    output = model(x)  # forward of a sampled step: tensor hooks are pending
    monitor.remove()
    monitor.remove()
    assert_no_hooks(model)
    recorded = len(monitor.history)
    output.square().mean().backward()
    monitor.step()
    train_step(model, x, monitor)
    assert len(monitor.history) == recorded
    with ActivationMonitor(model, modules=["layers.0", "lm_head"]) as scoped:
        train_step(model, x, scoped)
        assert model.layers[0]._forward_hooks
    assert_no_hooks(model)


def test_every_n_steps_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = make_model()
    calls = []
    original = monitor_module._activation_stats
    monkeypatch.setattr(monitor_module, "_activation_stats", lambda t: calls.append(1) or original(t))
    sampled = []
    with ActivationMonitor(model, every_n_steps=3) as monitor:
        for _ in range(7):
            sampled.append(monitor.should_record())
            train_step(model, x, monitor)
    assert sampled == [step % 3 == 0 for step in range(7)]
    assert sorted({row["step"] for row in monitor.history}) == [0, 3, 6]
    assert len(monitor.history) == 3 * len(DEFAULT_MODULES)
    assert len(calls) == 3 * len(DEFAULT_MODULES)


def test_csv_columns_and_rows(tmp_path) -> None:
    model, x = make_model()
    with ActivationMonitor(model) as monitor:
        for _ in range(2):
            train_step(model, x, monitor)
    path = tmp_path / "history.csv"
    monitor.to_csv(path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["step", "module", *STAT_NAMES]
    assert len(rows) == 2 * len(DEFAULT_MODULES)
    first = monitor.history[0]
    assert float(rows[0]["act_std"]) == pytest.approx(first["act_std"])
    assert rows[0]["module"] == first["module"]


def test_plot_writes_png(tmp_path) -> None:
    model, x = make_model()
    with ActivationMonitor(model) as monitor:
        for _ in range(3):
            train_step(model, x, monitor)
    path = tmp_path / "monitor.png"
    monitor.plot(path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


@dataclass
class LayerOutput:
    aux: torch.Tensor
    hidden_states: torch.Tensor


class DataclassLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> LayerOutput:
        return LayerOutput(aux=x.sum() * 100, hidden_states=2 * x)


def test_dataclass_output_uses_hidden_states_field() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), DataclassLayer())
    x = torch.randn(3, 4)
    with ActivationMonitor(model) as monitor:
        out = model(x)
        out.hidden_states.sum().backward()
        monitor.step()
        hidden = out.hidden_states.detach().double()
        stats = monitor.summary()["1"]
    assert stats["act_mean"] == pytest.approx(hidden.mean().item(), rel=1e-6)
    assert stats["grad_norm"] == pytest.approx(hidden.numel() ** 0.5, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [dict(every_n_steps=0), dict(vanishing_threshold=-1.0), dict(exploding_threshold=0.0), dict(modules=["nope"])],
)
def test_invalid_options_raise(kwargs: dict) -> None:
    model, _ = make_model()
    with pytest.raises(ValueError):
        ActivationMonitor(model, **kwargs)
