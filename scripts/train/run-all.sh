#!/usr/bin/env bash
# The whole demo-model pipeline (issue #15), from a fresh clone on Debian 12:
#
#   apt-get install python3-torch python3-numpy libopenblas0-serial   # torch 1.13; OpenBLAS: 10x faster matmuls
#   bash scripts/train/run-all.sh [BUDGET_MIN]          # default 45 minutes of training
#
# Steps (each script's header says more): prepare (corpus split, BPE tokenizer, token stream) -> train ->
# export BF16 (.train/bf16) -> FP8 with webmoe's converter (models/demo) -> logits check of torch against webmoe's
# CPU reference on both exports -> torch bits per byte, baselines, routing stats -> webmoe eval (BF16 webgpu,
# FP8 cpu, FP8 webgpu) -> loss curve. Results land in .train/results/; the model card quotes them.
# With STEP=after-train only the steps after training run (on .train/run/model.pt).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
BUDGET=${1:-45}
mkdir -p .train/results
if [ "${STEP:-all}" = all ]; then
  $PY scripts/train/prepare.py --out .train --vocab 2048 --max-length 256
  nice -n 10 $PY scripts/train/train.py --data .train --out .train/run --budget-min "$BUDGET"
fi
$PY scripts/train/export.py --run .train/run --data .train --out .train/bf16
rm -rf models/demo.new && npx tsx scripts/train/to-fp8.ts .train/bf16 models/demo.new
mkdir -p models/demo
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do mv models/demo.new/$f models/demo/$f; done
rm -rf models/demo.new
$PY scripts/train/check.py --model .train/bf16 --tokens 64 | tee .train/results/check-bf16.txt
$PY scripts/train/check.py --model models/demo --tokens 64 | tee .train/results/check-fp8.txt
$PY scripts/train/evaluate.py --run .train/run --data .train --eval-dir .train/eval --list models/demo/heldout.txt \
  --export .train/bf16 --export models/demo --routing models/demo --trace models/demo/routing-heldout.json | tee .train/results/torch.json
$PY scripts/train/plot.py --log .train/run/log.jsonl --out models/demo/loss.svg
cp .train/run/log.jsonl models/demo/train-log.jsonl
cp .train/run/run.json models/demo/train-run.json
node bin/webmoe.js eval --model .train/bf16 --text .train/eval --backend webgpu --json | tee .train/results/webmoe-bf16-webgpu.json
node bin/webmoe.js eval --model models/demo --text .train/eval --backend webgpu --json | tee .train/results/webmoe-fp8-webgpu.json
node bin/webmoe.js eval --model models/demo --text .train/eval --backend cpu --json | tee .train/results/webmoe-fp8-cpu.json
