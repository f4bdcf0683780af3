#!/usr/bin/python3
"""Step 2 of the behemoth-nano pipeline: train the model and write it in Hugging Face layout.

Samples fixed-length windows from tools/train/work/train.bin in one seeded order, trains with AdamW
(warm-up then cosine decay) on next-token cross-entropy plus a Switch-style expert balance loss, and
checkpoints every --ckpt-every steps to tools/train/work/ckpt.pt. Run the same command again after an
interruption and it resumes from the checkpoint with the same data order and the same random state.

At the end it writes models/behemoth-nano/{config.json, generation_config.json, model.safetensors (bf16)}
and tools/train/work/train_log.csv (the loss curve the model card plots).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch

import nano_format
from nano_model import Llama4ForCausalLM, parameter_counts


def window_order(n_windows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n_windows)


def batch_at(stream, order, step, batch, seq):
    idx = order[(step * batch + np.arange(batch)) % len(order)]
    rows = np.stack([stream[i * seq: i * seq + seq + 1] for i in idx]).astype(np.int64)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def validation_windows(model_dir: str, seq: int, limit: int = 48):
    """A fixed set of held-out windows (from the eval slices) for the validation curve."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    eval_dir = os.path.join(model_dir, "eval")
    toks = []
    for name in sorted(os.listdir(eval_dir)):
        with open(os.path.join(eval_dir, name), encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                text = r["text"] if "text" in r else nano_format.translation_text(r["en"], r["it"])
                toks += [nano_format.BOS] + sp.encode(text) + [nano_format.EOS]
    toks = np.asarray(toks, dtype=np.int64)
    n = min(limit, (len(toks) - 1) // seq)
    step = (len(toks) - 1) // seq // n
    rows = np.stack([toks[i * step * seq: i * step * seq + seq + 1] for i in range(n)])
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]


def lr_at(step, steps, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--stop-after", type=int, default=0, help="stop (checkpointed) after this many steps in this run; 0 = run to the end")
    ap.add_argument("--work", default=nano_format.WORK_DIR)
    ap.add_argument("--model-dir", default=nano_format.MODEL_DIR)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(os.path.join(args.work, "prepare.json")) as f:
        vocab = json.load(f)["vocab"]
    cfg = nano_format.nano_config(vocab)
    model = Llama4ForCausalLM(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))

    stream = np.memmap(os.path.join(args.work, "train.bin"), dtype=np.uint16, mode="r")
    n_windows = (len(stream) - 1) // args.seq
    order = window_order(n_windows, args.seed)
    val_x, val_y = validation_windows(args.model_dir, args.seq)

    ckpt_path = os.path.join(args.work, "ckpt.pt")
    log_path = os.path.join(args.work, "train_log.csv")
    step, elapsed = 0, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        if ck["args"]["steps"] != args.steps or ck["args"]["batch"] != args.batch or ck["args"]["seq"] != args.seq:
            raise SystemExit(f"{ckpt_path}: was made with steps/batch/seq {ck['args']['steps']}/{ck['args']['batch']}/{ck['args']['seq']}; "
                             "pass the same values or delete it to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["rng"])
        step, elapsed = ck["step"], ck["elapsed"]
        print(f"resuming at step {step} ({elapsed / 60:.1f} min trained so far)", file=sys.stderr)
    # the log keeps exactly the rows of the steps the checkpoint contains
    rows = []
    if os.path.exists(log_path) and step > 0:
        with open(log_path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) < step]
    counts = parameter_counts(model)
    print(json.dumps(counts), file=sys.stderr)

    def save_ckpt():
        tmp = ckpt_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                    "step": step, "elapsed": elapsed, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)
        with open(log_path + ".tmp", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "tokens", "loss", "aux", "val_loss", "lr", "minutes"])
            w.writeheader()
            w.writerows(rows)
        os.replace(log_path + ".tmp", log_path)

    run_start = step
    model.train()
    while step < args.steps:
        t0 = time.time()
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch_at(stream, order, step, args.batch, args.seq)
        logits, _, aux = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        total = loss + cfg["router_aux_loss_coef"] * aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        elapsed += time.time() - t0
        val = ""
        if (step + 1) % args.val_every == 0 or step + 1 == args.steps:
            model.eval()
            with torch.no_grad():
                vl, _, _ = model(val_x)
                val = float(torch.nn.functional.cross_entropy(vl.reshape(-1, vl.shape[-1]), val_y.reshape(-1)))
            model.train()
        rows.append({"step": step, "tokens": (step + 1) * args.batch * args.seq, "loss": f"{loss.item():.4f}",
                     "aux": f"{aux.item():.4f}", "val_loss": f"{val:.4f}" if val != "" else "", "lr": f"{lr:.6f}",
                     "minutes": f"{elapsed / 60:.2f}"})
        step += 1
        if step % 10 == 0:
            print(f"step {step}/{args.steps} loss {loss.item():.3f} aux {aux.item():.3f} "
                  f"{'val ' + format(val, '.3f') + ' ' if val != '' else ''}lr {lr:.2e} {elapsed / 60:.1f} min", file=sys.stderr, flush=True)
        if step % args.ckpt_every == 0 or step == args.steps:
            save_ckpt()
        if args.stop_after and step - run_start >= args.stop_after:
            save_ckpt()
            print(f"stopped after {args.stop_after} steps; run again to resume", file=sys.stderr)
            return 0

    # ---- write the Hugging Face layout ----------------------------------------------------------
    os.makedirs(args.model_dir, exist_ok=True)
    state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    nano_format.write_safetensors(os.path.join(args.model_dir, "model.safetensors"), state, {"format": "pt"})
    nano_format.write_json(os.path.join(args.model_dir, "config.json"), cfg)
    nano_format.write_json(os.path.join(args.model_dir, "generation_config.json"), nano_format.generation_config(cfg))
    nano_format.write_json(os.path.join(args.work, "train.json"), {
        "args": vars(args), "parameters": counts, "steps": step,
        "tokens_seen": step * args.batch * args.seq, "train_minutes": elapsed / 60,
        "torch": torch.__version__, "threads": args.threads})
    print(f"wrote {args.model_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
