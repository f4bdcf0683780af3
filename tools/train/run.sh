#!/bin/sh
# The exact command lines that made models/behemoth-nano (see README.md here). Each step is resumable or
# cheap to repeat; train.py resumes from tools/train/work/ckpt.pt when run again with the same arguments.
set -eu
cd "$(dirname "$0")"
PY=/usr/bin/python3     # Debian's Python, where python3-torch and python3-sentencepiece are installed
$PY prepare.py --vocab 6144 --seed 1234
$PY train.py --steps 1500 --batch 16 --seq 256 --lr 3e-3 --warmup 100 --weight-decay 0.1 --seed 1234 --threads 2
$PY evaluate.py
