"""Running a fine-tune: model set-up, the `Trainer`, early stopping, `training_log.json`.

`finetune` is what `tenser finetune` and `tenser compare` call. The data side (config,
train/validation carve, encoding, collation) lives in `harness.finetune`.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import distributed, runs
from harness.data import Example, load_examples
from harness.errors import UserError
from harness.finetune import CHECKPOINTS, TRAINING_LOG, Collator, FinetuneConfig, encode_examples, split_train_val
from harness.metrics import compute_metrics
from harness.models import (
    LoadedModel,
    check_source,
    context_length,
    from_pretrained,
    load_tokenizer,
    resolve_device,
    weights_kwargs,
)
from harness.runner import versions
from tasks import Task


def load_trainable(name: str, task: Task, cfg: FinetuneConfig, *, allow_pickle: bool = False) -> tuple[Any, Any]:
    """Tokenizer and model to train: a fresh classification head, or the causal LM itself."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    source = check_source(name, allow_pickle=allow_pickle)
    tokenizer = load_tokenizer(source, name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    weights = weights_kwargs(allow_pickle)
    if cfg.objective == "prompt":
        model = from_pretrained(AutoModelForCausalLM, source, name, dtype=torch.float32, **weights)
    else:
        labels = dict(enumerate(task.labels))
        try:
            model = from_pretrained(
                AutoModelForSequenceClassification, source, name, dtype=torch.float32, num_labels=len(labels),
                id2label=labels, label2id={v: k for k, v in labels.items()}, pad_token_id=tokenizer.pad_token_id,
                **weights,
            )
        except UserError as exc:
            raise UserError(f"{exc}; this architecture cannot take a classification head, "
                            f"try --objective prompt") from None
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.max_length > (limit := context_length(model.config)):
        raise UserError(f"--max-length {cfg.max_length}: {name} takes at most {limit} tokens; "
                        f"pass --max-length {limit} or less")
    return tokenizer, model


def _validation_metrics(task: Task, tokenizer: Any, net: Any, val: list[Example], batch_size: int) -> Any:
    """Validation accuracy, F1 and label loss scored exactly as `tenser run` scores the task: the
    task's own encoder and `inference.predict` (multi-token label words summed). The Trainer's
    `eval_loss` (the training objective on the validation split) still drives early stopping."""
    from harness.inference import make_encoder, predict

    gold = np.array([e.label for e in val])

    def metrics(_: Any) -> dict[str, float]:
        loaded = LoadedModel(net, tokenizer, next(net.parameters()).device, torch.float32,
                             {"context_length": context_length(net.config)})
        was_training = net.training
        net.eval()
        try:
            encoded = make_encoder(task, loaded).encode_many([e.text for e in val])
            probs = predict(task, loaded, encoded, batch_size=batch_size, progress=False).probs
        finally:
            net.train(was_training)
        m = compute_metrics(gold, probs, task.labels)
        return {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"], "label_loss": m["loss"]}

    return metrics


def _no_logits(logits: Any, labels: Any) -> torch.Tensor:
    """The Trainer keeps nothing of the evaluation logits: validation metrics score the model afresh."""
    first = logits[0] if isinstance(logits, tuple) else logits
    return first.new_zeros(first.shape[0])


def _training_args(output: Path, cfg: FinetuneConfig, device: torch.device) -> Any:
    from transformers import TrainingArguments

    cuda = device.type == "cuda"
    return TrainingArguments(
        output_dir=str(output / CHECKPOINTS), learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size * 2,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear",
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False, save_total_limit=cfg.patience + 1,
        train_sampling_strategy="group_by_length", bf16=cuda and torch.cuda.is_bf16_supported(),
        optim="adamw_torch_fused" if cuda else "adamw_torch", use_cpu=device.type == "cpu",
        logging_steps=cfg.logging_steps, logging_first_step=True, report_to="none", seed=cfg.seed,
        save_only_model=False, disable_tqdm=False,
    )


def _epoch_printer() -> Any:
    from transformers import TrainerCallback

    class EpochSummary(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            m = metrics or {}
            print(f"epoch {state.epoch:.0f}: val_loss={m.get('eval_loss', float('nan')):.4f} "
                  f"val_accuracy={m.get('eval_accuracy', float('nan')):.4f} "
                  f"val_f1_macro={m.get('eval_f1_macro', float('nan')):.4f}", file=sys.stderr, flush=True)

    return EpochSummary()


def _prepare_output(output: Path, *, overwrite: bool, resume: bool) -> None:
    if resume:
        if not any((output / CHECKPOINTS).glob("checkpoint-*")):
            raise UserError(f"--resume: no Trainer checkpoint in {output / CHECKPOINTS}; start without --resume")
        return
    if output.is_dir() and any(output.iterdir()) and overwrite:
        shutil.rmtree(output)
    runs.prepare_run_dir(output, overwrite=False)


def finetune(
    model: str, task: Task, output: str | Path, cfg: FinetuneConfig, *, train_data: str | None = None,
    overwrite: bool = False, resume: bool = False, callbacks: tuple[Any, ...] = (), allow_pickle: bool = False,
) -> Path:
    """Fine-tune `model` on the task's training split and save a checkpoint folder at `output`.

    Under `torchrun`/`accelerate launch` the Trainer trains data-parallel across the processes;
    rank 0 alone prepares `output` and writes the model, tokenizer and training_log.json.
    """
    from transformers import EarlyStoppingCallback, Trainer

    cfg.check()
    want = "classifier" if cfg.objective == "classifier" else "zeroshot"
    if task.kind != want:
        raise UserError(f"--objective {cfg.objective} needs a {want} task, got {task.name!r} ({task.kind}); "
                        f"use --task imdb_{want}")
    output = Path(output)
    device = resolve_device(cfg.device)
    distributed.init()  # before the Trainer, which then shares the process group
    distributed.on_main(lambda: _prepare_output(output, overwrite=overwrite, resume=resume))
    examples, info = load_examples(task, data=train_data, split=task.train_split)
    train, val = split_train_val(examples, cfg)
    tokenizer, net = load_trainable(model, task, cfg, allow_pickle=allow_pickle)
    trainer = Trainer(
        model=net, args=_training_args(output, cfg, device), data_collator=Collator(int(tokenizer.pad_token_id)),
        train_dataset=encode_examples(task, tokenizer, train, cfg),
        eval_dataset=encode_examples(task, tokenizer, val, cfg), processing_class=tokenizer,
        compute_metrics=_validation_metrics(task, tokenizer, net, val, cfg.batch_size * 2),
        preprocess_logits_for_metrics=_no_logits,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), _epoch_printer(), *callbacks],
    )
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=True if resume else None)
    wall = time.perf_counter() - t0
    _save(trainer, tokenizer, output, training_log(trainer, cfg, model, task, info.to_dict(), len(train), len(val),
                                                    wall, device))
    return output


def _save(trainer: Any, tokenizer: Any, output: Path, log: dict[str, Any]) -> None:
    """The best model, its tokenizer and training_log.json; checkpoints removed. Every rank calls it,
    rank 0 writes."""
    trainer.save_model(str(output))  # the Trainer writes on the main process only
    distributed.barrier()  # every rank has loaded the best checkpoint before rank 0 removes them
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(str(output))
    (output / "training_args.bin").unlink(missing_ok=True)  # a pickle; training_log.json holds the settings
    runs.write_atomic(output / TRAINING_LOG, json.dumps(log, indent=2) + "\n")
    shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    print(f"best epoch {log['best_epoch']} (val_loss {log['best_val_loss']:.4f}); saved to {output}", file=sys.stderr)


def training_log(trainer: Any, cfg: FinetuneConfig, model: str, task: Task, data: dict[str, Any], n_train: int,
                 n_val: int, wall: float, device: torch.device) -> dict[str, Any]:
    """The contents of training_log.json, from the Trainer's log history."""
    history = trainer.state.log_history
    epochs = [
        {"epoch": round(h["epoch"]), "step": h["step"], "val_loss": h["eval_loss"],
         "val_accuracy": h.get("eval_accuracy"), "val_f1_macro": h.get("eval_f1_macro")}
        for h in history if "eval_loss" in h
    ]
    best = min(epochs, key=lambda e: e["val_loss"])
    return {
        "base_model": model, "task": task.name, "objective": cfg.objective,
        "hyperparameters": asdict(cfg),
        "data": {**data["data"], "n_train": n_train, "n_val": n_val, "val_fraction": cfg.val_fraction},
        "train_loss": [{"step": h["step"], "epoch": h["epoch"], "loss": h["loss"]} for h in history if "loss" in h],
        "epochs": epochs,
        "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
        "stopped_early": len(epochs) < cfg.epochs,
        "wall_time_s": round(wall, 2),
        "processes": int(trainer.args.world_size),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({platform.processor() or platform.machine()})",
        "versions": versions(),
    }
