"""Running a fine-tune: model set-up, the `Trainer`, early stopping, `training_log.json`.

`finetune` is what `tenser finetune` and `tenser compare` call. The data side (config,
train/validation carve, encoding, collation) lives in `harness.training.data`.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import distributed
from harness.backends.hf import versions
from harness.backends.loading import (
    LoadedModel,
    check_fits,
    check_source,
    context_length,
    family_task,
    from_pretrained,
    load_tokenizer,
    resolve_device,
    weights_kwargs,
)
from harness.backends.registry import require_hf
from harness.data.embedded import is_embedded
from harness.data.examples import Example, load_examples
from harness.errors import UserError
from harness.metrics.classification import compute_metrics
from harness.store import runs
from harness.training import estimate, folder, lora, model_card
from harness.training.config import CHECKPOINTS, TRAINING_LOG, FinetuneConfig
from harness.training.data import Collator, encode_examples, split_train_val
from tasks import Task
from tasks.kinds import kind_for_objective


def load_trainable(name: str, task: Task, cfg: FinetuneConfig, *, allow_pickle: bool = False) -> tuple[Any, Any]:
    """Tokenizer and model to train: a fresh classification head, or the causal LM itself."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, set_seed

    source = check_source(name, allow_pickle=allow_pickle)
    tokenizer = load_tokenizer(source, name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    weights = {**weights_kwargs(allow_pickle), "output_loading_info": True}
    set_seed(cfg.seed)  # a fresh head is drawn here, before the Trainer seeds itself
    if cfg.objective == "prompt":
        model, loading = from_pretrained(AutoModelForCausalLM, source, name, dtype=torch.float32, **weights)
    else:
        labels = dict(enumerate(task.labels))
        try:
            model, loading = from_pretrained(
                AutoModelForSequenceClassification, source, name, dtype=torch.float32, num_labels=len(labels),
                id2label=labels, label2id={v: k for k, v in labels.items()}, pad_token_id=tokenizer.pad_token_id,
                **weights,
            )
        except UserError as exc:
            raise exc.extended("; this architecture cannot take a classification head, try {objective} prompt",
                               mentions=("objective",)) from None
    check_fits(model, loading, name, kind_for_objective(cfg.objective).model, new_head=True, task=task.name)
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.max_length > (limit := context_length(model.config)):
        raise UserError(f"{{max_length}} {cfg.max_length}: {name} takes at most {limit} tokens; "
                        f"pass {{max_length}} {limit} or less", param="max_length")
    if cfg.train_layers is not None:
        freeze_lower_layers(model, cfg.train_layers, name, keep_head=cfg.objective == "classifier")
    if cfg.lora_r is not None:
        model = lora.wrap(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_targets, name=name, classifier=cfg.objective == "classifier")
    return tokenizer, model


def transformer_blocks(model: Any) -> Any:
    """The model body's stack of transformer blocks (the longest ModuleList: `h` in GPT-2, `layers` in Llama)."""
    lists = [m for m in model.base_model.modules() if isinstance(m, torch.nn.ModuleList)]
    return max(lists, key=len) if lists else None


def freeze_lower_layers(model: Any, k: int, name: str, *, keep_head: bool) -> None:
    """Train only the top `k` blocks, the norm after them and (classifier) the head; freeze the rest.

    With the prompt objective the LM head stays frozen: it is usually tied to the input embeddings.
    """
    blocks = transformer_blocks(model)
    if blocks is None:
        raise UserError(f"{{train_layers}} {k}: cannot find the transformer blocks of {name}; drop {{train_layers}}",
                        param="train_layers")
    if k > len(blocks):
        raise UserError(f"{{train_layers}} {k}: {name} has {len(blocks)} transformer blocks; pass at most "
                        f"{len(blocks)}", param="train_layers")
    model.requires_grad_(False)
    body = model.base_model
    top = list(blocks)[len(blocks) - k:] if k else []
    norms = [m for n, m in body.named_children() if n in ("norm", "ln_f", "final_layer_norm", "final_layernorm")]
    head = [m for n, m in model.named_children() if n in ("score", "classifier")] if keep_head else []
    for module in top + norms + head:
        module.requires_grad_(True)
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"{{train_layers}} {k}: nothing left to train in {name}; pass 1 or more", param="train_layers")


def base_weights_note(model: str) -> str | None:
    """What must be said about the base model's weights (an embedded model's conversion), if anything."""
    from harness.backends import embedded
    from harness.backends.loading import weights_note

    return weights_note(embedded.model_path(model, progress=False) if is_embedded(model) else model)


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _scoring_view(net: Any, tokenizer: Any) -> LoadedModel:
    """The model in training as the scoring path sees it (its weights, not a copy)."""
    return LoadedModel(lora.unwrapped(net), tokenizer, next(net.parameters()).device, torch.float32,
                       {"context_length": context_length(net.config)})


def _encode_for_scoring(task: Task, loaded: LoadedModel, examples: list[Example]) -> Any:
    """Examples as `tenser run` encodes them: the task's own encoder, at its max_tokens."""
    from harness.scoring.inference import make_encoder

    return make_encoder(task, loaded).encode_many([e.inputs() for e in examples], ids=[e.id for e in examples])


def scored_inputs(task: Task, tokenizer: Any, net: Any, val: list[Example], most: int = 64) -> list[dict[str, Any]]:
    """Up to `most` validation examples as the scoring path encodes them (the task's max_tokens, which
    `--max-length` does not cap), as features for the estimate to time."""
    return [{"input_ids": x.ids} for x in _encode_for_scoring(task, _scoring_view(net, tokenizer), val[:most])]


def _validation_metrics(task: Task, tokenizer: Any, net: Any, val: list[Example]) -> Any:
    """Validation accuracy, F1 and label loss scored exactly as `tenser run` scores the task: the
    task's own encoder and `inference.predict` (multi-token label words summed) with its `auto`
    batches (one input at a time on a CPU, where padding is pure waste). The Trainer's
    `eval_loss` (the training objective on the validation split) still drives early stopping."""
    from harness.scoring.inference import predict

    gold = np.array([e.label for e in val])
    encoded = _encode_for_scoring(task, _scoring_view(net, tokenizer), val)  # once: the same inputs every epoch

    def metrics(_: Any) -> dict[str, float]:
        loaded = _scoring_view(net, tokenizer)
        was_training = net.training
        net.eval()
        try:
            probs = predict(task, loaded, encoded, batch_size="auto", progress=False).probs
        finally:
            net.train(was_training)
        m = compute_metrics(gold, probs, task.labels)
        return {"accuracy": m["accuracy"], "f1_macro": m["f1_macro"], "label_loss": m["loss"]}

    return metrics


def _no_logits(logits: Any, labels: Any) -> torch.Tensor:
    """The Trainer keeps nothing of the evaluation logits: validation metrics score the model afresh."""
    first = logits[0] if isinstance(logits, tuple) else logits
    return first.new_zeros(first.shape[0])


def _training_args(output: Path, cfg: FinetuneConfig, device: torch.device, keep_all: bool = False) -> Any:
    from transformers import TrainingArguments

    cuda = device.type == "cuda"
    return TrainingArguments(
        output_dir=str(output / CHECKPOINTS), learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size * 2,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="linear",
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False,
        save_total_limit=None if keep_all else cfg.patience + 1,
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


def _prepare(model: str, task: Task, cfg: FinetuneConfig, train_data: str | None, allow_pickle: bool) -> Any:
    """Training data (carved into train/validation), the trainable model, and the encoded sets."""
    examples, info = load_examples(task, data=train_data, split=task.train_split)
    train, val = split_train_val(examples, cfg)
    tokenizer, net = load_trainable(model, task, cfg, allow_pickle=allow_pickle)
    return (info, train, val, tokenizer, net, encode_examples(task, tokenizer, train, cfg),
            encode_examples(task, tokenizer, val, cfg))


def warm_up_estimate(net: Any, tokenizer: Any, train_set: Any, val_set: Any, cfg: FinetuneConfig,
                     device: torch.device, *, yes: bool, scored: list[dict[str, Any]] | None = None,
                     what: str = "fine-tune", hint: str = "{limit} N", around: estimate.Around | None = None) -> float:
    """Print the plan and a time estimate from a few timed steps on typical batches (see harness.training.estimate);
    `scored`: validation inputs as the scoring path encodes them (`scored_inputs`); `around`: compare's
    work outside the fine-tunes (scoring, cached scores, model loads)."""
    if distributed.world().size > 1:  # ranks would disagree on the estimate; the Trainer's bar gives the ETA
        return 0.0
    around = around or estimate.Around()
    net.to(device)
    costs = measure(net, tokenizer, train_set, val_set, cfg, device, around.load_s, scored=scored)
    total = sum(p.numel() for p in net.parameters())
    plan = estimate.Plan(device=f"{device.type} ({_hardware(device)})", n_train=len(train_set), n_val=len(val_set),
                         epochs=cfg.epochs, batch_size=cfg.batch_size, trainable=trainable_parameters(net),
                         total=total, n_score=around.n_score, fine_tunes=around.fine_tunes, n_cached=around.n_cached,
                         loads=around.loads)
    return estimate.report(plan, costs, yes=yes, what=what, hint=hint)


def measure(net: Any, tokenizer: Any, train_set: Any, val_set: Any, cfg: FinetuneConfig, device: torch.device,
            load_s: float = 0.0, *, scored: list[dict[str, Any]] | None = None) -> estimate.Costs:
    """This job's unit costs, timed on typical inputs: a full training step (optimizer included), a
    validation example at the evaluation batch size, a scored example (one at a time, as `auto` scores
    on a CPU) on `scored`, the scoring path's own encoding (default: the validation features)."""
    collate = Collator(int(tokenizer.pad_token_id))
    features = estimate.typical(train_set.features, cfg.batch_size)
    optimizer = estimate.warmup_optimizer(net, cfg.weight_decay, device)
    step = estimate.time_train_step(net, lambda: collate(features), optimizer, device)
    del optimizer  # its moments hold twice the trained weights
    val = estimate.Timing(0.0, 0.0, 0.0)
    if val_set.features:
        val = estimate.time_eval(net, collate(estimate.typical(val_set.features, cfg.batch_size * 2)), device)
    scored = scored or val_set.features
    score = estimate.time_forward(net, [f["input_ids"] for f in estimate.typical(scored, 6)], device)
    # Timed at the median length; the work is about linear in tokens and texts skew long, so scale to the mean.
    train_scale, val_scale = estimate.mean_over_median(train_set.features), estimate.mean_over_median(val_set.features)
    return estimate.Costs(step.scaled(train_scale), val.scaled(val_scale),
                          score.scaled(estimate.mean_over_median(scored)), load_s)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{platform.processor() or platform.machine()}, {threads} thread{'s' * (threads != 1)}"


def preflight(model: str, task: Task, cfg: FinetuneConfig, *, train_data: str | None, yes: bool,
              allow_pickle: bool = False, around: estimate.Around | None = None) -> float:
    """`tenser compare`'s estimate of the whole job before it starts: its fine-tunes, the work `around` them
    (model loads each timed as this one), and the validation check (the pretrained model scores the carve)."""
    cfg.check()
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    _, _, val, tokenizer, net, train_set, val_set = _prepare(model, task, cfg, train_data, allow_pickle)
    around = around or estimate.Around()
    around = replace(around, n_score=around.n_score + len(val_set), load_s=time.perf_counter() - t0)
    return warm_up_estimate(net, tokenizer, train_set, val_set, cfg, device, yes=yes, what="compare",
                            scored=scored_inputs(task, tokenizer, net, val),
                            around=around)  # {limit}: train_limit, compare renames it


@folder.holds_lock  # a second fine-tune into the same --output stops instead of deleting this one's
def finetune(
    model: str, task: Task, output: str | Path, cfg: FinetuneConfig, *, train_data: str | None = None,
    overwrite: bool = False, resume: bool = False, callbacks: tuple[Any, ...] = (), allow_pickle: bool = False,
    estimate: bool = True, yes: bool = False, keep_checkpoints: bool = False,
) -> Path:
    """Fine-tune `model` on the task's training split and save a checkpoint folder at `output`.

    Under `torchrun`/`accelerate launch` the Trainer trains data-parallel across the processes;
    rank 0 alone prepares `output` and writes the model, tokenizer and training_log.json. With
    `keep_checkpoints`, every epoch's Trainer checkpoint stays in OUTPUT/checkpoints (to score as a curve).
    """
    from transformers import EarlyStoppingCallback, Trainer

    cfg.check()
    require_hf(model, "fine-tuning")
    want = kind_for_objective(cfg.objective).name
    if task.kind != want:
        fits = family_task(task.name, kind_for_objective(cfg.objective).model)
        raise UserError(f"{{objective}} {cfg.objective} needs a {want} task, got {task.name!r} ({task.kind}); "
                        f"use {{task}} {fits or f'a {want} task'}", param="objective", mentions=("task",))
    output = Path(output)
    device = resolve_device(cfg.device)
    distributed.init()  # before the Trainer, which then shares the process group
    distributed.on_main(lambda: folder.prepare(output, overwrite=overwrite, resume=resume))
    info, train, val, tokenizer, net, train_set, val_set = _prepare(model, task, cfg, train_data, allow_pickle)
    key = folder.settings(model, task, cfg, info.fingerprint)
    distributed.on_main(lambda: folder.check_settings(output, key, resume=resume))
    if estimate:  # `estimate=False`: the caller (compare) estimated the whole job already
        warm_up_estimate(net, tokenizer, train_set, val_set, cfg, device, yes=yes,
                         scored=scored_inputs(task, tokenizer, net, val))
    trainer = Trainer(
        model=net, args=_training_args(output, cfg, device, keep_checkpoints), data_collator=Collator(int(tokenizer.pad_token_id)),
        train_dataset=train_set, eval_dataset=val_set, processing_class=tokenizer,
        compute_metrics=_validation_metrics(task, tokenizer, net, val),
        preprocess_logits_for_metrics=_no_logits,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), _epoch_printer(), *callbacks],
    )
    t0 = time.perf_counter()
    with folder.full_disk_is_a_user_error(output), _quiet_tied_head(net):
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer logs dicts with print; stdout carries the result
            trainer.train(resume_from_checkpoint=True if resume else None)
        wall = time.perf_counter() - t0
        _save(trainer, tokenizer, output, training_log(trainer, cfg, model, task, info.to_dict(), len(train),
                                                        len(val), wall, device), keep_checkpoints)
    return output


@contextlib.contextmanager
def _quiet_tied_head(net: Any) -> Iterator[None]:
    """Drop the Trainer's "missing keys" warning when reloading the best epoch when every missing key is a
    weight tied to another (GPT-2's lm_head is its token embedding, saved once): nothing is missing."""
    first: dict[int, str] = {}
    for name, param in net.named_parameters(remove_duplicate=False):
        first.setdefault(id(param), name)
    tied = {name for name, param in net.named_parameters(remove_duplicate=False) if first[id(param)] != name}
    prefix = "There were missing keys in the checkpoint model loaded: "

    def harmless(record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return text.startswith(prefix) and set(ast.literal_eval(text[len(prefix):].rstrip("."))) <= tied

    class Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not harmless(record)

    log, quiet = logging.getLogger("transformers.trainer"), Filter()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def _save(trainer: Any, tokenizer: Any, output: Path, log: dict[str, Any], keep_checkpoints: bool = False) -> None:
    """The best model, its tokenizer and training_log.json; checkpoints removed. Every rank calls it,
    rank 0 writes."""
    if not lora.is_peft(trainer.model):
        trainer.save_model(str(output))  # the Trainer writes on the main process only
    distributed.barrier()  # every rank has loaded the best checkpoint before rank 0 removes them
    if not trainer.is_world_process_zero():
        return
    if lora.is_peft(trainer.model):  # adapters folded in: the folder loads like any other checkpoint
        lora.merged(trainer.model).save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    (output / "training_args.bin").unlink(missing_ok=True)  # a pickle; training_log.json holds the settings
    runs.write_atomic(output / TRAINING_LOG, json.dumps(log, indent=2) + "\n")
    if not keep_checkpoints:
        shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    model_card.write_card(output)
    print(f"best epoch {log['best_epoch']} (val_loss {log['best_val_loss']:.4f}); saved to {output} with a model "
          f"card (README.md); to publish it: {model_card.upload_command(output)}", file=sys.stderr)


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
        "base_model": model, "task": task.name, "dataset": task.dataset, "objective": cfg.objective,
        **({"base_weights_note": note} if (note := base_weights_note(model)) else {}),
        "hyperparameters": asdict(cfg),
        "parameters": {"total": sum(p.numel() for p in trainer.model.parameters()),
                       "trainable": trainable_parameters(trainer.model)},
        **({"lora": lora.describe(trainer.model)} if lora.is_peft(trainer.model) else {}),
        "data": {**data["data"], "n_train": n_train, "n_val": n_val, "val_fraction": cfg.val_fraction,
                 "n_train_truncated": getattr(trainer.train_dataset, "truncated", 0)},  # cut to --max-length
        "train_loss": [{"step": h["step"], "epoch": h["epoch"], "loss": h["loss"]} for h in history if "loss" in h],
        "epochs": epochs,
        "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
        "stopped_early": len(epochs) < cfg.epochs,
        "wall_time_s": round(wall, 2),
        "processes": int(trainer.args.world_size),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({platform.processor() or platform.machine()})",
        "versions": versions(),
    }
