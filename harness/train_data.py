"""Fine-tuning's data and settings, everything but the training loop (which lives in
`harness.training`): `FinetuneConfig` (the knobs, checked before any work), the seeded,
stratified train/validation carve, encoding examples as Trainer features with the same
`Encoder` as evaluation (a classification head's label id, or prompt + gold label word
with the loss on the word only), and the right-padding `Collator`. The benchmark reuses
the encoding and collation to time fine-tuning steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from harness.data import Example, sample_stratified
from harness.encoding import Encoder, label_token_ids
from harness.errors import UserError
from tasks import Task

CHECKPOINTS = "checkpoints"
TRAINING_LOG = "training_log.json"


@dataclass(frozen=True)
class FinetuneConfig:
    """Knobs of one fine-tune; defaults are the seed project's."""

    lr: float = 2e-5
    batch_size: int = 8  # per device
    epochs: int = 3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # share of steps with linear warm-up, then linear decay to 0
    max_length: int = 512  # tokens per review (cut inside the review, as in evaluation)
    val_fraction: float = 0.1  # carved from the training split, stratified by label
    patience: int = 2  # epochs without a better validation loss before stopping
    seed: int = 0  # training: head init, data order, dropout (and the carve unless data_seed)
    limit: int | None = None  # train on a stratified sample of this many examples
    # Seeds of one recipe (compare --seeds) share the sample and the validation carve: None = `seed`.
    data_seed: int | None = None
    objective: Literal["classifier", "prompt"] = "classifier"
    device: str = "auto"
    logging_steps: int = 10
    # None trains every weight (the seed's way). k trains only the top k transformer blocks, the
    # final norm and the classification head: the body below runs without gradients, so a step
    # costs little more than a forward pass, which is what makes fine-tuning fit a CPU.
    train_layers: int | None = None
    # LoRA (harness.lora): None trains the weights themselves. r > 0 trains rank-r adapters on the
    # attention projections instead (`lora_targets`, default per architecture), merged into the saved weights.
    lora_r: int | None = None
    lora_alpha: int = 16  # the adapters' update is scaled by alpha / r
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ()  # () = the architecture's attention projections

    @property
    def carve_seed(self) -> int:
        """The seed of the --limit sample and the validation carve."""
        return self.seed if self.data_seed is None else self.data_seed

    def check(self) -> None:
        """Raise UserError for values no training run can use."""
        checks = [  # (fine, the parameter, why its value is not)
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (self.lr > 0, "lr", "the learning rate must be positive, e.g. 2e-5"),
            (self.batch_size >= 1, "batch_size", "must be at least 1"),
            (0 < self.val_fraction < 1, "val_fraction", "must be between 0 and 1, e.g. 0.1"),
            (self.weight_decay >= 0, "weight_decay", "must not be negative"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)"),
            (self.patience >= 1, "patience", "must be at least 1"),
            (self.max_length >= 16, "max_length", "must be at least 16"),
            (self.objective in ("classifier", "prompt"), "objective", "classifier or prompt"),
            (self.train_layers is None or self.train_layers >= 0, "train_layers", "give 0 (the head only) or more"),
            (self.lora_r is None or self.lora_r >= 1, "lora_r", "give a rank of 1 or more, e.g. 8"),
            (0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)"),
        ]
        for ok, param, why in checks:
            if not ok:
                value = getattr(self, param)
                shown = repr(value) if isinstance(value, str) else value
                raise UserError(f"{{{param}}} {shown}: {why}", param=param)
        if self.lora_r is not None and self.train_layers is not None:
            raise UserError(f"{{lora_r}} {self.lora_r} with {{train_layers}} {self.train_layers}: both choose what "
                            f"trains; pass one", param="lora_r", mentions=("train_layers",))


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
