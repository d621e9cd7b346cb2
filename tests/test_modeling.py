"""End-to-end guarantees of LiquidFoundationModelOptimized, each against an independent reference."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from liquid import LiquidConfig, LiquidFoundationModelOptimized
from liquid.ffn import DenseSwiGLU
from liquid.moe import MoELayer

VOCAB = 50


def make_model(**overrides) -> LiquidFoundationModelOptimized:
    torch.manual_seed(0)
    config = LiquidConfig.from_preset("tiny", vocab_size=VOCAB, **overrides)
    return LiquidFoundationModelOptimized(config).eval()


def batch(b=3, s=12, t=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, VOCAB, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, 8:] = 0  # one padded row
    input_ids = input_ids.masked_fill(mask == 0, 0)
    decoder_input_ids = torch.randint(4, VOCAB, (b, t), generator=g)
    decoder_input_ids[:, 0] = 1
    return input_ids, mask, decoder_input_ids


@pytest.fixture(scope="module")
def model():
    return make_model()


def test_decoder_is_causal_end_to_end(model):
    input_ids, mask, dec = batch()
    base = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    for k in (1, 4, dec.size(1) - 1):
        changed = dec.clone()
        changed[:, k] = (changed[:, k] + 7) % VOCAB
        out = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=changed).logits
        torch.testing.assert_close(out[:, :k], base[:, :k], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, k], base[:, k]), "the changed position itself must change"


def test_encoder_influences_every_answer(model):
    input_ids, mask, dec = batch()
    base = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    other = input_ids.clone()
    other[:, 2] = (other[:, 2] + 5) % VOCAB
    other = other.masked_fill(mask == 0, 0)
    out = model(input_ids=other, attention_mask=mask, decoder_input_ids=dec).logits
    # the question reaches the very first decoder position through cross-attention
    assert (out[:, 0] - base[:, 0]).abs().amax(dim=-1).min() > 1e-4


def test_encoder_padding_invariance(model):
    input_ids, mask, dec = batch()
    base = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    extra = 9
    padded_ids = F.pad(input_ids, (0, extra), value=0)
    padded_mask = F.pad(mask, (0, extra), value=0)
    out = model(input_ids=padded_ids, attention_mask=padded_mask, decoder_input_ids=dec).logits
    torch.testing.assert_close(out, base, rtol=1e-5, atol=1e-5)


def test_labels_alone_give_a_loss_that_trains_every_part():
    model = make_model().train()
    input_ids, mask, dec = batch()
    labels = dec.clone()
    labels[0, 7:] = -100
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.aux_loss > 0 and torch.isfinite(out.reconstruction_loss)
    out.loss.backward()
    # the dilated-conv blocks' output projections start at 0 (identity blocks), so their convolutions get
    # gradient from the second step on: take one SGD step, then every parameter must get a gradient
    zero_init = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert zero_init and all(n.startswith("encoder.convs.") and ".proj." not in n for n in zero_init), zero_init
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    model.zero_grad()
    model(input_ids=input_ids, attention_mask=mask, labels=labels).loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == [], f"parameters without gradient: {no_grad}"


def test_ce_loss_type_is_plain_cross_entropy_plus_regularisers():
    model = make_model(loss_type="ce", moe_loss_weight=0.0, reconstruction_weight=0.0)
    input_ids, mask, dec = batch()
    labels = dec.clone()
    labels[1, 5:] = -100
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    # independent reference: decoder inputs built by hand from the labels
    shifted = torch.cat([torch.full((labels.size(0), 1), 1), labels[:, :-1]], dim=1).clamp(min=0)
    ref_logits = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=shifted).logits
    ref = F.cross_entropy(ref_logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, ref)


def test_cached_forward_equals_full_recompute(model):
    input_ids, mask, dec = batch()
    full = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    enc = model.get_encoder()(input_ids, mask)
    cache, steps = None, []
    for t in range(dec.size(1)):
        out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=dec[:, t:t + 1],
                    cache=cache, use_cache=True)
        cache = out.cache
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ffn_type", ["moe_encoder", "moe_decoder"])
def test_generation_steps_skip_statistics_not_results(ffn_type):
    """Without autograd and labels a cached step (what generate() runs) collects no routing statistics, and its
    logits are those of the same step with them (with autograd) and of the full recompute."""
    model = make_model(ffn_type=ffn_type)
    input_ids, mask, dec = batch()
    full = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    enc = model.get_encoder()(input_ids, mask)
    outputs = {}
    for grad in (True, False):
        cache, steps = None, []
        with torch.set_grad_enabled(grad):
            for t in range(dec.size(1)):
                out = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=dec[:, t:t + 1],
                            cache=cache, use_cache=True)
                cache = out.cache
                steps.append(out.logits.detach())
        outputs[grad] = (torch.cat(steps, dim=1), out)
    (with_stats, stats_out), (without, lean_out) = outputs[True], outputs[False]
    assert stats_out.router_entropy is not None and stats_out.aux_loss is not None
    assert lean_out.router_entropy is None and lean_out.layer_experts_per_token is None and lean_out.aux_loss is None
    torch.testing.assert_close(without, with_stats, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(without, full, rtol=1e-5, atol=1e-5)


def test_cache_stays_within_the_window():
    model = make_model(decoder_window_size=4)
    input_ids, mask, _ = batch()
    out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=12, min_new_tokens=12,
                         do_sample=False, return_dict_in_generate=True)
    assert out.sequences.size(1) == 13
    assert out.cache.get_seq_length() == 12
    assert [c.key.size(-2) for c in out.cache.self_attention] == [3] * model.config.decoder_layers


@pytest.mark.parametrize(
    "kwargs",
    [dict(do_sample=False), dict(num_beams=3, do_sample=False), dict(do_sample=True, top_k=10, temperature=0.9)],
    ids=["greedy", "beam", "sample"],
)
def test_generate_with_cache_equals_without(model, kwargs):
    input_ids, mask, _ = batch()
    outs = []
    for use_cache in (True, False):
        torch.manual_seed(123)
        outs.append(model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=8,
                                   use_cache=use_cache, **kwargs))
    assert torch.equal(outs[0], outs[1])


def test_save_pretrained_round_trip_through_auto_classes(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "liquid"
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is LiquidFoundationModelOptimized
    input_ids, mask, dec = batch()
    a = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    b = loaded(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec).logits
    assert torch.equal(a, b)
    assert loaded.lm_head.weight.data_ptr() == loaded.shared.weight.data_ptr(), "head must stay tied"


def test_missing_inputs_are_refused(model):
    with pytest.raises(ValueError, match="labels"):
        model(input_ids=torch.ones(1, 3, dtype=torch.long))


def test_ce_loss_is_plain_cross_entropy_even_with_label_smoothing():
    model = make_model(label_smoothing=0.1)
    input_ids, mask, dec = batch()
    out = model(input_ids=input_ids, attention_mask=mask, labels=dec)
    ref = F.cross_entropy(out.logits.reshape(-1, VOCAB).float(), dec.reshape(-1))
    torch.testing.assert_close(out.ce_loss, ref)
    assert out.lm_loss > 0 and not torch.allclose(out.lm_loss, ref)


def test_output_reports_both_compression_ratios_and_per_layer_routing(model):
    input_ids, mask, dec = batch()
    out = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec)
    layers = model.config.encoder_layers + model.config.decoder_layers
    assert out.compression_ratio.shape == out.decoder_compression_ratio.shape == (3,)
    assert out.router_entropy.shape == out.layer_experts_per_token.shape == (layers,)
    assert torch.all(out.router_entropy > 0) and torch.all(out.layer_experts_per_token >= 1)


@pytest.mark.parametrize("overrides", [dict(embedding_type="plain"), dict(ffn_type="dense"), dict(conv_layers=0),
                                       dict(ffn_type="moe_encoder"), dict(ffn_type="moe_decoder"),
                                       dict(qk_norm=True), dict(embedding_scale=8.0)])
def test_ablation_variants_keep_causality_and_cache(overrides):
    variant = make_model(**overrides)
    test_decoder_is_causal_end_to_end(variant)
    test_cached_forward_equals_full_recompute(variant)
    test_encoder_padding_invariance(variant)
    if overrides.get("ffn_type") == "dense":
        assert not any("experts" in name for name, _ in variant.named_parameters())
        parts = variant.num_parameters_breakdown()
        assert parts["active"] == parts["total"]
    if overrides.get("ffn_type", "").startswith("moe_"):
        moe_stack = overrides["ffn_type"].removeprefix("moe_")
        for stack in ("encoder", "decoder"):
            kinds = {type(layer.moe) for layer in getattr(variant, stack).layers}
            assert kinds == ({MoELayer} if stack == moe_stack else {DenseSwiGLU}), stack


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_embedding_scale_multiplies_what_the_first_blocks_read(scale):
    """Both stacks: the input of the first encoder block (conv) and of the first decoder layer is exactly
    embedding_scale x the embedding layer's output; the tied LM head reads the unscaled table."""
    model = make_model(embedding_scale=scale)
    seen = {}
    hooks = [
        model.encoder.embedding.register_forward_hook(lambda m, a, out: seen.__setitem__("enc_emb", out.embeddings)),
        model.decoder.embedding.register_forward_hook(lambda m, a, out: seen.__setitem__("dec_emb", out.embeddings)),
        model.encoder.convs[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("enc_in", a[0])),
        model.decoder.layers[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("dec_in", a[0])),
    ]
    input_ids, mask, dec = batch()
    with torch.no_grad():
        model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec)
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(seen["enc_in"], scale * seen["enc_emb"], rtol=0, atol=0)
    torch.testing.assert_close(seen["dec_in"], scale * seen["dec_emb"], rtol=0, atol=0)
    assert model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr()


def test_qk_init_std_sets_the_attention_query_and_key_scale_only():
    """qk_init_std = d^-0.5 (T5's scheme, the presets' choice): W_q and W_k of every attention ~ N(0, d^-1),
    everything else 0.02 (qk_init_std = 0: initializer_range everywhere),
    so that attention logits q.k / sqrt(dh) start at order 1 instead of ~0.05 (a uniform average)."""
    d = 128
    base = LiquidFoundationModelOptimized(LiquidConfig.from_preset("small", vocab_size=300, qk_init_std=0.0))
    scaled = LiquidFoundationModelOptimized(LiquidConfig.from_preset("small", vocab_size=300, qk_init_std=d ** -0.5))
    attentions = [scaled.encoder.layers[0].self_attn, scaled.decoder.layers[-1].self_attn,
                  scaled.decoder.layers[0].cross_attn]
    for attn in attentions:
        for proj in (attn.q_proj, attn.k_proj):
            assert abs(proj.weight.std().item() - d ** -0.5) < 0.1 * d ** -0.5
        for proj in (attn.v_proj, attn.o_proj):
            assert abs(proj.weight.std().item() - 0.02) < 0.002
    assert abs(base.decoder.layers[0].cross_attn.q_proj.weight.std().item() - 0.02) < 0.002
    # the logits: with unit-rms inputs the scaled init gives attention scores ~20x larger
    x = torch.randn(2, 16, d)
    def logit_std(attn):
        q = attn._queries(x)
        k, _ = attn._keys_values(x)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        return (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).std().item()
    assert logit_std(scaled.decoder.layers[0].cross_attn) > 10 * logit_std(base.decoder.layers[0].cross_attn)
