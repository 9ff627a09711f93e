#!/usr/bin/env bash
# Reproduces the bundled model clipsearch/models/bundled/shapes-mini exactly as it was trained
# (2-core CPU, no GPU). Data is rendered from fixed seeds, so every run sees the same pictures.
# Usage: bench/train_bundled.sh [WORKDIR]   (default /tmp/clipsearch-bundled; needs ~1 GB disk)
set -euo pipefail
WORK=${1:-/tmp/clipsearch-bundled}
export HF_HUB_OFFLINE=1
mkdir -p "$WORK"

clipsearch demo-data "$WORK/train" --n 100000 --seed 1 --split train --workers 2
clipsearch demo-data "$WORK/held" --n 2000 --seed 2 --split heldout
clipsearch demo-data "$WORK/test" --n 5000 --seed 3 --split heldout

clipsearch train "$WORK/train" --out "$WORK/shapes-mini" --arch cs-shapes-rn16 --eval "$WORK/held" \
    --epochs 6 --batch-size 128 --lr 0.001 --seed 0 --workers 2 --half --name shapes-mini

# The model card's numbers: the finished checkpoint scored on 5,000 unseen held-out scenes.
python bench/eval_model.py "$WORK/shapes-mini" "$WORK/test"
