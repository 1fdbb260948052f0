#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what `bash benchmarks/gpu.sh all` needs on the lent GPU machine
# and its image lacks, check that it travels (64 MiB with the working tree), and print the run.
#
#   bash benchmarks/gpu_prepare.sh          # in the checkout the device tool sends (the session's own)
#
# .gpu/ holds models/gpt2-tokenizer/ (the real GPT-2 tokenizer, 4.9 MB) and imdb/{test,train}.parquet
# (the real 25k/25k IMDB splits, 40.6 MB), copied from SHARED (default ../shared). No wheels: the
# image has torch, transformers, accelerate, pandas and pyarrow, and scoring and fine-tuning on
# local parquet files import neither datasets nor gradio (tests/test_gpu_script.py checks this);
# datasets with its dependencies would be about 90 MB, over the limit. The GPT-2-shaped 124M
# models are built on the machine (benchmarks/gpu_build.py; 500 MB, too big to carry).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-}
for s in ../shared ../../shared; do [ -z "$SHARED" ] && [ -d "$s/data/imdb" ] && SHARED=$s; done
[ -n "$SHARED" ] || { echo "gpu_prepare.sh: no shared/ folder found; set SHARED=PATH" >&2; exit 2; }
A=.gpu
LIMIT_BYTES=$((64 * 1024 * 1024))

git check-ignore -q "$A/" || { echo "gpu_prepare.sh: $A/ is not git-ignored; add /.gpu/ to .gitignore" >&2; exit 2; }
rm -rf "$A"
mkdir -p "$A/models" "$A/imdb"
cp -r "$SHARED/models/gpt2-tokenizer" "$A/models/"
cp "$SHARED/data/imdb/test.parquet" "$SHARED/data/imdb/train.parquet" "$A/imdb/"
chmod -R u+w "$A"  # shared/ is read-only; a later run of this script removes the copy

carried=$(du -sb "$A" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
total=$((carried + tree))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "carry .gpu: $(mib "$carried"); working tree: $(mib "$tree"); together $(mib "$total") of 64 MiB"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
    echo "gpu_prepare.sh: over the 64 MiB the device tool carries; remove untracked files or carry less" >&2
    exit 1
fi
sed -i "s|^Carried: .*|Carried: .gpu/ $(mib "$carried") + working tree $(mib "$tree") = $(mib "$total") of 64 MiB (measured by benchmarks/gpu_prepare.sh, $(date +%F)).|" docs/gpu_runbook.md
sed -n '/^## The call/,/^## After/p' docs/gpu_runbook.md | sed '$d'
