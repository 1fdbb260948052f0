#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md in one command that stops cleanly before a deadline:
#
#   bash benchmarks/gpu.sh all        # every step below, in this priority order
#   bash benchmarks/gpu.sh scoring    # build, scoring (25k test reviews, both tasks, Tenser's GPU default),
#                                     #   baselines (all ways on a seeded BASE_LIMIT subset, agreement check)
#   bash benchmarks/gpu.sh variants   # dtype_bf16, dtype_fp32, dtype_tf32, dtype_mixed, compile
#   bash benchmarks/gpu.sh finetune   # train_throughput (one epoch both ways), finetune (EPOCHS, or as many as fit)
#   bash benchmarks/gpu.sh STEP...    # any steps, in the order given; `all` adds noise, fewshot, fewshot_no_prefix_cache
#
# Figures go to OUT (default gpu-out) as each step ends: summary.md, results.json, log.txt. A step
# starts only if it can finish before DEADLINE_S seconds (default 540) from the start; each runs
# under a time limit, so a kill leaves the figures of the steps before it.
#
# ASSETS (default .gpu, git-ignored; filled by benchmarks/gpu_prepare.sh, small enough to carry)
# holds models/gpt2-tokenizer/ and imdb/{test,train}.parquet; the GPT-2-shaped models are built
# where this runs (500 MB, too big to carry) into WORK (default /tmp/tenser-gpu).
# Sizes shrink for a dry run on a CPU (tests/test_gpu_script.py does this; MIN_SCALE=0 ignores the
# H200 time each step expects):
#   DEVICE=cpu LIMIT=24 BASE_LIMIT=8 TRAIN_EXAMPLES=8 TRAIN_LIMIT=40 GPT2_LAYERS=2 GPT2_WIDTH=32 \
#   GPT2_HEADS=2 GPT2_POSITIONS=512 MIN_SCALE=0 bash benchmarks/gpu.sh all
# Others: EPOCHS (3), NOISE_EXAMPLES, SHOTS_LIMIT, SKIP (steps not to run), MIN_SCALE (scales each step's expected H200
# seconds), PEAK_TFLOPS (790), PYTHON (python3: the GPU image has python3 only).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=true
export PYTHON=${PYTHON:-python3}
if [ $# -eq 0 ]; then
    sed -n '2,/^set /p' "$0" | sed '$d' >&2
    exit 2
fi
exec "$PYTHON" benchmarks/gpu_run.py "$@"
