"""The Gradio demo: a pretrained causal LM (zero-shot prompt) and a fine-tuned model side by
side, on one text or a batch, for any registered task family. It scores through
`harness.scoring.inference` (`make_encoder` + `predict`, with the task's calibration and few-shot
demonstrations), the same path as `tenser run`, so the demo and evaluation give the same
probabilities. Gradio is imported only in `demo.app`; the other modules are plain logic.

Start it with `tenser demo --pretrained M --finetuned DIR` (see `demo.app.serve`).
"""

from __future__ import annotations

import os

# Gradio sends usage telemetry unless told not to; the demo never does.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
