#!/usr/bin/env bash
# Builds a separate virtualenv holding lm-evaluation-harness 0.4.x (a peer to benchmark against,
# not a Tenser dependency; issues 21 and 23). Usage: bash benchmarks/lm_eval_setup.sh [VENV]
# VENV defaults to $LMEVAL_VENV or /work/lmeval-venv. Re-running reuses an existing venv.
set -euo pipefail
VENV="${1:-${LMEVAL_VENV:-/work/lmeval-venv}}"
LM_EVAL_VERSION="${LM_EVAL_VERSION:-0.4.13}"
PYTHON="${PYTHON:-python3.11}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
# Same torch as Tenser's own venv, CPU build, so both sides run the same kernels.
# A local wheel (pip's find-links) is tried first; then PyTorch's CPU index.
"$VENV/bin/python" -m pip install "torch==2.13.0+cpu" \
  || "$VENV/bin/python" -m pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
# [hf] brings transformers and accelerate for the `hf` model; gguf lets build_smollm2.py run here too.
"$VENV/bin/python" -m pip install "lm-eval[hf]==${LM_EVAL_VERSION}" pyarrow gguf
"$VENV/bin/python" -c "import lm_eval, torch, transformers; print('lm-eval', lm_eval.__version__ if hasattr(lm_eval, '__version__') else '?', 'torch', torch.__version__, 'transformers', transformers.__version__)"
echo "lm-eval venv ready: $VENV"
