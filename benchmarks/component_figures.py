"""Figures of issue 9 for one code tree and one model (random init of the tiny preset, or a checkpoint):
LiquidEmbedding (||z||/||e||, effect of the cut-off, ratio resolution), MoE routing (router task gradient of
K=1 vs K=2 tokens, entropy, top-1 probability, experts/token), encoder conv stack (rms growth, cosine).

    python benchmarks/component_figures.py CODE_DIR TOKENIZER_DIR [CHECKPOINT_DIR]

CODE_DIR is put first on sys.path, so the same script measures an older tree (e.g. a `git archive` of main).
Runs on CPU in a few seconds; the batch is the first 64 validation rows.
"""

import json
import sys

sys.path.insert(0, sys.argv[1])

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

import liquid  # noqa: E402,F401
from liquid import LiquidConfig, LiquidFoundationModelOptimized  # noqa: E402

torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(sys.argv[2])
if len(sys.argv) > 3:
    model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[3])
else:
    config = LiquidConfig.from_preset("tiny", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      decoder_start_token_id=tok.bos_token_id)
    model = LiquidFoundationModelOptimized(config)
model.eval()
rows = [json.loads(line) for line in open("data/validation.jsonl", encoding="utf-8")][:64]
src = tok([r["instruction"] for r in rows], padding=True, truncation=True, max_length=128, return_tensors="pt")
tgt = tok([r["response"] for r in rows], padding=True, truncation=True, max_length=128, return_tensors="pt")
labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, -100)
dec_ids = model.shift_right(labels)
dec_mask = (labels != -100).long()
fig = {}


def rel(a, b):
    return float((a - b).norm() / b.norm())


with torch.no_grad():
    for name, emb, ids, mask in (("enc", model.encoder.embedding, src["input_ids"], src["attention_mask"]),
                                 ("dec", model.decoder.embedding, dec_ids, dec_mask)):
        base, low = emb.base_compression_ratio, emb.min_compression_ratio
        out = emb(ids, mask)
        e = emb.token_embedding(ids) * mask[..., None]
        fig[f"{name}_z_over_e"] = float((out.embeddings - e).norm() / e.norm())
        fig[f"{name}_ratio_mean"] = float(out.compression_ratio.mean())
        fig[f"{name}_reconstruction_loss"] = float(out.reconstruction_loss)
        emb.base_compression_ratio = emb.min_compression_ratio = 0.0
        off = emb(ids, mask).embeddings
        fig[f"{name}_cutoff_changes_output_by"] = rel(out.embeddings, off)
        for r in (0.1, 0.5):
            emb.base_compression_ratio = emb.min_compression_ratio = r
            fig[f"{name}_change_at_ratio_{r}"] = rel(emb(ids, mask).embeddings, off)
        emb.base_compression_ratio, emb.min_compression_ratio = base, low

    x = model.encoder.embedding(src["input_ids"], src["attention_mask"]).embeddings
    e0 = x
    real = src["attention_mask"].bool()
    for block in model.encoder.convs:
        x = block(x, src["attention_mask"])
    fig["conv_stack_rms_over_embedding_rms"] = float(x[real].pow(2).mean().sqrt() / e0[real].pow(2).mean().sqrt())
    fig["conv_stack_cosine_to_embedding"] = float(F.cosine_similarity(x[real], e0[real], dim=-1).mean())
    fig["conv_stack_mean_offset"] = float(x[real].mean())
    h = model.encoder(src["input_ids"], src["attention_mask"]).last_hidden_state
    fig["encoder_output_cosine_to_embedding"] = float(F.cosine_similarity(h[real], e0[real], dim=-1).mean())

# router: task-loss gradient on the router logits of tokens that use one expert vs two
captured = []
for module in model.modules():
    if module.__class__.__name__ == "MoELayer":
        def hook(mod, args, kwargs, output, store=captured):
            output_logits = mod._captured
            store.append((mod, output_logits, kwargs.get("mask")))
        def router_hook(mod, inputs, output, parent=module):
            output.retain_grad()
            parent._captured = output
        module.router.register_forward_hook(router_hook)
        module.register_forward_hook(hook, with_kwargs=True)
out = model(input_ids=src["input_ids"], attention_mask=src["attention_mask"], labels=labels)
out.lm_loss.backward()
k1, k2, top1, entropy, experts = [], [], [], [], []
for mod, logits, mask in captured:
    real = mask.reshape(-1).bool() if mask is not None else torch.ones(logits.shape[0], dtype=torch.bool)
    probs = logits.softmax(-1).detach()
    top, _ = probs.topk(mod.top_k, dim=-1)
    k = ((top.cumsum(-1) - top) < mod.threshold).sum(-1).clamp(1, mod.top_k) if mod.dynamic_k else \
        torch.full_like(real, mod.top_k, dtype=torch.long)
    g = logits.grad.norm(dim=-1)
    k1.append(g[real & (k == 1)])
    k2.append(g[real & (k >= 2)])
    top1.append(float(top[real, 0].mean()))
    entropy.append(float(-(probs[real] * probs[real].log()).sum(-1).mean()))
    experts.append(float(k[real].float().mean()))
k1, k2 = torch.cat(k1), torch.cat(k2)
fig["router_task_grad_K1_tokens_mean"] = float(k1.mean()) if k1.numel() else None
fig["router_task_grad_K2_tokens_mean"] = float(k2.mean()) if k2.numel() else None
fig["share_of_tokens_with_K1"] = k1.numel() / (k1.numel() + k2.numel())
fig["router_top1_prob_per_layer"] = [round(v, 3) for v in top1]
fig["router_entropy_per_layer"] = [round(v, 3) for v in entropy]
fig["experts_per_token_per_layer"] = [round(v, 2) for v in experts]
for key, value in fig.items():
    print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
