import pytest
import torch

from liquid import LiquidConfig, LiquidFoundationModelOptimized

# preset -> (low, high) parameter bounds the issue asks for
BOUNDS = {"tiny": (0, 1_000_000), "small": (2e6, 4e6), "base": (45e6, 55e6), "large": (180e6, 220e6)}


def count_parameters(config: LiquidConfig) -> int:
    with torch.device("meta"):  # count without allocating
        model = LiquidFoundationModelOptimized(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", list(BOUNDS))
def test_preset_parameter_counts(preset):
    low, high = BOUNDS[preset]
    n = count_parameters(LiquidConfig.from_preset(preset))
    assert low <= n <= high, f"{preset}: {n:,} parameters"


def test_overrides_apply_and_unknown_fields_are_refused():
    assert LiquidConfig.from_preset("tiny", d_model=32).d_model == 32
    with pytest.raises(ValueError, match="unknown LiquidConfig field"):
        LiquidConfig.from_preset("tiny", d_modle=32)
    with pytest.raises(ValueError, match="unknown preset"):
        LiquidConfig.from_preset("huge")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(d_model=30, num_heads=4), "divisible by num_heads"),
        (dict(num_heads=4, num_kv_heads=3), "divisible by num_kv_heads"),
        (dict(moe_top_k=5, num_experts=4), "moe_top_k"),
        (dict(loss_type="mse"), "loss_type"),
        (dict(min_compression_ratio=0.6, base_compression_ratio=0.5), "compression_ratio"),
        (dict(qk_init_std=-0.01), "qk_init_std"),
    ],
)
def test_invalid_combinations_say_what_is_allowed(overrides, message):
    with pytest.raises(Exception, match=message):
        LiquidConfig(**overrides)


def test_receptive_field_formula():
    config = LiquidConfig(conv_layers=3, conv_kernel_size=3)
    assert config.receptive_field == 1 + 2 * (1 + 2 + 4)


def test_active_parameters_count_top_k_of_the_experts():
    config = LiquidConfig.from_preset("tiny", num_experts=4, moe_top_k=2)
    with torch.device("meta"):
        model = LiquidFoundationModelOptimized(config)
    parts = model.num_parameters_breakdown()
    per_expert = 3 * config.d_model * config.d_ff  # SwiGLU: gate, up, down
    moe_layers = config.encoder_layers + config.decoder_layers
    unused = moe_layers * (config.num_experts - config.moe_top_k) * per_expert
    assert parts["active"] == parts["total"] - unused
