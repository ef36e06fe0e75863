#!/usr/bin/env bash
# Every GPU figure of the performance issue in one go (run from the repository root on a CUDA machine):
#   train step:  PAD later-domain vs full fine-tune, ViT-B/16, batch 64 (goal ratio >= 0.70), eager and compiled
#   data path:   PIL vs cached vs tensor-fed training, ViT-B/16, batch 64 (goal cached >= 0.9x tensor-fed)
#   evaluation:  Market-1501 and MSMT17 size on the GPU (goal Market <= 50 ms), with the previous sort path
#   order-1:     img/s per stage, eval s per set, peak memory and projected order-1 time per method (order1_cost.py)
# Usage: bash benchmarks/perf/gpu_check.sh [python]   (default python: .venv/bin/python, else python3)
set -euo pipefail
PY="${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script prints GPU figures only')"
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CPUs', len(__import__('os').sched_getaffinity(0)))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

echo "== train step (benchmarks/perf/train_speed.py)"
"$PY" benchmarks/perf/train_speed.py --device cuda --model clip-vit-b16 --weights random --batch 64 --steps 20 --warmup 3
"$PY" benchmarks/perf/train_speed.py --device cuda --model clip-vit-b16 --weights random --batch 64 --steps 20 --warmup 3 --compile

echo "== data path (benchmarks/perf/data_path.py)"
"$PY" benchmarks/perf/data_path.py --device cuda --model clip-vit-b16 --batch 64 --images 4096 --steps 30

echo "== evaluation (benchmarks/perf/eval_speed.py)"
"$PY" benchmarks/perf/eval_speed.py --device cuda --sizes market,msmt17

echo "== order-1 cost (benchmarks/perf/order1_cost.py)"
# PAD_BENCH_ORDER1_ROOT: a folder with the real datasets; without it the paper-scale rehearsal tree is
# written (once; a finished one is reused) to .cache/rehearsal-paper with every CPU
ROOT="${PAD_BENCH_ORDER1_ROOT:-.cache/rehearsal-paper}"
[ -n "${PAD_BENCH_ORDER1_ROOT:-}" ] || "$PY" -m pad_bench.cli datasets synth --scale paper --out "$ROOT"
"$PY" benchmarks/perf/order1_cost.py --device cuda --data-root "$ROOT" --iters "${ORDER1_ITERS:-10}" --out results/order1-cost
