"""One fine-tuning recipe run with several training seeds (`tenser compare --seeds`), and the
validation check that says, before any test number, when fine-tuning made the model worse.

Seeds of one recipe differ only in what the training seed draws: the classification head's
initialisation, the data order and dropout (`FinetuneConfig.seed`). The `--limit` sample and the
validation carve use the fixed data seed (`FinetuneConfig.data_seed`), so every seed trains and
validates on the same examples. The validation check scores the pretrained model on that carve,
as the fine-tune's own validation scores it, and compares it with each seed's validation accuracy
at the epoch fine-tuning kept (the best validation loss, `training_log.json`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.training.config import TRAINING_LOG, FinetuneConfig
from tasks import Task

VALIDATION = "validation.json"
HELPS = "what usually helps: more training data (--train-limit), more epochs, another --objective or --lr"


def helps(seeds: int) -> str:
    """What to try next: with one seed, more seeds tell a bad draw from a bad recipe; with several, a larger
    validation carve makes each seed's validation accuracy less noisy."""
    if seeds <= 1:
        return f"{HELPS}, more seeds (--seeds 0,1,2) to tell an unlucky seed from a bad recipe"
    return f"{HELPS}, a larger validation carve (--val-fraction) for a less noisy check"


def check_seeds(seeds: Sequence[int] | None, *, finetuned: str | None) -> tuple[int, ...] | None:
    """The training seeds as given (None: one seed, today's job); refused with --finetuned or when repeated."""
    if seeds is None:
        return None
    if finetuned is not None:
        raise UserError("{seeds} with {finetuned}: seeds choose how compare fine-tunes; drop {finetuned} to "
                        "fine-tune one model per seed, or drop {seeds} to compare the given checkpoint",
                        param="seeds", mentions=("finetuned",))
    values = tuple(seeds)
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values):
        raise UserError(f"{{seeds}} {','.join(map(str, values)) or '(empty)'}: give training seeds as "
                        f"non-negative whole numbers, e.g. 0,1,2", param="seeds")
    if len(set(values)) < len(values):
        raise UserError(f"{{seeds}} {','.join(map(str, values))}: a seed repeats; give each seed once", param="seeds")
    return values


def parse_seeds(text: str) -> tuple[int, ...]:
    """`--seeds 0,1,2` as a tuple of ints."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{{seeds}} {text!r}: give comma-separated whole numbers, e.g. 0,1,2", param="seeds") from None


def seed_configs(cfg: FinetuneConfig, seeds: tuple[int, ...] | None) -> list[FinetuneConfig]:
    """One config per training seed, all carving with the same data seed; one seed keeps `cfg` as it is."""
    if seeds is None:
        return [cfg]
    return [dataclasses.replace(cfg, seed=s, data_seed=cfg.carve_seed) for s in seeds]


def validation_check(model: str, zeroshot: Task, train_task: Task, cfg: FinetuneConfig, checkpoints: list[Path],
                     *, train_data: str | None, device: str, dtype: str, batch_size: int | str,
                     allow_pickle: bool) -> dict[str, Any]:
    """The pretrained model's accuracy on the fine-tune's validation carve, next to each checkpoint's."""
    from harness.backends.loading import load_model
    from harness.data.examples import load_examples
    from harness.scoring.prompting import accuracy
    from harness.training.data import split_train_val

    examples, _ = load_examples(train_task, data=train_data, split=train_task.train_split)
    _, val = split_train_val(examples, cfg)
    loaded = load_model(model, "causal_lm", device=device, dtype=dtype, allow_pickle=allow_pickle)
    before = accuracy(zeroshot, loaded, val, batch_size)
    after = [_kept_accuracy(folder) for folder in checkpoints]
    worse = [cfg_seed for cfg_seed, acc in after if acc is not None and acc <= before]
    record = {"n": len(val), "data_seed": cfg.carve_seed, "pretrained": before,
              "finetuned": [{"seed": s, "accuracy": a} for s, a in after], "not_better": worse,
              "method": "accuracy on the validation carve of the training data (the fine-tune's own, same data "
                        "seed); the fine-tuned model at the epoch fine-tuning kept (best validation loss)"}
    return {**record, "warning": validation_line(record)}


def _kept_accuracy(folder: Path) -> tuple[int, float | None]:
    log = json.loads((folder / TRAINING_LOG).read_text(encoding="utf-8"))
    kept = [e for e in log.get("epochs", []) if e.get("epoch") == log.get("best_epoch")]
    acc = kept[0].get("val_accuracy") if kept else None
    return int(log["hyperparameters"]["seed"]), None if acc is None else float(acc)


def validation_line(record: dict[str, Any]) -> str | None:
    """One line when some fine-tuned seed is not better than the pretrained model on validation, else None."""
    worse = record.get("not_better") or []
    if not worse:
        return None
    tuned = [f["accuracy"] for f in record["finetuned"] if f["accuracy"] is not None]
    shown = ", ".join(f"{a:.3f}" for a in tuned)
    who = "the fine-tuned model is" if len(tuned) == 1 else \
        f"{len(worse)} of {len(tuned)} seeds ({', '.join(map(str, worse))}) are"
    p, n = record["pretrained"], record["n"]
    se = 100 * math.sqrt(p * (1 - p) / n) if n else 0.0
    return (f"warning: {who} not better than the pretrained model on validation ({shown} vs "
            f"{p:.3f} on the same {n:,} validation examples; one accuracy on {n:,} examples has a standard error "
            f"of about {se:.1f} points, so a small gap here is weak evidence either way); {helps(len(tuned))}")


def write_validation(out: Path, record: dict[str, Any]) -> Path:
    """OUT/validation.json, which the report reads; its warning goes to stderr too."""
    from harness.store.runs import write_atomic

    path = out / VALIDATION
    write_atomic(path, json.dumps(record, indent=2) + "\n")
    if record.get("warning"):
        print(record["warning"], file=sys.stderr, flush=True)
    return path
