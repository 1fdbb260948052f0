"""A fine-tune's settings: `FinetuneConfig` (the knobs, with the seed project's defaults, checked
before any work) and the names of what a fine-tune writes in its output folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.errors import UserError

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
    # LoRA (harness.training.lora): None trains the weights themselves. r > 0 trains rank-r adapters on the
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
