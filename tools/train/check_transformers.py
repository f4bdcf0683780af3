"""Independent check of the shipped checkpoint with Hugging Face transformers' own Llama4ForCausalLM.

The trainer (nano_model.py) is a re-implementation of the Llama-4 text model; this script loads
models/behemoth-nano with `transformers.AutoModelForCausalLM` (the real `modeling_llama4.py`), and compares:
  - its float32 logits on tests/fixtures/nano_parity/input_ids.json with the trainer's logits.f32
    (150 tokens: they cross the 128-token attention chunk boundary),
  - its held-out perplexity on a few eval slices with the values in models/behemoth-nano/metrics.json,
    computed the same way (BOS + text + EOS, 256-token windows).
Needs `transformers`, `torch`, `sentencepiece`, `numpy` (not installed on the development machine; it was run on
a machine that has them). Writes a JSON report to --out.

    python3 tools/train/check_transformers.py --out transformers_check.json
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import sentencepiece as spm
import torch
import transformers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "models", "behemoth-nano")
PARITY = os.path.join(REPO, "tests", "fixtures", "nano_parity")
BOS, EOS = 1, 2
WINDOW = 256
SLICES = ["en_tech", "it_tech", "de_quotes", "es_scripture", "fr_web_chat"]


@torch.no_grad()
def slice_perplexity(model, sp, name):
    with open(os.path.join(MODEL, "eval", name + ".jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    nll, n = 0.0, 0
    for r in rows:
        toks = [BOS] + sp.encode(r["text"]) + [EOS]
        for start in range(0, len(toks) - 1, WINDOW):
            w = toks[start:start + WINDOW + 1]
            logits = model(torch.tensor(w[:-1])[None]).logits[0].float()
            nll += float(torch.nn.functional.cross_entropy(logits, torch.tensor(w[1:]), reduction="sum"))
            n += len(w) - 1
    return f"{rows[0]['lang']}/{rows[0]['domain']}", math.exp(nll / n), n


@torch.no_grad()
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        MODEL, dtype=torch.float32, attn_implementation="eager").eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(MODEL, "tokenizer.model"))

    with open(os.path.join(PARITY, "input_ids.json")) as f:
        ids = json.load(f)
    with open(os.path.join(PARITY, "parity.json")) as f:
        meta = json.load(f)
    stride = meta["column_stride"]
    expected = np.fromfile(os.path.join(PARITY, "logits.f32"), dtype="<f4").reshape(len(ids), -1)
    logits = model(torch.tensor(ids)[None]).logits[0, :, ::stride].float().numpy()
    diff = np.abs(logits - expected)
    chunk = model.config.attention_chunk_size
    report = {
        "transformers": transformers.__version__, "torch": torch.__version__,
        "model_class": type(model).__name__,
        "parity_tokens": len(ids),
        "max_abs_diff_vs_trainer": float(diff.max()),
        "max_abs_diff_after_chunk_boundary": float(diff[chunk:].max()),
        "argmax_agreement": float((logits.argmax(1) == expected.argmax(1)).mean()),
    }
    with open(os.path.join(MODEL, "metrics.json")) as f:
        metrics = json.load(f)["perplexity"]
    report["perplexity"] = {}
    for name in SLICES:
        key, ppl, n = slice_perplexity(model, sp, name)
        report["perplexity"][key] = {"transformers": ppl, "metrics_json": metrics[key]["perplexity"], "tokens": n,
                                     "metrics_json_tokens": metrics[key]["tokens"]}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    ok = report["max_abs_diff_vs_trainer"] <= 1e-3 and all(
        abs(v["transformers"] / v["metrics_json"] - 1) < 1e-3 for v in report["perplexity"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
