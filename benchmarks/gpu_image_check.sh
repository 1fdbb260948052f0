#!/usr/bin/env bash
# Dry-run benchmarks/gpu.sh on the GPU image's library set, on the CPU, before a device call:
# transformers 5.17 (the image's; the project's venv has a newer one), torch, accelerate, peft,
# scikit-learn, scipy, seaborn, jinja2, pandas, pyarrow, and none of datasets, gradio, evaluate or
# gguf, which the image lacks. It runs tests/test_gpu_script.py (gpu.sh all at tiny sizes) there.
#
#   bash benchmarks/gpu_image_check.sh        # venv in VENV (default /tmp/tenser-gpu-image), ~3 min
#
# torch is the CPU build 2.13.0 (the image has 2.11 with CUDA; PyPI's 2.11 is a multi-GB CUDA
# build) and Python is this machine's 3.11 (the image has 3.12); the sources are also compiled by
# PY312 (default python3.12; here /root/.pyenv/versions/3.12.1/bin/python3.12) when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/tenser-gpu-image}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0 "transformers==5.17.*" accelerate peft scikit-learn scipy seaborn \
    jinja2 pandas pyarrow pyyaml tqdm matplotlib pytest
for absent in datasets gradio evaluate gguf; do
    if "$VENV/bin/python" -c "import $absent" 2>/dev/null; then
        echo "gpu_image_check.sh: $absent is installed in $VENV, but the GPU image lacks it; use a new VENV" >&2
        exit 2
    fi
done
"$VENV/bin/python" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
PY312=${PY312:-python3.12}
if "$PY312" --version >/dev/null 2>&1; then
    "$PY312" -W error -c "import compileall, sys; sys.exit(not all(compileall.compile_dir(d, quiet=1, legacy=False, force=True) for d in ('harness', 'tasks', 'reports', 'tenser', 'benchmarks')))" \
        && echo "sources compile under $("$PY312" --version)"
    find harness tasks reports tenser benchmarks -name "*.cpython-312.pyc" -delete
else
    echo "no Python 3.12 ($PY312); set PY312=PATH to compile the sources under the image's Python" >&2
fi
HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_gpu_script.py
