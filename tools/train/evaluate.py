#!/usr/bin/python3
"""Step 3 of the behemoth-nano pipeline: measure the shipped checkpoint and write its model card.

Everything is computed from the files in models/behemoth-nano (the bf16 safetensors upcast to float32,
exactly what a user loads), never from the trainer's float32 state:

  - held-out perplexity per (language, domain) slice, next to a unigram baseline fitted on the training tokens
  - routing statistics: per language and layer, the distribution of top-1 expert choices over all held-out
    tokens, and the pairwise Jensen-Shannon divergence (base 2, 0..1) between languages; as a noise floor,
    the divergence between two halves of the same language's text
  - chrF (character n-grams 1..6, beta 2, whitespace ignored, corpus level) of greedy en->it translations of the
    500 held-out pairs, next to the chrF of copying the English source unchanged
  - the parity golden file (tests/fixtures/nano_parity) the C# reference engine is tested against

Writes models/behemoth-nano/{metrics.json, MODEL_CARD.md, loss_curve.png, routing.png}.
"""

from __future__ import annotations

import argparse
import collections
import csv
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import sentencepiece as spm
import torch

import nano_format
from nano_model import Llama4ForCausalLM, parameter_counts

WINDOW = 256


def load_model(model_dir: str) -> Llama4ForCausalLM:
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = Llama4ForCausalLM(cfg)
    state = nano_format.read_safetensors(os.path.join(model_dir, "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"model.safetensors: missing {missing}, unexpected {unexpected}")
    return model.eval()


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def windows(tokens):
    """Splits a token list into overlapping-by-one windows so that every token after the first is predicted once."""
    for start in range(0, len(tokens) - 1, WINDOW):
        yield tokens[start:start + WINDOW + 1]


@torch.no_grad()
def score_slice(model, docs, unigram_logp):
    """Returns (model nll sum, unigram nll sum, predicted tokens, per-layer expert choices)."""
    nll = uni = 0.0
    count = 0
    choices = []
    for toks in docs:
        for w in windows(toks):
            x = torch.tensor(w[:-1])[None]
            y = torch.tensor(w[1:])
            logits, choice, _ = model(x)
            nll += float(torch.nn.functional.cross_entropy(logits[0].float(), y, reduction="sum"))
            uni += float(-unigram_logp[y.numpy()].sum())
            count += len(y)
            choices.append(choice[:, 0, :])            # [L, T]
    return nll, uni, count, torch.cat(choices, dim=1)


def usage(choice_rows, layers, experts):
    return np.stack([np.bincount(choice_rows[l].numpy(), minlength=experts) for l in range(layers)]).astype(np.float64)


def jsd(p, q):
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def char_ngrams(text, n):
    s = "".join(text.split())
    return collections.Counter(s[i:i + n] for i in range(len(s) - n + 1))


def chrf(hyps, refs, order=6, beta=2.0):
    """Corpus-level chrF (Popovic 2015): per order, precision and recall from summed n-gram matches; F-beta per
    order, averaged over the orders that have n-grams."""
    stats = np.zeros((order, 3))
    for h, r in zip(hyps, refs):
        for n in range(1, order + 1):
            hc, rc = char_ngrams(h, n), char_ngrams(r, n)
            stats[n - 1] += (sum(hc.values()), sum(rc.values()), sum((hc & rc).values()))
    scores = []
    for n_hyp, n_ref, n_match in stats:
        if n_hyp == 0 or n_ref == 0:
            continue
        p, r = n_match / n_hyp, n_match / n_ref
        scores.append(0.0 if p + r == 0 else (1 + beta ** 2) * p * r / (beta ** 2 * p + r))
    return 100.0 * sum(scores) / len(scores) if scores else 0.0


@torch.no_grad()
def greedy(model, prompt_ids, stop_ids, max_new):
    caches = [dict() for _ in model.model.layers]
    logits, _, _ = model(torch.tensor(prompt_ids)[None], torch.arange(len(prompt_ids)), caches)
    out = []
    pos = len(prompt_ids)
    nxt = int(logits[0, -1].argmax())
    while nxt not in stop_ids and len(out) < max_new:
        out.append(nxt)
        logits, _, _ = model(torch.tensor([[nxt]]), torch.tensor([pos]), caches)
        pos += 1
        nxt = int(logits[0, -1].argmax())
    return out


# The pairs come from review and chat sentences (the corpus README warns some are crude): the card shows only
# mid-length samples without these words.
_NOT_FOR_THE_CARD = ("fuck", "shit", "bitch", "sex", "kill", "damn", "dick", "porn", "rape", "hate", "stupid", "idiot",
                     "crap", "schizo", "drug", "ass ", "sucks", "die", "dead")


def presentable(text):
    low = text.lower()
    return 6 <= len(text.split()) <= 25 and not any(w in low for w in _NOT_FOR_THE_CARD)


def plot_loss(log_path, out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    tok = [int(r["tokens"]) / 1e6 for r in rows]
    loss = np.array([float(r["loss"]) for r in rows])
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid")
    val = [(int(r["tokens"]) / 1e6, float(r["val_loss"])) for r in rows if r["val_loss"]]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(tok, loss, color="#bbbbbb", lw=0.6, label="train (per step)")
    ax.plot(tok[len(tok) - len(smooth):], smooth, color="#1f77b4", lw=1.5, label="train (mean of the last 20 steps)")
    ax.plot([v[0] for v in val], [v[1] for v in val], "o-", color="#d62728", ms=3, label="held-out")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("behemoth-nano training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path + ".tmp.png")
    os.replace(out_path + ".tmp.png", out_path)
    plt.close(fig)


def plot_routing(dists, out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    langs = sorted(dists)
    layers = dists[langs[0]].shape[0]
    fig, axes = plt.subplots(1, layers, figsize=(3.2 * layers, 2.8), dpi=110, sharey=True)
    for l, ax in enumerate(axes):
        m = np.stack([dists[g][l] / dists[g][l].sum() for g in langs])
        ax.imshow(m, aspect="auto", cmap="viridis", vmin=0)
        ax.set_title(f"layer {l}")
        ax.set_xlabel("expert")
        ax.set_yticks(range(len(langs)))
        ax.set_yticklabels(langs)
    fig.suptitle("share of held-out tokens routed to each expert, per language")
    fig.tight_layout()
    fig.savefig(out_path + ".tmp.png")
    os.replace(out_path + ".tmp.png", out_path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=nano_format.MODEL_DIR)
    ap.add_argument("--work", default=nano_format.WORK_DIR)
    ap.add_argument("--parity-dir", default=os.path.join(nano_format.REPO, "tests", "fixtures", "nano_parity"))
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()

    model = load_model(args.model_dir)
    cfg = model.cfg
    layers, experts = cfg["num_hidden_layers"], cfg["num_local_experts"]
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model_dir, "tokenizer.model"))
    with open(os.path.join(args.work, "unigram.json")) as f:
        counts = np.asarray(json.load(f)["counts"], dtype=np.float64)
    unigram_logp = np.log((counts + 1) / (counts + 1).sum())       # add-one smoothing over the vocabulary

    # ---- perplexity and routing per slice ------------------------------------------------------
    eval_dir = os.path.join(args.model_dir, "eval")
    slices = {}
    by_lang = collections.defaultdict(list)
    for name in sorted(os.listdir(eval_dir)):
        if not name.endswith(".jsonl") or name == "en-it.jsonl":
            continue
        rows = read_jsonl(os.path.join(eval_dir, name))
        docs = [[nano_format.BOS] + sp.encode(r["text"]) + [nano_format.EOS] for r in rows]
        nll, uni, n, choice = score_slice(model, docs, unigram_logp)
        lang, domain = rows[0]["lang"], rows[0]["domain"]
        slices[f"{lang}/{domain}"] = {"tokens": n, "bytes": sum(len(r["text"].encode()) for r in rows),
                                      "perplexity": math.exp(nll / n), "unigram_perplexity": math.exp(uni / n)}
        by_lang[lang].append(choice)
        print(f"{lang}/{domain}: ppl {math.exp(nll / n):.1f} (unigram {math.exp(uni / n):.1f}) over {n} tokens", file=sys.stderr)
    pairs = read_jsonl(os.path.join(eval_dir, "en-it.jsonl"))
    docs = [[nano_format.BOS] + sp.encode(nano_format.translation_text(p["en"], p["it"])) + [nano_format.EOS] for p in pairs]
    nll, uni, n, _ = score_slice(model, docs, unigram_logp)
    slices["en-it/translation"] = {"tokens": n, "perplexity": math.exp(nll / n), "unigram_perplexity": math.exp(uni / n)}

    dists = {}
    halves = {}
    for lang, chunks in by_lang.items():
        allc = torch.cat(chunks, dim=1)
        dists[lang] = usage(allc, layers, experts)
        half = allc.shape[1] // 2
        halves[lang] = jsd_per_layer(usage(allc[:, :half], layers, experts), usage(allc[:, half:], layers, experts))
    langs = sorted(dists)
    pair_jsd = {f"{a}-{b}": jsd_per_layer(dists[a], dists[b]) for a, b in itertools.combinations(langs, 2)}
    routing = {
        "usage": {g: dists[g].astype(int).tolist() for g in langs},
        "jsd_between_languages": pair_jsd,
        "jsd_within_language_halves": halves,
        "mean_jsd_between_languages_per_layer": [float(np.mean([v[l] for v in pair_jsd.values()])) for l in range(layers)],
        "mean_jsd_within_language_per_layer": [float(np.mean([v[l] for v in halves.values()])) for l in range(layers)],
    }

    # ---- translation ---------------------------------------------------------------------------
    stop = {nano_format.EOS, sp.piece_to_id("\n")}
    hyps, refs, srcs = [], [], []
    samples = []
    for i, p in enumerate(pairs[:args.pairs]):
        prompt = [nano_format.BOS] + sp.encode(nano_format.translation_prompt(p["en"]))
        out = greedy(model, prompt, stop, max_new=2 * len(prompt) + 16)
        hyp = sp.decode(out).strip()
        hyps.append(hyp)
        refs.append(p["it"])
        srcs.append(p["en"])
        if len(samples) < 5 and presentable(p["en"]):
            samples.append({"en": p["en"], "reference": p["it"], "behemoth-nano": hyp})
    translation = {"pairs": len(hyps), "chrf": chrf(hyps, refs), "chrf_copy_source": chrf(srcs, refs),
                   "chrf_self_check": chrf(refs, refs), "samples": samples}
    print(f"chrF {translation['chrf']:.2f} (copying the source: {translation['chrf_copy_source']:.2f})", file=sys.stderr)

    # ---- parity golden for the C# reference engine ---------------------------------------------
    write_parity(model, sp, pairs, args.parity_dir)

    with open(os.path.join(args.work, "train.json")) as f:
        train = json.load(f)
    with open(os.path.join(args.work, "prepare.json")) as f:
        prep = json.load(f)
    metrics = {"parameters": parameter_counts(model),
               "checkpoint_bytes": os.path.getsize(os.path.join(args.model_dir, "model.safetensors")),
               "training": {k: train[k] for k in ("steps", "tokens_seen", "train_minutes", "torch", "threads")} | {"args": train["args"]},
               "data": {k: prep[k] for k in ("train_units", "train_pairs", "train_tokens", "tokens_by_kind", "vocab", "seed")},
               "perplexity": slices, "routing": routing, "translation": translation,
               "evaluate_minutes": (time.time() - t_start) / 60}
    nano_format.write_json(os.path.join(args.model_dir, "metrics.json"), metrics)
    plot_loss(os.path.join(args.work, "train_log.csv"), os.path.join(args.model_dir, "loss_curve.png"))
    plot_routing(dists, os.path.join(args.model_dir, "routing.png"))
    import model_card
    model_card.write(args.model_dir, metrics, cfg)
    print(f"wrote metrics.json, MODEL_CARD.md and plots in {(time.time() - t_start) / 60:.1f} min", file=sys.stderr)
    return 0


def jsd_per_layer(a, b):
    return [jsd(a[l], b[l]) for l in range(a.shape[0])]


PARITY_TOKENS = 150          # crosses the 128-token attention chunk boundary
PARITY_COLUMN_STRIDE = 8     # every 8th vocabulary column keeps the file small


@torch.no_grad()
def write_parity(model, sp, pairs, out_dir):
    """Token ids and float32 logits (every PARITY_COLUMN_STRIDE-th column, all positions) computed by this
    PyTorch model on the shipped bf16 weights upcast to float32."""
    os.makedirs(out_dir, exist_ok=True)
    ids = [nano_format.BOS]
    for p in pairs[-20:]:
        ids += sp.encode(nano_format.translation_text(p["en"], p["it"])) + [nano_format.EOS]
        if len(ids) >= PARITY_TOKENS:
            break
    ids = ids[:PARITY_TOKENS]
    logits, _, _ = model(torch.tensor(ids)[None])
    cols = logits[0, :, ::PARITY_COLUMN_STRIDE].float().contiguous().numpy().astype("<f4")
    nano_format.write_json(os.path.join(out_dir, "input_ids.json"), ids)
    tmp = os.path.join(out_dir, "logits.f32.tmp")
    cols.tofile(tmp)
    os.replace(tmp, os.path.join(out_dir, "logits.f32"))
    nano_format.write_json(os.path.join(out_dir, "parity.json"), {
        "model": "models/behemoth-nano", "tokens": len(ids), "vocab": int(logits.shape[-1]),
        "column_stride": PARITY_COLUMN_STRIDE, "columns": int(cols.shape[1]),
        "layout": "float32 little-endian, row-major [tokens, columns]; column j is vocabulary id j*column_stride",
        "written_by": "tools/train/evaluate.py (PyTorch, float32 forward of the bf16 checkpoint)"})


if __name__ == "__main__":
    sys.exit(main())
