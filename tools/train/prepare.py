#!/usr/bin/python3
"""Step 1 of the behemoth-nano pipeline: held-out slices, tokenizer, tokenized training stream.

Reads ../shared/corpus (mix.jsonl.gz and parallel.en-it.jsonl.gz) and writes:

  models/behemoth-nano/eval/<lang>_<domain>.jsonl   held-out text per (language, domain) cell
  models/behemoth-nano/eval/en-it.jsonl              500 held-out translation pairs
  models/behemoth-nano/tokenizer.model               SentencePiece BPE with byte fallback
  tools/train/work/train.bin                         uint16 token stream the trainer samples from
  tools/train/work/unigram.json                      training-token counts (the perplexity baseline)
  tools/train/work/prepare.json                      what went where (unit and token counts)

Held-out units are chosen with a fixed seed before anything else happens, and every training unit whose
text equals a held-out text is dropped, so the evaluation text is never trained on.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import sys

import numpy as np
import sentencepiece as spm

import nano_format

EVAL_UNITS_PER_CELL = 100         # units held out per (language, domain) cell
EVAL_BYTES_PER_CELL = 16_000      # ... but no more text than this per cell, so the slices stay small
EVAL_PAIRS = 500                  # translation pairs held out for chrF
TOKENIZER_SAMPLE_BYTES = 12_000_000


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(nano_format.REPO, "..", "shared", "corpus"))
    ap.add_argument("--model-dir", default=nano_format.MODEL_DIR)
    ap.add_argument("--work", default=nano_format.WORK_DIR)
    ap.add_argument("--vocab", type=int, default=6144)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    eval_dir = os.path.join(args.model_dir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)

    # ---- 1. held-out slices -------------------------------------------------------------------
    units = list(read_jsonl_gz(os.path.join(args.corpus, "mix.jsonl.gz")))
    cells = collections.defaultdict(list)
    for u in units:
        cells[(u["lang"], u["domain"])].append(u)
    held_texts = set()
    eval_manifest = {}
    for (lang, domain), cell in sorted(cells.items()):
        order = list(range(len(cell)))
        rng.shuffle(order)
        picked, size = [], 0
        for i in order:
            text = cell[i]["text"]
            if len(picked) >= EVAL_UNITS_PER_CELL or size + len(text.encode()) > EVAL_BYTES_PER_CELL:
                if picked:
                    break
            picked.append({"lang": lang, "domain": domain, "source": cell[i]["source"], "text": text})
            size += len(text.encode())
        for p in picked:
            held_texts.add(p["text"])
        name = f"{lang}_{domain}.jsonl"
        write_jsonl(os.path.join(eval_dir, name), picked)
        eval_manifest[name] = {"units": len(picked), "bytes": size}

    pairs = list(read_jsonl_gz(os.path.join(args.corpus, "parallel.en-it.jsonl.gz")))
    order = list(range(len(pairs)))
    rng.shuffle(order)
    eval_pairs = [pairs[i] for i in order[:EVAL_PAIRS]]
    held_pairs = {(p["en"], p["it"]) for p in eval_pairs}
    held_en = {p["en"] for p in eval_pairs}
    write_jsonl(os.path.join(eval_dir, "en-it.jsonl"), eval_pairs)
    eval_manifest["en-it.jsonl"] = {"pairs": len(eval_pairs)}

    train_units = [u for u in units if u["text"] not in held_texts]
    # A pair whose English side is held out is dropped even if its Italian differs: chrF must not reward recall.
    train_pairs = [pairs[i] for i in order[EVAL_PAIRS:] if pairs[i]["en"] not in held_en and (pairs[i]["en"], pairs[i]["it"]) not in held_pairs]
    print(f"held out: {sum(v.get('units', 0) for v in eval_manifest.values())} units in {len(cells)} cells, "
          f"{len(eval_pairs)} pairs; training on {len(train_units)} units and {len(train_pairs)} pairs", file=sys.stderr)

    # ---- 2. tokenizer -------------------------------------------------------------------------
    # Trained on an even sample of the training text (never the held-out slices) plus translation prompts,
    # so that the prompt words are single pieces.
    sample_path = os.path.join(args.work, "tokenizer_sample.txt")
    sample = [u["text"] for u in train_units] + [nano_format.translation_text(p["en"], p["it"]) for p in train_pairs]
    rng.shuffle(sample)
    with open(sample_path, "w", encoding="utf-8") as f:
        size = 0
        for s in sample:
            for line in s.split("\n"):
                if line.strip():
                    f.write(line + "\n")
                    size += len(line) + 1
            if size > TOKENIZER_SAMPLE_BYTES:
                break
    prefix = os.path.join(args.work, "tokenizer")
    spm.SentencePieceTrainer.train(
        input=sample_path, model_prefix=prefix, model_type="bpe", vocab_size=args.vocab,
        byte_fallback=True, character_coverage=0.9995, split_digits=True,
        # ids follow the Llama-2 convention; pad gets an id so generation_config can name it
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        # keep newlines (the translation prompt has one) and runs of spaces (man pages, code)
        normalization_rule_name="identity", remove_extra_whitespaces=False, user_defined_symbols=["\n"],
        allow_whitespace_only_pieces=True, max_sentence_length=16384,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, seed_sentencepiece_size=1_000_000,
        num_threads=2, minloglevel=2)
    os.replace(prefix + ".model", os.path.join(args.model_dir, "tokenizer.model"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.model_dir, "tokenizer.model"))

    # ---- 3. training stream -------------------------------------------------------------------
    # One document per unit or pair, each <s> ... </s>, in one seeded shuffled order.
    docs = [("text", u["text"]) for u in train_units] + [("pair", p) for p in train_pairs]
    rng.shuffle(docs)
    counts = np.zeros(args.vocab, dtype=np.int64)
    stream = []
    kinds = collections.Counter()
    batch = 4096
    for start in range(0, len(docs), batch):
        chunk = docs[start:start + batch]
        texts = [d[1] if d[0] == "text" else nano_format.translation_text(d[1]["en"], d[1]["it"]) for d in chunk]
        for (kind, _), ids in zip(chunk, sp.encode(texts)):
            toks = [nano_format.BOS] + ids + [nano_format.EOS]
            kinds[kind] += len(toks)
            stream.append(np.asarray(toks, dtype=np.uint16))
    stream = np.concatenate(stream)
    np.add.at(counts, stream.astype(np.int64), 1)
    stream.tofile(os.path.join(args.work, "train.bin"))
    with open(os.path.join(args.work, "unigram.json"), "w") as f:
        json.dump({"counts": counts.tolist()}, f)
    info = {"seed": args.seed, "vocab": args.vocab, "train_units": len(train_units), "train_pairs": len(train_pairs),
            "train_tokens": int(stream.size), "tokens_by_kind": dict(kinds), "eval": eval_manifest}
    with open(os.path.join(args.work, "prepare.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
