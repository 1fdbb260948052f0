"""Fine-tuning's data, everything but the settings (`harness.training.trainer.config`) and the training
loop (`harness.training.trainer.trainer`): the seeded, stratified train/validation carve, encoding examples as Trainer features with the same
`Encoder` as evaluation (a classification head's label id, or prompt + gold label word
with the loss on the word only), and the right-padding `Collator`. The benchmark reuses
the encoding and collation to time fine-tuning steps.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.data.examples import Example, sample_stratified
from harness.errors import UserError
from harness.scoring.encoding import Encoder, label_token_ids
from harness.training.config import FinetuneConfig
from tasks import Task


def split_train_val(examples: list[Example], cfg: FinetuneConfig) -> tuple[list[Example], list[Example]]:
    """Stratified, seeded train/validation carve; both parts must hold every label."""
    pool = sample_stratified(examples, cfg.limit, cfg.carve_seed)
    n_val = max(len(set(e.label for e in pool)), round(len(pool) * cfg.val_fraction))
    val = sample_stratified(pool, n_val, cfg.carve_seed + 1)
    val_ids = {e.id for e in val}
    train = [e for e in pool if e.id not in val_ids]
    labels = sorted({e.label for e in pool})
    if len(labels) < 2:
        raise UserError(f"the training data holds only label(s) {labels}; fine-tuning needs examples of every label")
    if len({e.label for e in train}) < 2 or len({e.label for e in val}) < 2:
        least = 4 * len(labels)
        what, fix = (f"{{limit}} {cfg.limit}", f"{{limit}} {least} or more") if cfg.limit else \
            ("the training data", f"at least {least} examples")
        raise UserError(f"{what}: too few training examples ({len(pool)}); after carving {len(val)} for validation "
                        f"the {len(train)} left do not hold every label; give {fix}", param="limit")
    return train, val


class EncodedSet(torch.utils.data.Dataset):
    """Encoded examples as Trainer features (`input_ids`, `labels`), and how many were cut to fit."""

    def __init__(self, features: list[dict[str, Any]], truncated: int = 0) -> None:
        self.features = features
        self.truncated = truncated

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


def encode_examples(task: Task, tokenizer: Any, examples: list[Example], cfg: FinetuneConfig) -> EncodedSet:
    """Classifier: ids -> label id. Prompt: prompt ids + label word ids, loss on the word only.
    A pair task's (text, pair) is encoded by the tokenizer's pair encoding, as in evaluation."""
    inputs, names = [e.inputs() for e in examples], [e.id for e in examples]
    if cfg.objective == "classifier":
        encoder = Encoder(task, tokenizer, cfg.max_length)
        encoded = encoder.encode_many(inputs, ids=names)
        return EncodedSet([{"input_ids": x.ids, "labels": e.label} for x, e in zip(encoded, examples)],
                          truncated=sum(x.truncated for x in encoded))
    words = label_token_ids(task, tokenizer)
    encoder = Encoder(task, tokenizer, cfg.max_length, reserve=max(len(w) for w in words))
    encoded = encoder.encode_many(inputs, ids=names)
    features = [{"input_ids": x.ids + words[e.label], "labels": [-100] * x.n_tokens + words[e.label]}
                for x, e in zip(encoded, examples)]
    return EncodedSet(features, truncated=sum(x.truncated for x in encoded))


class Collator:
    """Right-pads a batch to its longest input; padded label positions are ignored (-100)."""

    def __init__(self, pad_id: int, pad_to: int | None = None) -> None:
        self.pad_id = pad_id
        self.pad_to = pad_to  # fixed width (the benchmark's seed-style baseline); None = dynamic

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max([len(f["input_ids"]) for f in batch] + [self.pad_to or 0])
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        seq_labels = isinstance(batch[0]["labels"], list)
        labels = torch.full((len(batch), width), -100, dtype=torch.long) if seq_labels else torch.zeros(len(batch), dtype=torch.long)
        for row, f in enumerate(batch):
            n = len(f["input_ids"])
            ids[row, :n], mask[row, :n] = torch.tensor(f["input_ids"]), 1
            if seq_labels:
                labels[row, :n] = torch.tensor(f["labels"])
            else:
                labels[row] = f["labels"]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
