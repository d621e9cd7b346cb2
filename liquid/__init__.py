"""liquid: a small encoder-decoder language model for Spanish instructions.

Importing the package registers the model with the Auto classes, so
`AutoModelForSeq2SeqLM.from_pretrained(path)` loads a saved `liquid` checkpoint.
"""

from transformers import AutoConfig, AutoModelForSeq2SeqLM

from liquid.attention import CrossAttention, EnhancedLocalAttention
from liquid.config import LiquidConfig
from liquid.embedding import LiquidEmbedding
from liquid.encoder import BidirectionalEncoder
from liquid.decoder import LiquidDecoder
from liquid.losses import OptimizedFocalLoss
from liquid.modeling import LiquidFoundationModelOptimized, LiquidSeq2SeqLMOutput
from liquid.moe import MoELayer
from liquid.monitor import ActivationMonitor

AutoConfig.register(LiquidConfig.model_type, LiquidConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(LiquidConfig, LiquidFoundationModelOptimized, exist_ok=True)

__all__ = [
    "ActivationMonitor",
    "BidirectionalEncoder",
    "CrossAttention",
    "EnhancedLocalAttention",
    "LiquidConfig",
    "LiquidDecoder",
    "LiquidEmbedding",
    "LiquidFoundationModelOptimized",
    "LiquidSeq2SeqLMOutput",
    "MoELayer",
    "OptimizedFocalLoss",
]
