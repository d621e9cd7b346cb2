"""`--precision auto` on CPU is fp32 whatever bf16 matrix units the CPU has, and logs them (probes monkeypatched)."""

from __future__ import annotations

import logging

import pytest
import torch

from liquid.training import trainer

CPU = torch.device("cpu")


def fake_cpu(monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)


@pytest.mark.parametrize("amx,avx512_bf16,units,expected", [
    (True, True, "AMX", "fp32"),
    (False, True, "AVX512-BF16", "fp32"),
    (False, False, None, "fp32"),
])
def test_auto_is_fp32_on_cpu_and_logs_the_units(monkeypatch, caplog, amx, avx512_bf16, units, expected):
    fake_cpu(monkeypatch, amx, avx512_bf16)
    assert trainer.cpu_bf16_units() == units
    with caplog.at_level(logging.INFO, logger=trainer.logger.name):
        assert trainer.resolve_precision("auto", CPU) == expected
    assert f"bf16 matrix units: {units or 'none'}): {expected}" in caplog.text


def test_missing_probe_counts_as_no_units(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert trainer.resolve_precision("auto", CPU) == trainer.CPU_AUTO_PRECISION


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_explicit_precision_is_kept(monkeypatch, precision):
    fake_cpu(monkeypatch, True, True)
    assert trainer.resolve_precision(precision, CPU) == precision
