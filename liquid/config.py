"""`LiquidConfig`: the single source of every size and switch of the model.

Presets (`LiquidConfig.from_preset(name, **overrides)`):

| preset | use                         | parameters (measured by tests/test_config.py) |
|--------|-----------------------------|-----------------------------------------------|
| tiny   | unit tests                  | < 1M                                           |
| small  | the CPU default of main.py  | 2-4M                                           |
| base   | the seed's size             | 45-55M                                         |
| large  | GPUs                        | about 200M                                     |
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

LOSS_TYPES = ("focal", "ce")
EMBEDDING_TYPES = ("liquid", "plain")  # LiquidEmbedding, or a plain token table (ablation)
FFN_TYPES = ("moe", "dense", "moe_encoder", "moe_decoder")  # where the MoE layers are (build_moe)
# MoE combine weights: raw gate probabilities p_e, or p_e / sg(sum of the chosen p) (liquid/moe.py)
GATE_WEIGHTS = ("raw", "renormalized")
# A Linear/Conv carrying this attribute is initialised by `LiquidPreTrainedModel._init_weights` with weight
# ~ N(0, value^2) (0: zeros) and bias 0, instead of the config-wide initializer_range.
INIT_STD_ATTR = "liquid_init_std"  # sparse MoE, or one dense SwiGLU of the same active width (ablation)


# --- argument checks: each concern is written once here; LiquidConfig and the modules that can be built
# --- without a config (LiquidEmbedding, MoELayer, RotaryEmbedding, OptimizedFocalLoss) call the same function.
def check_positive(**values: int | float) -> None:
    """Every value must be >= 1 (sizes) -- `ValueError` naming the first that is not."""
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def check_compression_ratios(min_ratio: float, base_ratio: float) -> None:
    """LiquidEmbedding's C_ratio bounds: 0 <= min <= base < 1 (at least the f = 0 bin is always kept)."""
    if not 0.0 <= min_ratio <= base_ratio < 1.0:
        raise ValueError("need 0 <= min_compression_ratio <= base_compression_ratio < 1, got "
                         f"min={min_ratio}, base={base_ratio}")


def check_routing(num_experts: int, top_k: int, threshold: float, load_balance_weight: float,
                  z_loss_weight: float) -> None:
    """MoE routing: 1 <= top_k <= num_experts, threshold in (0, 1], non-negative loss weights."""
    check_positive(num_experts=num_experts)
    if not 1 <= top_k <= num_experts:
        raise ValueError(f"moe_top_k must be in [1, num_experts={num_experts}], got {top_k}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"moe_threshold must be in (0, 1], got {threshold}")
    if load_balance_weight < 0 or z_loss_weight < 0:
        raise ValueError(f"MoE loss weights must be >= 0, got load_balance_weight={load_balance_weight}, "
                         f"z_loss_weight={z_loss_weight}")


def check_rope(head_dim: int, theta: float) -> None:
    """RoPE rotates pairs of channels: an even head dim >= 2 and theta > 0."""
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head dim d_model/num_heads must be even and >= 2 for RoPE, got {head_dim}")
    if theta <= 0:
        raise ValueError(f"rope_theta must be > 0, got {theta}")


def check_token_loss(gamma: float, label_smoothing: float) -> None:
    """Focal loss: gamma >= 0; label smoothing in [0, 1)."""
    if gamma < 0:
        raise ValueError(f"focal_gamma must be >= 0, got {gamma}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")

# Sizes per preset; everything not listed keeps the class default.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        d_model=64, num_heads=2, encoder_layers=1, decoder_layers=1, conv_layers=2,
        num_experts=4, d_ff=128, window_size=16, decoder_window_size=16, fft_window=8, qk_init_std=64**-0.5,
    ),
    # the CPU default of main.py: at a fixed wall-clock budget, steps beat width (docs/experiments.md, run E:
    # d_model 128 learns as much per step as 192 at 1.7x the speed); each token uses at most two experts.
    # MoE in the encoder only: the decoder's MoE cost 0.15 of test math at equal time, the encoder's nothing
    # (docs/experiments.md, session 6)
    "small": dict(
        d_model=128, num_heads=4, num_kv_heads=2, encoder_layers=2, decoder_layers=3, conv_layers=3,
        num_experts=4, d_ff=256, window_size=64, decoder_window_size=64, fft_window=8, qk_init_std=128**-0.5,
        ffn_type="moe_encoder",
    ),
    "base": dict(
        d_model=512, num_heads=8, num_kv_heads=4, encoder_layers=4, decoder_layers=4, conv_layers=4,
        num_experts=4, d_ff=768, window_size=128, decoder_window_size=128, fft_window=16, qk_init_std=512**-0.5,
    ),
    "large": dict(
        d_model=1024, num_heads=16, num_kv_heads=4, encoder_layers=6, decoder_layers=6, conv_layers=4,
        num_experts=8, d_ff=512, window_size=256, decoder_window_size=256, fft_window=32, qk_init_std=1024**-0.5,
    ),
}


@strict
class LiquidConfig(PreTrainedConfig):
    r"""Configuration of `LiquidFoundationModelOptimized`.

    vocab_size (`int`, defaults to 2000): size of the (locally trained) tokenizer's vocabulary.
    d_model (`int`, defaults to 256): width of every hidden state.
    num_heads (`int`, defaults to 4): attention heads (self- and cross-attention).
    num_kv_heads (`int | None`, defaults to None): key/value heads; fewer than `num_heads` gives grouped-query
        attention, None means `num_heads`.
    encoder_layers / decoder_layers (`int`): attention + MoE layers in each stack.
    conv_layers (`int`, defaults to 3): residual dilated convolutions of the encoder, dilations 1, 2, 4, ...
    conv_kernel_size (`int`, defaults to 3): kernel of those convolutions (odd: centred).
    d_ff (`int`, defaults to 512): hidden width of each SwiGLU expert.
    num_experts / moe_top_k (`int`): experts per MoE layer, and the most a token may use (named apart
        from generation's `top_k`, which a config field of that name would silently set).
    dynamic_k (`bool`, defaults to True): per token, the fewest experts whose probabilities reach `moe_threshold`.
    moe_threshold (`float`, defaults to 0.4): the cumulative router probability dynamic K must reach.
    moe_gate_weights (`str`, "raw" or "renormalized"): combine each chosen expert with its gate probability
        p_e, or with p_e / stop_gradient(sum of the chosen p) (weights sum to 1, router gradient kept).
    load_balance_weight / z_loss_weight (`float`): weights of the Switch balance loss and the router z-loss.
    window_size / decoder_window_size (`int`): local attention window W of the encoder / the decoder.
    attention_overlap (`bool`, defaults to True): sliding (overlapping) windows; False uses disjoint blocks of W.
    base_compression_ratio / min_compression_ratio (`float`): LiquidEmbedding's C_ratio bounds.
    fft_window (`int`): positions per short-time FFT window of LiquidEmbedding.
    embedding_kernel_size (`int`): LiquidEmbedding's convolution kernel.
    embedding_type (`str`, "liquid" or "plain"): LiquidEmbedding, or a plain token table (for ablations).
    ffn_type (`str`): "moe" (an MoE layer in every encoder and decoder layer), "dense" (one dense SwiGLU of
        width `moe_top_k * d_ff`, the most an MoE token can use, everywhere), "moe_encoder" (MoE in the encoder,
        dense in the decoder; the `small` preset's choice) or "moe_decoder" (the reverse).
    qk_norm (`bool`, defaults to False): RMSNorm over each head's queries and keys before the dot product
        (self- and cross-attention), which bounds the attention logits at any learning rate.
    embedding_scale (`float`, defaults to 1.0): factor on the embedding layer's output before the first block
        (sqrt(d_model) is the original Transformer's choice); the tied LM head is not scaled.
    max_position_embeddings (`int`, defaults to 2**20): the longest sequence accepted. RoPE and local attention
        need no position table, so this is only a sanity bound (kept for compatibility), not a model size.
    dropout / attention_dropout (`float`): residual and attention-probability dropout.
    loss_type (`str`, "focal" or "ce"): token loss; focal uses `focal_gamma`, `focal_alpha`.
    label_smoothing (`float`): label smoothing of the token loss.
    moe_loss_weight / reconstruction_weight (`float`): weights of the MoE auxiliary loss and of LiquidEmbedding's
        reconstruction loss in the total loss.
    layer_norm_eps, initializer_range, rope_theta: numerics.
    """

    model_type: ClassVar[str] = "liquid"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "decoder_layers",
    }

    vocab_size: int = 2000
    d_model: int = 256
    num_heads: int = 4
    num_kv_heads: int | None = None
    encoder_layers: int = 2
    decoder_layers: int = 2
    conv_layers: int = 3
    conv_kernel_size: int = 3
    d_ff: int = 512
    num_experts: int = 4
    moe_top_k: int = 2
    dynamic_k: bool = True
    moe_threshold: float = 0.4
    moe_gate_weights: str = "raw"
    load_balance_weight: float = 1e-2
    z_loss_weight: float = 1e-3
    window_size: int = 64
    decoder_window_size: int = 64
    attention_overlap: bool = True
    base_compression_ratio: float = 0.5
    min_compression_ratio: float = 0.1
    fft_window: int = 16
    embedding_kernel_size: int = 3
    embedding_type: str = "liquid"
    ffn_type: str = "moe"
    max_position_embeddings: int = 2**20
    dropout: float = 0.0
    attention_dropout: float = 0.0
    loss_type: str = "focal"
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    label_smoothing: float = 0.0
    moe_loss_weight: float = 1.0
    reconstruction_weight: float = 0.1
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    # std of the attention query/key weights; 0: initializer_range. d_model**-0.5 gives attention logits of
    # order 1 at init (T5's scheme), so attention patterns get gradient from the first step
    qk_init_std: float = 0.0
    qk_norm: bool = False
    embedding_scale: float = 1.0
    rope_theta: float = 10000.0
    is_encoder_decoder: bool = True
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1

    def __post_init__(self, **kwargs):
        if self.num_kv_heads is None:
            self.num_kv_heads = self.num_heads
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Refuse impossible combinations with a message that says what is allowed (the one place for
        config-level checks; the shared `check_*` functions above hold each rule)."""
        check_positive(**{name: getattr(self, name) for name in (
            "vocab_size", "d_model", "num_heads", "num_kv_heads", "encoder_layers", "decoder_layers", "d_ff",
            "window_size", "decoder_window_size", "max_position_embeddings", "conv_kernel_size",
            "embedding_kernel_size")})
        if self.fft_window < 2:
            raise ValueError(f"fft_window must be >= 2 (at least two samples per window), got {self.fft_window}")
        if self.embedding_scale <= 0:
            raise ValueError(f"embedding_scale must be > 0, got {self.embedding_scale}")
        if self.qk_init_std < 0:
            raise ValueError(f"qk_init_std must be >= 0 (0: initializer_range), got {self.qk_init_std}")
        if self.conv_layers < 0:
            raise ValueError(f"conv_layers must be >= 0, got {self.conv_layers}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        check_rope(self.d_model // self.num_heads, self.rope_theta)
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        check_routing(self.num_experts, self.moe_top_k, self.moe_threshold, self.load_balance_weight,
                      self.z_loss_weight)
        check_compression_ratios(self.min_compression_ratio, self.base_compression_ratio)
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd (centred convolution), got {self.conv_kernel_size}")
        check_choice("loss_type", self.loss_type, LOSS_TYPES)
        check_choice("embedding_type", self.embedding_type, EMBEDDING_TYPES)
        check_choice("ffn_type", self.ffn_type, FFN_TYPES)
        check_choice("moe_gate_weights", self.moe_gate_weights, GATE_WEIGHTS)
        check_token_loss(self.focal_gamma, self.label_smoothing)

    @property
    def receptive_field(self) -> int:
        """Receptive field of the encoder's dilated stack: 1 + sum_l (k - 1) * 2^l."""
        return 1 + sum((self.conv_kernel_size - 1) * 2**layer for layer in range(self.conv_layers))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "LiquidConfig":
        """Build the named preset (`tiny`, `small`, `base`, `large`), then apply `overrides`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown LiquidConfig field(s): {', '.join(unknown)}")
        return cls(**{**PRESETS[name], **overrides})


def preset_names() -> list[str]:
    return list(PRESETS)


__all__ = ["EMBEDDING_TYPES", "FFN_TYPES", "GATE_WEIGHTS", "INIT_STD_ATTR", "LOSS_TYPES", "LiquidConfig", "PRESETS", "check_compression_ratios",
           "check_positive", "check_rope", "check_routing", "check_token_loss", "preset_names"]
