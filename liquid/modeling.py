"""LiquidFoundationModelOptimized: the encoder-decoder, as a Hugging Face `PreTrainedModel` with `generate()`.

    encoder states  H = BidirectionalEncoder(x)                       (B, S, D)
    decoder states  G = LiquidDecoder(y_<t, H)                        (B, T, D)
    logits          z = G E^T            (E: the token table shared by both embeddings and the head)
    loss            L = L_token(z, y) + moe_loss_weight * (aux_enc + aux_dec)
                        + reconstruction_weight * (rec_enc + rec_dec)

L_token is OptimizedFocalLoss (loss_type="focal") or cross-entropy ("ce"), both with `label_smoothing`;
plain cross-entropy (no smoothing, so exp(ce_loss) is the perplexity) is always reported beside it as `ce_loss`. Passing `labels` alone is enough: the decoder input is `labels` shifted
right behind `decoder_start_token_id`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from liquid.attention import _MultiHeadProjections
from liquid.cache import LiquidCache
from liquid.config import INIT_STD_ATTR, LiquidConfig
from liquid.decoder import DecoderOutput, LiquidDecoder
from liquid.encoder import BidirectionalEncoder, EncoderOutput
from liquid.ffn import DenseSwiGLU
from liquid.losses import OptimizedFocalLoss
from liquid.moe import SwiGLUExperts

IGNORE_INDEX = -100


@dataclass
class LiquidSeq2SeqLMOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus the parts of the loss and the routing statistics."""

    aux_loss: torch.Tensor | None = None  # MoE auxiliary loss (encoder + decoder), unweighted by moe_loss_weight
    lm_loss: torch.Tensor | None = None  # the token loss (focal or cross-entropy)
    ce_loss: torch.Tensor | None = None  # plain cross-entropy, for perplexity
    reconstruction_loss: torch.Tensor | None = None
    compression_ratio: torch.Tensor | None = None  # encoder's, (B,)
    decoder_compression_ratio: torch.Tensor | None = None  # decoder's, (B,)
    experts_per_token: torch.Tensor | None = None
    expert_load: tuple[torch.Tensor, ...] | None = None  # decoder layers, each (E,)
    layer_experts_per_token: torch.Tensor | None = None  # (L,) encoder layers, then decoder layers
    router_entropy: torch.Tensor | None = None  # (L,) mean router entropy (nats), same layer order


def _cat_present(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Concatenate the per-layer statistics that were collected; None when none were (a generate() step)."""
    present = [t for t in parts if t is not None]
    return torch.cat(present) if present else None


class LiquidPreTrainedModel(PreTrainedModel):
    config_class = LiquidConfig
    base_model_prefix = "liquid"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["EncoderLayer", "DecoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """HF's defaults (normal(0, initializer_range) for Linear/Conv/Embedding, ones for norms), except:
        expert weights as Linear, and a Linear/Conv that carries `INIT_STD_ATTR` (set by its owner: LiquidEmbedding's
        depthwise taps, the dilated-conv blocks' output projections at 0) gets weight ~ N(0, that std^2), bias 0.
        (HF marks a tensor initialised once done, so the owner module cannot re-initialise its children later.)"""
        std = getattr(module, INIT_STD_ATTR, None)
        if std is not None:
            if std == 0:
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
            return
        super()._init_weights(module)
        if isinstance(module, (SwiGLUExperts, DenseSwiGLU)):
            for weight in (module.w_gate, module.w_up, module.w_down):
                init.normal_(weight, mean=0.0, std=self.config.initializer_range)


class EncoderForGeneration(nn.Module):
    """What `get_encoder()` hands to `generate()`: only `last_hidden_state`, which generate expands per beam."""

    def __init__(self, encoder: BidirectionalEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask=None, **_) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=self.encoder(input_ids, attention_mask).last_hidden_state)


class LiquidFoundationModelOptimized(LiquidPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {
        "encoder.embedding.token_embedding.weight": "shared.weight",
        "decoder.embedding.token_embedding.weight": "shared.weight",
        "lm_head.weight": "shared.weight",
    }

    def __init__(self, config: LiquidConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder = BidirectionalEncoder(config)
        self.decoder = LiquidDecoder(config)
        self.encoder.embedding.token_embedding = self.shared
        self.decoder.embedding.token_embedding = self.shared
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.qk_init_std > 0:
            for module in self.modules():
                if isinstance(module, _MultiHeadProjections):
                    setattr(module.q_proj, INIT_STD_ATTR, config.qk_init_std)
                    setattr(module.k_proj, INIT_STD_ATTR, config.qk_init_std)
        self.token_loss = (
            OptimizedFocalLoss(gamma=config.focal_gamma, alpha=config.focal_alpha,
                               label_smoothing=config.label_smoothing, ignore_index=IGNORE_INDEX)
            if config.loss_type == "focal" else None
        )
        self.post_init()

    # --- Hugging Face plumbing -------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = value
        self.encoder.embedding.token_embedding = value
        self.decoder.embedding.token_embedding = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def get_encoder(self) -> EncoderForGeneration:
        return EncoderForGeneration(self.encoder)

    def get_decoder(self) -> LiquidDecoder:
        return self.decoder

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the model builds its own LiquidCache (rolling window + embedding state)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return self.shift_right(labels)

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, T) labels -> decoder inputs [start, y_0, ..., y_{T-2}], ignored positions mapped to padding."""
        shifted = labels.new_full(labels.shape, self.config.pad_token_id)
        shifted[:, 1:] = labels[:, :-1]
        shifted[:, 0] = self.config.decoder_start_token_id
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.config.pad_token_id)

    # --- forward: labels and masks -> encode -> decode -> loss ------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,  # (B, S)
        attention_mask: torch.Tensor | None = None,  # (B, S), 1 = real token
        decoder_input_ids: torch.LongTensor | None = None,  # (B, T)
        decoder_attention_mask: torch.Tensor | None = None,  # (B, T)
        labels: torch.LongTensor | None = None,  # (B, T), IGNORE_INDEX where no target
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: LiquidCache | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **_,
    ) -> LiquidSeq2SeqLMOutput:
        decoder_input_ids, decoder_attention_mask = self._decoder_inputs(labels, decoder_input_ids,
                                                                        decoder_attention_mask)
        enc = self._encode(input_ids, attention_mask, encoder_outputs)
        if use_cache and cache is None:
            cache = LiquidCache(self.config.decoder_layers)
        cache = cache if use_cache else None
        statistics = cache is None or labels is not None or torch.is_grad_enabled()  # False: a generate() step
        dec = self.decoder(decoder_input_ids, enc.last_hidden_state, attention_mask, decoder_attention_mask,
                           cache=cache, statistics=statistics)
        logits = self.lm_head(dec.last_hidden_state)  # (B, T, V)
        return self._output(logits, labels, enc, dec, cache)

    def _decoder_inputs(self, labels, decoder_input_ids, decoder_attention_mask):
        """Decoder inputs from `labels` shifted right when not given; its mask = where labels are targets."""
        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = self.shift_right(labels)
        if decoder_input_ids is None:
            raise ValueError("pass `labels` or `decoder_input_ids`")
        if decoder_attention_mask is None and labels is not None:
            decoder_attention_mask = (labels != IGNORE_INDEX).long()
        return decoder_input_ids, decoder_attention_mask

    def _encode(self, input_ids, attention_mask, encoder_outputs) -> EncoderOutput:
        """Run the encoder, or wrap precomputed states (generate() passes them; no regularisers then)."""
        if encoder_outputs is not None:
            return EncoderOutput(last_hidden_state=encoder_outputs[0])  # BaseModelOutput or tuple: (B, S, D)
        if input_ids is None:
            raise ValueError("pass `input_ids` (or precomputed `encoder_outputs`)")
        return self.encoder(input_ids, attention_mask)

    def _token_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lm_loss, ce_loss): the training token loss, and plain cross-entropy (no smoothing, detached)."""
        flat_logits, flat_labels = logits.reshape(-1, logits.size(-1)), labels.reshape(-1)  # (B*T, V), (B*T,)
        if self.token_loss is not None:  # one log-softmax serves the focal loss and the reported cross-entropy
            log_probs = torch.log_softmax(flat_logits.float(), dim=-1)  # (B*T, V)
            lm_loss = self.token_loss.from_log_probs(log_probs, flat_labels)
            ce_loss = F.nll_loss(log_probs.detach(), flat_labels, ignore_index=IGNORE_INDEX)
            return lm_loss, ce_loss
        lm_loss = F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX,
                                  label_smoothing=self.config.label_smoothing)
        if self.config.label_smoothing == 0:
            return lm_loss, lm_loss.detach()
        with torch.no_grad():
            ce_loss = F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX)
        return lm_loss, ce_loss

    def _output(self, logits, labels, enc: EncoderOutput, dec: DecoderOutput, cache) -> LiquidSeq2SeqLMOutput:
        """Total loss L = L_token + moe_loss_weight * aux + reconstruction_weight * rec, and the statistics."""
        encoded = enc.aux_loss is not None  # False when generate() passed precomputed encoder states
        aux_loss = dec.aux_loss + enc.aux_loss if encoded and dec.aux_loss is not None else dec.aux_loss
        rec_loss = dec.reconstruction_loss + enc.reconstruction_loss if encoded else dec.reconstruction_loss
        loss = lm_loss = ce_loss = None
        if labels is not None:
            lm_loss, ce_loss = self._token_losses(logits, labels)
            loss = lm_loss + self.config.moe_loss_weight * aux_loss + self.config.reconstruction_weight * rec_loss
        per_layer = [enc.layer_experts_per_token, dec.layer_experts_per_token] if encoded else [
            dec.layer_experts_per_token]
        entropy = [enc.router_entropy, dec.router_entropy] if encoded else [dec.router_entropy]
        return LiquidSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=cache,
            encoder_last_hidden_state=enc.last_hidden_state,
            aux_loss=aux_loss,
            lm_loss=lm_loss,
            ce_loss=ce_loss,
            reconstruction_loss=rec_loss,
            compression_ratio=enc.compression_ratio,
            decoder_compression_ratio=dec.compression_ratio,
            experts_per_token=(dec.experts_per_token + enc.experts_per_token) / 2 if encoded
            and enc.experts_per_token is not None and dec.experts_per_token is not None else dec.experts_per_token,
            expert_load=tuple(dec.expert_load),
            layer_experts_per_token=_cat_present(per_layer),
            router_entropy=_cat_present(entropy),
        )

    @torch.no_grad()
    def training_diagnostics(self, output: LiquidSeq2SeqLMOutput) -> dict[str, float]:
        """Scalars the trainer logs each logging step: both compression ratios (batch means), and per MoE layer
        (``enc0``.., ``dec0``..) the router entropy (nats; log E = uniform) and the experts per token."""
        values: dict[str, float] = {}
        for name, ratio in (("encoder", output.compression_ratio), ("decoder", output.decoder_compression_ratio)):
            if ratio is not None:
                values[f"compression_ratio_{name}"] = float(ratio.float().mean())
        encoder_layers = self.config.encoder_layers if output.router_entropy.numel() > self.config.decoder_layers \
            else 0
        names = [f"enc{i}" for i in range(encoder_layers)] + [f"dec{i}" for i in range(self.config.decoder_layers)]
        for layer, entropy, experts in zip(names, output.router_entropy.tolist(),
                                           output.layer_experts_per_token.tolist()):
            values[f"router_entropy_{layer}"] = entropy
            values[f"experts_per_token_{layer}"] = experts
        return values

    def num_parameters_breakdown(self) -> dict[str, int]:
        """Parameters per top-level part (shared table counted once), and the most one token uses:
        `active` counts `moe_top_k` of the `num_experts` experts in every MoE layer."""
        parts = {"embedding": self.shared.weight.numel()}
        for name in ("encoder", "decoder"):
            module = getattr(self, name)
            parts[name] = sum(p.numel() for n, p in module.named_parameters()
                              if "token_embedding" not in n)
        parts["total"] = sum(p.numel() for p in self.parameters())
        experts = sum(p.numel() for m in self.modules() if isinstance(m, SwiGLUExperts) for p in m.parameters())
        parts["active"] = parts["total"] - experts + experts * self.config.moe_top_k // self.config.num_experts
        return parts
