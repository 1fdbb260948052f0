#!/usr/bin/env bash
# Shared-prefix scoring side by side with lm-evaluation-harness (issue 23), at 0, 2 and 5 shots, fp32
# on CPU, the same demonstrations on both sides:
#   BENCH=rte (default): RTE validation with lm-eval's own prompt (benchmarks/rte_lm_eval.toml);
#   BENCH=imdb: IMDB test reviews with Tenser's imdb_zeroshot prompt at max_tokens 1024, from
#               benchmarks/prefix_imdb_data.py (it makes the cuts Tenser would, with the model's
#               tokenizer, so that neither tool cuts and both score the same strings).
# For each k, back to back: Tenser (prefix cache on; it draws the demonstrations), lm-eval given those
# demonstrations by idx (benchmarks/lm_eval_peer.py, first_n over a split holding only them), Tenser
# with --no-prefix-cache. Each process is timed by /usr/bin/time (wall, user, sys). Then
# benchmarks/prefix_vs_lm_eval_table.py prints the table (time, tokens, ratios, agreement).
#
#   bash benchmarks/prefix_vs_lm_eval.sh [OUT]     (env: BENCH=rte N=100 (imdb: 200) SHOTS="0 2 5"
#                                                   MODEL=/work/smollm2 THREADS=1 NOPREFIX_SHOTS="0 2 5"
#                                                   LMEVAL_PY=/work/lmeval-venv/bin/python PY=python)
#
# NOPREFIX_SHOTS: the shot counts that also run Tenser --no-prefix-cache (default: all of SHOTS).
# N: RTE: a seeded subset of RTE validation (pandas sample, random_state 0, kept in idx order) to keep
# CPU time sane; both tools read the same parquet files, with `id` = RTE's `idx` so that Tenser's
# demonstration ids are lm-eval's --fewshot_idx. IMDB: N test reviews, N/2 per label, seed 0.
set -euo pipefail
OUT="${1:-/tmp/prefix_vs_lm_eval}"
BENCH="${BENCH:-rte}"; SHOTS="${SHOTS:-0 2 5}"; MODEL="${MODEL:-/work/smollm2}"
if [ "$BENCH" = imdb ]; then N="${N:-200}"; else N="${N:-100}"; fi
LMEVAL_PY="${LMEVAL_PY:-/work/lmeval-venv/bin/python}"; PY="${PY:-python}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="$ROOT/../shared/data"; [ -d "$SHARED" ] || SHARED=/work/shared/data
# One torch thread on both sides (THREADS): on a shared, busy 2-core machine two threads spin-wait on
# each other and one run's time swings 30x (measured: 1.2 s and 33 s for the same 6 examples).
export OMP_NUM_THREADS="${THREADS:-1}" MKL_NUM_THREADS="${THREADS:-1}"
export PYTHONPATH="$ROOT" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT/data"
if [ "$BENCH" = imdb ]; then
  "$PY" "$ROOT/benchmarks/prefix_imdb_data.py" --imdb "$SHARED/imdb" --model "$MODEL" --out "$OUT/data" \
    --n "$N" --shots $SHOTS
  SCORED=test; TASK_FLAGS=(--task imdb_zeroshot)
else
  "$PY" - "${RTE:-$SHARED/rte}" "$OUT/data" "$N" <<'PYEOF'
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
  for k in $SHOTS; do mkdir -p "$OUT/data/k$k"; ln -sf ../train.parquet ../validation.parquet "$OUT/data/k$k/"; done
  SCORED=validation; TASK_FLAGS=(--include "$ROOT/benchmarks/rte_lm_eval.toml" --task rte_lm_eval)
fi

tenser() {  # tenser run, timed: $1 = run folder name, $2 = data folder, the rest = extra flags
  local name="$1" data="$2"; shift 2
  /usr/bin/time -f '%e %U %S' -o "$OUT/time_$name.txt" "$PY" -m tenser run --model "$MODEL" "${TASK_FLAGS[@]}" \
    --data "$data/$SCORED.parquet" --train-data "$data/train.parquet" --device cpu --dtype float32 \
    --batch-size auto --no-cache --overwrite --out "$OUT/$name" "$@" 2> "$OUT/log_$name.txt"
}

for k in $SHOTS; do
  tenser "tenser_$k" "$OUT/data/k$k" -T shots="$k"
  idx=$("$PY" -c "import json,glob,sys; r=json.load(open(glob.glob(sys.argv[1]+'/*/results.json')[0])); \
print(','.join(d['id'] for d in (r.get('fewshot') or {}).get('demonstrations', [])))" "$OUT/tenser_$k")
  /usr/bin/time -f '%e %U %S' -o "$OUT/time_lmeval_$k.txt" "$LMEVAL_PY" "$ROOT/benchmarks/lm_eval_peer.py" \
    --model "$MODEL" --out "$OUT/lmeval_$k" --task "$BENCH" --data "$OUT/data/k$k" --num_fewshot "$k" \
    ${idx:+--fewshot_idx "$idx"} > "$OUT/log_lmeval_$k.txt" 2>&1
  case " ${NOPREFIX_SHOTS:-$SHOTS} " in *" $k "*) tenser "tenser_noprefix_$k" "$OUT/data/k$k" -T shots="$k" --no-prefix-cache;; esac
  echo "k=$k done (demonstrations: ${idx:-none})" >&2
done
"$PY" "$ROOT/benchmarks/prefix_vs_lm_eval_table.py" "$OUT" $SHOTS | tee "$OUT/table.md"
