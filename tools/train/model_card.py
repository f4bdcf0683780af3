"""Renders models/behemoth-nano/MODEL_CARD.md from metrics.json and config.json (called by evaluate.py), so
that every number in the card is one the evaluation measured."""

from __future__ import annotations

import os


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _parity_section() -> str:
    """The independent checks of the shipped weights: Hugging Face transformers' own Llama4ForCausalLM
    (check_transformers.py, results/transformers_check.json) and Behemoth's C# reference engine (a test)."""
    lines = ["## Parity", "",
             "`tests/fixtures/nano_parity` holds 150 token ids (crossing the 128-token chunk boundary) and the float32",
             "logits this trainer computes for them (every 8th vocabulary column). Behemoth's C# reference engine must",
             "reproduce them within 1e-3 (test `NanoModelTests`)."]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "transformers_check.json")
    if os.path.exists(path):
        import json
        with open(path) as f:
            c = json.load(f)
        worst = max(abs(v["transformers"] / v["metrics_json"] - 1) for v in c["perplexity"].values())
        lines += ["", f"Loaded by Hugging Face transformers {c['transformers']} (`AutoModelForCausalLM` → `{c['model_class']}`,",
                  f"float32, eager attention) with `tools/train/check_transformers.py`: max |logit difference| against",
                  f"the trainer {c['max_abs_diff_vs_trainer']:.1e} ({c['max_abs_diff_after_chunk_boundary']:.1e} after the chunk boundary), same argmax",
                  f"at {100 * c['argmax_agreement']:.0f}% of positions; held-out perplexity on {len(c['perplexity'])} slices within",
                  f"{worst:.0e} (relative) of the table above."]
    return "\n".join(lines) + "\n"


def write(model_dir: str, m: dict, cfg: dict) -> None:
    p, t, d, r, tr = m["parameters"], m["training"], m["data"], m["routing"], m["translation"]
    layers = cfg["num_hidden_layers"]
    ppl_rows = [(k, v["tokens"], f"{v['perplexity']:.1f}", f"{v['unigram_perplexity']:.1f}",
                 f"{v['perplexity'] / v['unigram_perplexity']:.2f}") for k, v in m["perplexity"].items()]
    jsd_rows = [(pair, *[f"{x:.3f}" for x in vals]) for pair, vals in r["jsd_between_languages"].items()]
    jsd_rows.append(("**mean between languages**", *[f"**{x:.3f}**" for x in r["mean_jsd_between_languages_per_layer"]]))
    jsd_rows.append(("mean within a language (two halves of its text)", *[f"{x:.3f}" for x in r["mean_jsd_within_language_per_layer"]]))
    top_rows = []
    for lang, usage in r["usage"].items():
        cells = []
        for layer in usage:
            total = sum(layer)
            best = sorted(range(len(layer)), key=lambda e: -layer[e])[:2]
            cells.append(", ".join(f"e{e} {100 * layer[e] / total:.0f}%" for e in best))
        top_rows.append((lang, *cells))
    sample_rows = [(s["en"], s["reference"], s["behemoth-nano"]) for s in tr["samples"]]
    args = t["args"]
    parity = _parity_section()
    text = f"""# behemoth-nano

A small Mixture-of-Experts language model with the Hugging Face **Llama-4 text architecture**
(`Llama4ForCausalLM`, `model_type` `llama4_text`), trained from scratch by Behemoth on freely licensed text
in English, Italian, French, German and Spanish, plus an English→Italian translation task. It is Behemoth's
default model: the README's main job, the samples and every quality table use it. It is a test subject for
expert profiling, pruning and distillation, not an assistant: it is tiny and saw {t['tokens_seen'] / 1e6:.1f}M tokens.

Files (exact Hugging Face layout): `config.json`, `model.safetensors` (bf16, {m['checkpoint_bytes'] / 1e6:.1f} MB),
`tokenizer.model`, `generation_config.json`, `eval/` (held-out slices), `metrics.json` (every number below),
`loss_curve.png`, `routing.png`.

## Architecture

| | |
|---|---|
| parameters | {p['total']:,} ({p['experts']:,} in experts = {100 * p['expert_fraction']:.1f}%) |
| layers | {layers}, all MoE: {cfg['num_local_experts']} routed experts (top-{cfg['num_experts_per_tok']}, sigmoid of the router logit scales the expert input) + 1 shared expert, SwiGLU, intermediate size {cfg['intermediate_size']} |
| hidden size | {cfg['hidden_size']}; {cfg['num_attention_heads']} query heads, {cfg['num_key_value_heads']} key/value heads, head dim {cfg['head_dim']} |
| attention | layers {', '.join(str(i) for i, v in enumerate(cfg['no_rope_layers']) if v)}: interleaved RoPE (theta {cfg['rope_theta']:g}), QK L2-norm, chunked attention ({cfg['attention_chunk_size']}-token chunks); layer {', '.join(str(i) for i, v in enumerate(cfg['no_rope_layers']) if not v)}: NoPE (no_rope_layer_interval {cfg['no_rope_layer_interval']}), full causal attention with temperature tuning (floor_scale {cfg['floor_scale']}, attn_scale {cfg['attn_scale']}) |
| vocabulary | {cfg['vocab_size']} SentencePiece BPE pieces with byte fallback; `<unk>` 0, `<s>` 1, `</s>` 2, `<pad>` 3; newline is its own piece |
| embeddings | input and output embeddings tied |

## Data and licences

All training text comes from Behemoth's shared corpus (Debian and npm packages, freely licensed; sources and
licences per file in the corpus README): man pages (GPL-2+/GPL-3+), Debian Reference, Developers' Reference and
Maintainers' Guide (GPL-2+, MIT), the World English Bible and Reina-Valera 1909 (public domain), fortunes (BSD,
public domain, GPL-2+), the Brown corpus (MIT), State of the Union addresses (public domain texts), and review,
news and chat sentences from nlp-corpus / it-corpus / fr-corpus / de-corpus (MIT), plus 93k English–Italian
sentence pairs (nlp-corpus and it-corpus, MIT). The `web_chat` domain contains some crude or offensive sentences;
filter generated text before showing it to people.

- Training documents: {d['train_units']:,} text units and {d['train_pairs']:,} translation pairs,
  {d['train_tokens'] / 1e6:.1f}M tokens in all ({d['tokens_by_kind']['text'] / 1e6:.1f}M text, {d['tokens_by_kind']['pair'] / 1e6:.1f}M translation).
- Held out before anything else and never trained on (any training unit with the same text is dropped):
  `eval/<lang>_<domain>.jsonl`, up to 100 units and 16 kB per language and domain, and `eval/en-it.jsonl`, 500 pairs.

### Translation prompt format

Each training pair is one document, `<s>English: {{en}}\\nItalian: {{it}}</s>`, i.e. the literal text
`English: ` + the English sentence + a newline + `Italian: ` + the Italian sentence. To translate, feed
`<s>English: {{en}}\\nItalian:` and decode greedily until `</s>` or a newline.

## Training

PyTorch {t['torch']} (Debian `python3-torch`, OpenBLAS) on {t['threads']} CPU threads: {t['steps']} steps of
{args['batch']} × {args['seq']} tokens = **{t['tokens_seen']:,} tokens seen** in {t['train_minutes']:.0f} minutes.
AdamW (β 0.9/0.95, weight decay {args['weight_decay']}), peak learning rate {args['lr']:g} after {args['warmup']} warm-up
steps, cosine decay to 10%, gradient clipping 1.0, plus {cfg['router_aux_loss_coef']} × a Switch-style expert
balance loss. Seed {args['seed']}. The exact command lines are in `tools/train/run.sh`; `tools/train/README.md`
explains the pipeline.

![loss curve](loss_curve.png)

## Metrics

All measured on the shipped bf16 weights by `tools/train/evaluate.py`.

### Held-out perplexity

Per token of this tokenizer; the unigram baseline is the add-one-smoothed token frequency of the training data.

{_table(["slice", "tokens", "behemoth-nano", "unigram", "ratio"], ppl_rows)}

### Expert specialisation

Per layer, the distribution of top-1 expert choices over all held-out tokens of a language, and the Jensen–Shannon
divergence (base 2: 0 = same distribution, 1 = disjoint) between languages. The last row is the noise floor: the
divergence between the first and second half of the same language's held-out text.

{_table(["languages", *[f"layer {l}" for l in range(layers)]], jsd_rows)}

Most-used experts per language (share of that language's tokens):

{_table(["language", *[f"layer {l}" for l in range(layers)]], top_rows)}

![routing](routing.png)

### English→Italian translation

Greedy decoding of the {tr['pairs']} held-out pairs: **chrF {tr['chrf']:.1f}** (character n-grams 1–6, β = 2,
corpus level). Copying the English source unchanged scores {tr['chrf_copy_source']:.1f}. Five of the held-out
pairs (mid-length, and skipping crude words, since the pairs come from review and chat sentences):

{_table(["English", "reference", "behemoth-nano"], sample_rows)}

At this size and training budget the model writes Italian-looking text but does not translate: its chrF is
below the copy-the-source baseline. The task is there so that a translation profile can be carved and its
quality change measured, not for its absolute quality.

{parity}
## Limitations

Tiny and briefly trained: it produces fluent-looking fragments, not reliable facts or translations. It knows
only what five languages of man pages, scripture, fortunes, speeches and web sentences contain. Do not use it
for anything but testing model tooling.
"""
    tmp = os.path.join(model_dir, "MODEL_CARD.md.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, os.path.join(model_dir, "MODEL_CARD.md"))

