#!/usr/bin/env bash
# The GPU checks (README, "On a GPU machine"), as one script: CUDA correctness (issue 8) and memory at scale (issue 9).
#   FERRET="dotnet out/ferret-gpu/ferret.dll" tools/gpu/gpu-check.sh PART [WORK_DIR]
# PART: correctness | scale | paper (the 7B-class model) | all. Every step has its own time limit and the script goes on
# when one fails; each step prints one "== step" header and its output, then "-- step: exit N, S s".
# Needs: the GPU publish (README, "On a GPU machine") on a machine with CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH,
# python3 with torch and transformers for the anchors. Run from the repository root (for tools/reference).
set -uo pipefail
part=${1:-all}
work=${2:-/tmp/ferret-gpu-check}
ferret=${FERRET:-dotnet out/ferret-gpu/ferret.dll}
repo=$(pwd)
mkdir -p "$work" && cd "$work" || exit 2

# step NAME SECONDS COMMAND...: COMMAND runs under bash with f (ferret), anchor (the PyTorch anchor) and
# export_once (export a preset unless the folder holds one) defined, killed after SECONDS.
export ferret repo
helpers='f() { $ferret "$@"; }; anchor() { python3 "$repo/tools/reference/bench_train_hf.py" "$@"; }; export_once() { [ -f "$2/manifest.json" ] || f export --preset "$1" --out "$2" "${@:3}"; }'
step() {
  local name=$1 limit=$2; shift 2
  echo "== $name"
  local start=$SECONDS
  timeout "$limit" bash -c "$helpers; $*"
  echo "-- $name: exit $?, $((SECONDS - start)) s"
}

if [ "$part" = correctness ] || [ "$part" = all ]; then
  step machine 30 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, transformers; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"transformers\", transformers.__version__)"'
  step doctor-tf32 120 f doctor --device cuda --json
  step doctor-fp32 120 f doctor --device cuda --tf32 false
  step export-tiny 60 export_once tiny-llama tiny-llama
  step data 60 '[ -d synth ] || f data synth --out synth --train 400 --test 64'
  step simulate-cuda 150 f simulate --artifacts tiny-llama --data synth --algorithm ferret --clients 8 --fraction 0.5 --rounds 3 --device cuda --local-lr 0.05 --server-lr 3
  step simulate-cpu 150 f simulate --artifacts tiny-llama --data synth --algorithm ferret --clients 8 --fraction 0.5 --rounds 3 --device cpu --local-lr 0.05 --server-lr 3
  step train-adamw 120 f train --artifacts tiny-llama --data synth --steps 60 --optimizer adamw --lr 1e-3 --device cuda --out tuned --overwrite --eval-every 20
  step export-bench 60 export_once bench-llama bench-llama
  step bench-host 90 f bench train --artifacts bench-llama --device cuda --resident false --json
  step bench-resident 90 f bench train --artifacts bench-llama --device cuda --resident true --json
  step demo 240 f demo --devices cpu,cuda --rounds 2
fi

if [ "$part" = scale ] || [ "$part" = all ]; then
  step export-374m 180 export_once llama-374m llama-374m
  step bench-374m 120 f bench train --artifacts llama-374m --device cuda --batch 4 --seq 512 --steps 5 --warmup 2 --json
  step anchor-374m 120 anchor llama-374m --device cuda --batch 4 --seq 512 --steps 5
  step export-374m-recompute 180 export_once llama-374m llama-374m-recompute --recompute layers
  step bench-374m-recompute 120 f bench train --artifacts llama-374m-recompute --device cuda --batch 4 --seq 512 --steps 5 --warmup 2 --json
  step export-374m-bf16 180 export_once llama-374m llama-374m-bf16 --precision bf16-mixed
  step bench-374m-bf16 120 f bench train --artifacts llama-374m-bf16 --device cuda --batch 4 --seq 512 --steps 5 --warmup 2 --json
  step anchor-374m-bf16 120 anchor llama-374m --device cuda --batch 4 --seq 512 --steps 5 --precision bf16-autocast
  step export-1b 300 export_once tinyllama-1.1b tinyllama-1.1b
  step bench-1b 150 f bench train --artifacts tinyllama-1.1b --device cuda --batch 2 --seq 512 --steps 5 --warmup 2 --json
  step anchor-1b 150 anchor tinyllama-1.1b --device cuda --batch 2 --seq 512 --steps 5
  step round-1b 180 f bench train --artifacts tinyllama-1.1b --device cuda --round --batch 1 --seq 512 --warmup 1 --json
fi

if [ "$part" = paper ] || [ "$part" = all ]; then
  step df 10 df -h "$work"
  step export-7b 420 export_once llama2-7b llama2-7b --recompute layers
  step round-7b 300 f bench train --artifacts llama2-7b --device cuda --round --batch 1 --seq 512 --warmup 1 --json
  step anchor-7b 240 anchor llama2-7b --device cuda --batch 1 --seq 512 --steps 4
  step doctor-7b 300 f doctor --device cuda --artifacts llama2-7b --seq 32
fi
