"""The Hugging Face backend: a transformers model on a torch device, as `harness.backends.base.Backend`.

`LoadedModel` is what `harness.backends.loading.load_model` returns (a Hub id, a folder or an `embedded:`
model). Everything torch-specific about scoring lives here: the device's batch plan
(`--batch-size auto`), halving on out-of-memory, `--dtype mixed`'s checked scorer
(`harness.backends.precision`), and the runtime description of device, hardware and library versions.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.backends import precision
from harness.backends.base import BatchPlan, BatchTooLarge, Encoded, fixed_plan
from harness.backends.scorers import MIN_PREFIX, Scorer, ZeroShotScorer, build_scorer, common_prefix
from harness.store.identity import weights_identity
from harness.version import VERSION
from tasks import Task

# Padded tokens per batch for --batch-size auto on a GPU; it halves on out-of-memory.
GPU_TOKENS = 262144


@dataclass
class LoadedModel:
    """A model ready to score, its tokenizer, and what results.json records about it."""

    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype  # of the weights
    info: dict[str, Any]
    compute: torch.dtype | None = None  # `--dtype mixed`: the fast body's dtype (near-ties re-checked in fp32)
    fast_body: Any = None  # `--dtype mixed`: a bf16 copy of the model body
    compiled: bool = False  # body wrapped in torch.compile
    prefix_cache: bool = True  # zero-shot inputs' shared prefix run once (off: --no-prefix-cache, the noise floor)

    @property
    def context_length(self) -> int:
        return int(self.info["context_length"])

    @property
    def precision(self) -> str:
        """float32, bfloat16, float16, or mixed."""
        return "mixed" if self.compute is not None else str(self.dtype).removeprefix("torch.")

    @property
    def identity(self) -> str | None:
        return weights_identity(self.info)

    @property
    def device_type(self) -> str:
        return self.device.type

    def scorer(self, task: Task, *, shift: np.ndarray | None = None, n_inputs: int = 0) -> HFScorer:
        return HFScorer(self, task, shift, n_inputs)

    def plan(self, batch_size: int | str) -> BatchPlan:
        return plan_batches(batch_size, self.device)

    def runtime(self, batch_size: int | str) -> dict[str, Any]:
        return runtime_info(self, batch_size)


class HFScorer:
    """The task kind's torch scorer, checked in float32 under `--dtype mixed`, as probabilities."""

    def __init__(self, loaded: LoadedModel, task: Task, shift: np.ndarray | None, n_inputs: int) -> None:
        exact = build_scorer(loaded.model, loaded.tokenizer, task)
        self.method, self.label_tokens = exact.method, exact.label_tokens
        self.inner: Scorer = exact
        self.checked: precision.CheckedScorer | None = None
        self.compute = loaded.compute
        self.scorers = [exact]
        if loaded.fast_body is not None and n_inputs > precision.SAMPLE:  # fewer: all are the sample: plain fp32
            fast = build_scorer(loaded.model, loaded.tokenizer, task, loaded.fast_body)
            self.inner = self.checked = precision.CheckedScorer(fast, exact, shift)
            self.scorers.append(fast)
        # Under torch.compile a cache object in the forward would cost graph breaks and recompiles.
        self.off = "--no-prefix-cache" if not loaded.prefix_cache else "--compile" if loaded.compiled else ""
        self.prefix: dict[str, Any] = {}

    def prepare(self, ordered: list[Encoded], status: Callable[[str], None]) -> None:
        # First: mixed precision's bf16 error is then measured on the cached path it will take.
        self.prefix = share_prefix(self.scorers, ordered, self.off)
        if self.checked is not None:
            status(f"measuring bf16 error on {precision.SAMPLE} inputs")
            self.checked.calibrate([ordered[i] for i in precision.spread_sample(list(range(len(ordered))))])
            status("")

    def probs(self, batch: list[Encoded]) -> np.ndarray:
        try:
            scores = self.inner.score(batch)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            raise BatchTooLarge from None
        return torch.softmax(scores.double(), dim=-1).cpu().numpy()

    def account(self, n: int) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if self.checked is not None:
            self.checked.record(stats, n)
            stats["compute_dtype"] = str(self.compute).removeprefix("torch.")
        return {**({"mixed_precision": stats} if stats else {}), **({"prefix_cache": self.prefix} if self.prefix else {})}


def share_prefix(scorers: list[Scorer], ordered: list[Encoded], off: str) -> dict[str, Any]:
    """Run the inputs' shared token prefix once in each zero-shot scorer where it pays; what results.json records."""
    zeroshot = [s for s in scorers if isinstance(s, ZeroShotScorer)]
    if not zeroshot or not ordered:
        return {}
    n = common_prefix([e.ids for e in ordered])
    why = off or (f"shared prefix under {MIN_PREFIX} tokens" if n < MIN_PREFIX else "")
    if not why and not all(s.share_prefix(ordered[0].ids[:n]) for s in zeroshot):
        why = "the model's attention layers cannot share a cached prefix (sliding window or recurrent state)"
    if why:
        for s in zeroshot:
            s.prefix = None
        return {"prefix_tokens": 0, "shared_tokens": n, "tokens_saved": 0, "off": why}
    return {"prefix_tokens": n, "shared_tokens": n, "tokens_saved": n * (len(ordered) - 1)}


def plan_batches(batch_size: int | str, device: torch.device) -> BatchPlan:
    """A fixed number of examples, or `auto`: a padded-token budget suited to the device.

    Auto starts large on GPUs and halves on out-of-memory, so it settles on the largest
    batch that fits.
    """
    if batch_size == "auto":
        # On a CPU a batch is no cheaper per token than one input, and padding is pure waste:
        # one review at a time measured 1.5x faster than a 4,096-token budget (BENCHMARKS.md).
        return BatchPlan(1024, GPU_TOKENS) if device.type == "cuda" else BatchPlan(1, None)
    return fixed_plan(batch_size)


def runtime_info(loaded: LoadedModel, batch_size: int | str) -> dict[str, Any]:
    """Device, dtype, hardware and library versions for results.json."""
    dev = loaded.device
    hardware = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or platform.machine()}"
    return {
        "device": str(dev), "dtype": loaded.precision, "batch_size": batch_size, "compiled": loaded.compiled,
        "hardware": f"{hardware}, {torch.get_num_threads()} threads" if dev.type == "cpu" else hardware,
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Library versions, for results.json and training_log.json."""
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "tenser": VERSION}
