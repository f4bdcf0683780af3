"""Writes models/behemoth-nano/calib/: calibration text for expert profiling and pruning (behemoth profile --calib).

One file per language (en, it, fr, de, es: units of every domain of that language) and one of English→Italian
pairs in the model's translation format. Drawn with a fixed seed from the training side of ../shared/corpus: no
text or pair of models/behemoth-nano/eval appears here, so pruning calibrated on these files is judged on text it
never saw.

    /usr/bin/python3 tools/train/calibration.py
"""
import argparse
import collections
import json
import os
import random
import sys

import nano_format
from prepare import read_jsonl_gz, write_jsonl

UNITS_PER_LANGUAGE = 240
BYTES_PER_LANGUAGE = 48_000
PAIRS = 400


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(nano_format.REPO, "..", "shared", "corpus"))
    ap.add_argument("--model-dir", default=nano_format.MODEL_DIR)
    ap.add_argument("--seed", type=int, default=4321)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    eval_dir = os.path.join(args.model_dir, "eval")
    held = set()
    held_en = set()
    for name in os.listdir(eval_dir):
        with open(os.path.join(eval_dir, name), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if "text" in row:
                    held.add(row["text"])
                else:
                    held_en.add(row["en"])
    out = os.path.join(args.model_dir, "calib")
    os.makedirs(out, exist_ok=True)

    by_lang = collections.defaultdict(list)
    for u in read_jsonl_gz(os.path.join(args.corpus, "mix.jsonl.gz")):
        if u["text"] not in held:
            by_lang[u["lang"]].append(u)
    for lang, units in sorted(by_lang.items()):
        rng.shuffle(units)
        picked, size = [], 0
        for u in units:
            n = len(u["text"].encode())
            if len(picked) >= UNITS_PER_LANGUAGE or size + n > BYTES_PER_LANGUAGE:
                continue
            picked.append({"lang": lang, "domain": u["domain"], "source": u["source"], "text": u["text"]})
            size += n
        write_jsonl(os.path.join(out, f"{lang}.jsonl"), picked)
        print(f"{lang}: {len(picked)} units, {size} bytes", file=sys.stderr)

    pairs = [p for p in read_jsonl_gz(os.path.join(args.corpus, "parallel.en-it.jsonl.gz")) if p["en"] not in held_en]
    rng.shuffle(pairs)
    write_jsonl(os.path.join(out, "en-it.jsonl"), pairs[:PAIRS])
    print(f"en-it: {min(PAIRS, len(pairs))} pairs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
