#!/usr/bin/env bash
# Shared-prefix scoring side by side with lm-evaluation-harness (issue 23): RTE validation with
# lm-eval's prompt at 0, 2 and 5 shots, SmolLM2-135M fp32 on CPU, the same demonstrations on both
# sides. For each k, back to back: Tenser (prefix cache on; it draws the demonstrations), lm-eval
# given those demonstrations by idx (benchmarks/lm_eval_rte.py, first_n over a split holding only
# them), Tenser with --no-prefix-cache. Each process is timed by /usr/bin/time (wall, user, sys).
# Then benchmarks/prefix_vs_lm_eval_table.py prints the table (time, tokens, ratios, agreement).
#
#   bash benchmarks/prefix_vs_lm_eval.sh [OUT]     (env: N=100 SHOTS="0 2 5" MODEL=/work/smollm2
#                                                   LMEVAL_PY=/work/lmeval-venv/bin/python PY=python)
#
# N: a seeded subset of RTE validation (pandas sample, random_state 0, kept in idx order) to keep
# CPU time sane; both tools read the same parquet files, with `id` = RTE's `idx` so that Tenser's
# demonstration ids are lm-eval's --fewshot_idx.
set -euo pipefail
OUT="${1:-/tmp/prefix_vs_lm_eval}"
N="${N:-100}"; SHOTS="${SHOTS:-0 2 5}"; MODEL="${MODEL:-/work/smollm2}"
LMEVAL_PY="${LMEVAL_PY:-/work/lmeval-venv/bin/python}"; PY="${PY:-python}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RTE="${RTE:-$ROOT/../shared/data/rte}"; [ -d "$RTE" ] || RTE=/work/shared/data/rte
# One torch thread on both sides (THREADS): on a shared, busy 2-core machine two threads spin-wait on
# each other and one run's time swings 30x (measured: 1.2 s and 33 s for the same 6 examples).
export OMP_NUM_THREADS="${THREADS:-1}" MKL_NUM_THREADS="${THREADS:-1}"
export PYTHONPATH="$ROOT" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/data"
"$PY" - "$RTE" "$OUT/data" "$N" <<'PYEOF'
import sys
import pandas as pd
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
train = pd.read_parquet(f"{src}/train.parquet")
val = pd.read_parquet(f"{src}/validation.parquet")
val = val.sample(n=min(n, len(val)), random_state=0).sort_values("idx")
for name, df in (("train", train), ("validation", val)):
    df.assign(id=df["idx"].astype(str)).reset_index(drop=True).to_parquet(f"{dst}/{name}.parquet")
print(f"RTE validation subset: {len(val)} of 277 rows; train {len(train)} rows", file=sys.stderr)
PYEOF

tenser() {  # tenser run, timed: $1 = run folder name, the rest = extra flags
  local name="$1"; shift
  /usr/bin/time -f '%e %U %S' -o "$OUT/time_$name.txt" "$PY" -m tenser run --model "$MODEL" \
    --include "$ROOT/benchmarks/rte_lm_eval.toml" --task rte_lm_eval --data "$OUT/data/validation.parquet" \
    --train-data "$OUT/data/train.parquet" --device cpu --dtype float32 --batch-size auto --no-cache \
    --overwrite --out "$OUT/$name" "$@" 2> "$OUT/log_$name.txt"
}

for k in $SHOTS; do
  tenser "tenser_$k" -T shots="$k"
  idx=$("$PY" -c "import json,glob,sys; r=json.load(open(glob.glob(sys.argv[1]+'/*/results.json')[0])); \
print(','.join(d['id'] for d in (r.get('fewshot') or {}).get('demonstrations', [])))" "$OUT/tenser_$k")
  /usr/bin/time -f '%e %U %S' -o "$OUT/time_lmeval_$k.txt" "$LMEVAL_PY" "$ROOT/benchmarks/lm_eval_rte.py" \
    --model "$MODEL" --out "$OUT/lmeval_$k" --data "$OUT/data" --num_fewshot "$k" ${idx:+--fewshot_idx "$idx"} \
    > "$OUT/log_lmeval_$k.txt" 2>&1
  tenser "tenser_noprefix_$k" -T shots="$k" --no-prefix-cache
  echo "k=$k done (demonstrations: ${idx:-none})" >&2
done
"$PY" "$ROOT/benchmarks/prefix_vs_lm_eval_table.py" "$OUT" $SHOTS | tee "$OUT/table.md"
