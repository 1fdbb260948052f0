"""The prose and tables of a model card (`harness.training.model_card` writes the front matter and file).

Every number comes from `training_log.json` or the test runs handed in; nothing is typed in.
"""

from __future__ import annotations

from typing import Any

NOT_MEASURED = "not measured yet: `tenser compare --finetuned THIS_FOLDER` adds the test split"


def body(log: dict[str, Any], name: str, hub_id: str | None, license_: str, test: Any) -> str:
    """The markdown after the front matter."""
    parts = [_intro(log, name, hub_id, license_), _training_data(log), _hyperparameters(log), _curve(log),
             _test(test), _use(log)]
    return "\n\n".join(parts) + "\n"


def _intro(log: dict[str, Any], name: str, hub_id: str | None, license_: str) -> str:
    how = ("a classification head on the model's last token" if log["objective"] == "classifier"
           else "the language model itself, on the prompt followed by the gold label word")
    lines = [f"# {name}", "",
             f"`{log['base_model']}` fine-tuned with Tenser (`tenser finetune`) on the task `{log['task']}`: "
             f"{how}.", "", f"- Base model: `{hub_id or log['base_model']}`",
             f"- License: {license_} (the base model's)"]
    if note := log.get("base_weights_note"):
        lines.append(f"- Base weights: {note}")
    if lora := log.get("lora"):
        lines.append(f"- LoRA: rank {lora['r']}, alpha {lora['alpha']}, on {', '.join(lora['target_modules'])}; "
                     f"{lora['saved']}")
    return "\n".join(lines)


def _training_data(log: dict[str, Any]) -> str:
    d = log["data"]
    return "\n".join([
        "## Training data", "",
        f"- Source: `{d['source']}`, split `{d['split']}` (fingerprint `{d['fingerprint']}`)",
        f"- {d['n_train']} training examples and {d['n_val']} validation examples carved from them "
        f"(stratified, validation fraction {d['val_fraction']})",
    ])


def _hyperparameters(log: dict[str, Any]) -> str:
    rows = [f"| {k} | {v} |" for k, v in log["hyperparameters"].items()]
    p = log["parameters"]
    rows += [f"| parameters (total) | {p['total']:,} |", f"| parameters (trainable) | {p['trainable']:,} |",
             f"| wall time (s) | {log['wall_time_s']} |", f"| trained on | {log['device']} |"]
    return "\n".join(["## Training hyperparameters", "", "| setting | value |", "| --- | --- |", *rows])


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.4f}"


def _curve(log: dict[str, Any]) -> str:
    rows = [f"| {e['epoch']} | {e['step']} | {_num(e['val_loss'])} | {_num(e.get('val_accuracy'))} | "
            f"{_num(e.get('val_f1_macro'))} |" for e in log["epochs"]]
    stopped = "stopped early" if log["stopped_early"] else "ran every epoch"
    return "\n".join(["## Validation curve", "", "| epoch | step | val loss | val accuracy | val macro-F1 |",
                      "| --- | --- | --- | --- | --- |", *rows, "",
                      f"Best epoch {log['best_epoch']} (val loss {_num(log['best_val_loss'])}) was kept; "
                      f"training {stopped}."])


def _ci(metrics: dict[str, Any], key: str) -> str:
    low, high = metrics["ci95"][key]
    return f"{metrics[key]:.4f} (95% CI {low:.4f}–{high:.4f})"


def _test(test: Any) -> str:
    head = ["## Test results", ""]
    if test is None:
        return "\n".join([*head, NOT_MEASURED])
    m, d = test.after["metrics"], test.after["data"]
    lines = [*head, f"On `{d['source']}`, split `{d['split']}`, {m['n']} examples:", "",
             f"- accuracy {_ci(m, 'accuracy')}", f"- macro-F1 {_ci(m, 'f1_macro')}"]
    if test.before is not None:
        b = test.before["metrics"]
        lines += ["", f"Before fine-tuning (`{test.before['model'].get('name', 'pretrained')}`, "
                      f"task `{test.before['task']['name']}`, same examples): accuracy {_ci(b, 'accuracy')}."]
    if (c := test.change) is not None:
        diff = c["difference"]
        low, high = diff["ci95"]
        significant = low > 0 or high < 0
        lines += ["", f"Change in accuracy: {diff['mean']:+.4f} (paired 95% CI {low:+.4f} to {high:+.4f}, "
                      f"n={c['n']}): {'significant' if significant else 'not significant'} at the 5% level."]
    return "\n".join(lines)


def _length(log: dict[str, Any]) -> str:
    """The training length in the task's own terms: texts and tokens, whatever the texts are."""
    tokens = log["hyperparameters"].get("max_length")
    return f" ({tokens} tokens; longer texts were cut to fit)" if tokens else " (longer texts were cut to fit)"


def _use(log: dict[str, Any]) -> str:
    return "\n".join([
        "## Intended use", "",
        f"Classifying texts like the training data of `{log['task']}` into its labels, and comparing against "
        "the base model with `tenser compare`. It is a research checkpoint, not a product.", "",
        "## Limitations", "",
        f"- Trained on {log['data']['n_train']} examples from one source; expect lower accuracy on other domains, "
        f"other languages and texts longer than the training length{_length(log)}.",
        "- The validation numbers above come from a split carved from the training data; only the test results "
        "measure held-out performance.",
        "- It inherits the base model's biases and its license terms.",
    ])
