"""The `fake:` backend: a deterministic model without weights, for tests and dry runs (like
inspect's `mockllm`). It meets `harness.backends.base.Backend` with numpy alone.

- `fake:uniform`: equal probabilities over the task's labels (ties go to the first label).
- `fake:seeded-N`: random label scores from seed N and the input's token ids, so an input gets
  the same scores whatever its batch, its order or the process.

Its tokenizer splits text into words, each with the whitespace before it (as BPE vocabularies
attach a word's leading space), and has the Hugging Face call shape the encoder uses: offsets,
`add_special_tokens`, `decode`. Token ids are stable hashes of the words. `--device` and `--dtype`
are accepted and ignored: nothing runs on a device.
"""

from __future__ import annotations

import hashlib
import platform
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.backends.base import BatchPlan, Encoded, fixed_plan
from harness.errors import UserError
from harness.version import VERSION
from tasks import Task

CONTEXT = 1024
SPECS = ("uniform", "seeded-N")
_WORD = re.compile(r"\s*\S+")


class WordTokenizer:
    """Words with their leading whitespace as tokens; ids are stable hashes (0 is padding)."""

    pad_token_id = 0
    chat_template = None
    name_or_path = "fake"

    def __init__(self) -> None:
        self.words: dict[int, str] = {0: ""}

    def _ids(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        spans = [m.span() for m in _WORD.finditer(text)]
        ids = []
        for a, b in spans:
            ids.append(zlib.crc32(text[a:b].encode("utf-8", "surrogatepass")) % (2**31 - 1) + 1)
            self.words[ids[-1]] = text[a:b]
        return ids, spans

    def __call__(self, texts: str | list[str], *, return_offsets_mapping: bool = False, **_: Any) -> dict[str, Any]:
        done = [self._ids(t) for t in ([texts] if isinstance(texts, str) else texts)]
        out: dict[str, Any] = {"input_ids": [ids for ids, _ in done]}
        if return_offsets_mapping:
            out["offset_mapping"] = [spans for _, spans in done]
        return {k: v[0] for k, v in out.items()} if isinstance(texts, str) else out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.words.get(i, " <?>") for i in ids)


@dataclass(frozen=True)
class FakeScorer:
    """Equal probabilities (seed None), or seeded random scores per input's token ids."""

    n_labels: int
    seed: int | None
    method: str
    label_tokens: list[list[int]] | None = None

    def prepare(self, ordered: list[Encoded], status: Callable[[str], None]) -> None:
        """Nothing to measure before the pass."""

    def probs(self, batch: list[Encoded]) -> np.ndarray:
        if self.seed is None:
            return np.full((len(batch), self.n_labels), 1.0 / self.n_labels)
        rows = []
        for e in batch:
            digest = hashlib.sha256(f"{self.seed}:{e.ids}".encode()).digest()
            logits = np.random.default_rng(int.from_bytes(digest[:8], "little")).normal(size=self.n_labels)
            rows.append(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum())
        return np.array(rows, dtype=np.float64)

    def account(self, n: int) -> dict[str, Any]:
        return {}


@dataclass
class FakeModel:
    """A `fake:` model: its name, its seed (None: uniform), and a word tokenizer."""

    name: str
    seed: int | None
    tokenizer: WordTokenizer = field(default_factory=WordTokenizer)
    context_length: int = CONTEXT
    precision: str = "float64"
    device_type: str = "cpu"
    compiled: bool = False

    @property
    def identity(self) -> str:
        return self.name  # the name fixes every score

    @property
    def info(self) -> dict[str, Any]:
        return {"name_or_path": self.name, "backend": "fake", "identity": self.identity, "revision": None,
                "content_hash": None, "architecture": "fake", "n_parameters": 0,
                "context_length": self.context_length, "training_log": None}

    def scorer(self, task: Task, *, shift: np.ndarray | None = None, n_inputs: int = 0) -> FakeScorer:
        how = ("equal probabilities over the labels" if self.seed is None
               else f"seeded random label scores (seed {self.seed}), stable per input")
        return FakeScorer(len(task.labels), self.seed, f"fake: {how} ({self.name})")

    def plan(self, batch_size: int | str) -> BatchPlan:
        return BatchPlan(64, None) if batch_size == "auto" else fixed_plan(batch_size)

    def runtime(self, batch_size: int | str) -> dict[str, Any]:
        return {"device": "cpu", "dtype": self.precision, "batch_size": batch_size, "compiled": False,
                "hardware": f"none (fake backend), {platform.machine()}",
                "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "tenser": VERSION}}


def load_fake(name: str, kind: Any = None, *, compile: bool = False, **_: Any) -> FakeModel:
    """`fake:uniform` or `fake:seeded-N` (any model kind; device, dtype and pickle settings are ignored)."""
    spec = name.removeprefix("fake:")
    seeded = re.fullmatch(r"seeded-(\d+)", spec)
    if spec != "uniform" and seeded is None:
        raise UserError(f"{{model}} {name}: unknown fake model; choose one of "
                        f"{', '.join('fake:' + s for s in SPECS)} (e.g. fake:seeded-7)", param="model")
    if compile:
        raise UserError(f"{{model}} {name}: --compile applies to Hugging Face models; the fake backend runs no model", param="model")
    return FakeModel(name, int(seeded.group(1)) if seeded else None)
