#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md, in steps that should each fit a 10-minute command:
#
#   bash benchmarks/gpu.sh scoring    # 25k test reviews, both tasks: Tenser (mixed) vs seed style vs one at a time
#   bash benchmarks/gpu.sh variants   # Tenser alone in bfloat16, float32, and mixed + torch.compile
#   bash benchmarks/gpu.sh finetune   # one-epoch throughput both ways, then the 3-epoch fine-tune on 25k train
#
# ASSETS (default .gpu, git-ignored, small enough to carry to a GPU machine) holds copies of
# ../shared's tools/build_gpt2_small.py, models/gpt2-tokenizer/ and data/imdb/*.parquet (as
# imdb/); the GPT-2-shaped models are built there on first use (500 MB: too big to carry).
# Results go to OUT (default gpu-out). LIMIT, DEVICE, EPOCHS and TRAIN_LIMIT shrink the job for
# a dry run on a CPU, e.g.
#   ASSETS=a OUT=o LIMIT=24 DEVICE=cpu EPOCHS=1 TRAIN_LIMIT=64 bash benchmarks/gpu.sh finetune
set -uo pipefail
A=${ASSETS:-.gpu}
O=${OUT:-gpu-out}
N=${LIMIT:-25000}
DEV=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-3}
TRAIN_LIMIT=${TRAIN_LIMIT:-}
FT=${FT_DIR:-/tmp/tenser-ft}  # the checkpoint stays out of OUT (too big to bring back)
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true
mkdir -p "$O"
PY=${PYTHON:-python3}  # the GPU image has python3 only
tenser() { "$PY" -m tenser "$@"; }
models=(--model "$A/gpt2-small" --classifier "$A/gpt2-small-clf" --data "$A/imdb/test.parquet" --limit "$N"
        --device "$DEV")
status=0

if [ ! -d "$A/gpt2-small" ]; then
    "$PY" "$A/tools/build_gpt2_small.py" "$A/gpt2-small" || exit 1
fi
if [ ! -d "$A/gpt2-small-clf" ]; then  # the same body with a (random) two-label head, for the classifier task
    "$PY" - "$A" <<'PY' || exit 1
import sys
from transformers import AutoTokenizer, GPT2ForSequenceClassification
a = sys.argv[1]
GPT2ForSequenceClassification.from_pretrained(
    f"{a}/gpt2-small", num_labels=2, id2label={0: "negative", 1: "positive"},
    label2id={"negative": 0, "positive": 1}, pad_token_id=50256).save_pretrained(f"{a}/gpt2-small-clf")
AutoTokenizer.from_pretrained(f"{a}/gpt2-small").save_pretrained(f"{a}/gpt2-small-clf")
PY
fi

case "${1:-}" in
scoring)
    (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) > "$O/hardware.txt" 2>&1
    tenser bench "${models[@]}" --dtype mixed --out "$O/bench-mixed" || status=1
    ;;
variants)
    tenser bench "${models[@]}" --ways tenser --dtype bfloat16 --out "$O/bench-bf16" || status=1
    tenser bench "${models[@]}" --ways tenser --dtype float32 --out "$O/bench-fp32" || status=1
    tenser bench "${models[@]}" --ways tenser --dtype mixed --compile --out "$O/bench-compile" || status=1
    ;;
finetune)
    tenser bench --model "$A/gpt2-small" --data "$A/imdb/test.parquet" --limit 16 --ways tenser \
        --train-data "$A/imdb/train.parquet" --finetune-examples 2000 --device "$DEV" --out "$O/bench-train" || status=1
    start=$(date +%s)
    tenser finetune --model "$A/gpt2-small" --output "$FT" --data "$A/imdb/train.parquet" --device "$DEV" \
        --epochs "$EPOCHS" ${TRAIN_LIMIT:+--limit "$TRAIN_LIMIT"} --overwrite || status=1
    echo "finetune wall seconds: $(( $(date +%s) - start ))" | tee "$O/finetune-wall.txt"
    cp "$FT/training_log.json" "$O/training_log.json" 2>/dev/null || true
    ;;
*)
    echo "usage: bash benchmarks/gpu.sh scoring|variants|finetune" >&2
    exit 2
    ;;
esac
exit $status
