"""What kind of model a task needs, and what kind a saved checkpoint is.

A zeroshot task scores a causal LM; a classifier task a `...ForSequenceClassification`
checkpoint. A folder written by `tenser finetune` is one or the other, told apart by the
architectures in its config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.backends.base import is_hf
from harness.data.embedded import is_embedded
from harness.data.hub import hub_endpoint_reachable, hub_offline
from harness.errors import UserError
from tasks import Task
from tasks.kinds import ModelKind, get_kind


def model_kind(task: Task) -> ModelKind:
    """How `load_model` must load a model for `task`."""
    return get_kind(task.kind).model


def checkpoint_kind(name: str, *, strict: bool = True) -> ModelKind:
    """`classifier` for a sequence-classification checkpoint, `causal_lm` for a prompt-tuned LM.

    With `strict`, a folder that is neither (no config.json; a plain LM without training_log.json)
    is a UserError. Without it, what cannot be read counts as `classifier`, so that `load_model`
    reports the missing folder or Hub id in its own words.
    """
    if not is_hf(name):
        return "classifier"  # another backend (fake:) scores any task kind
    archs = architectures(name)
    if archs is None:
        if strict:
            raise UserError(f"{{finetuned}} {name}: not a model folder (no config.json); give `tenser finetune`'s "
                            f"--output", param="finetuned")
        return "classifier"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "classifier"
    if strict and not (Path(name).expanduser() / "training_log.json").is_file():
        raise UserError(f"{{finetuned}} {name}: not a fine-tuned classifier (architectures: {', '.join(archs)}); "
                        f"fine-tune one with tenser finetune", param="finetuned")
    return "causal_lm"


def architectures(name: str) -> list[str] | None:
    """The `architectures` of a local folder's or Hub model's config; None when it cannot be read."""
    from harness.backends import embedded  # lazy: it loads gguf and the wheel only for embedded names

    folder = embedded.model_path(name, progress=False) if is_embedded(name) else name
    config = Path(folder).expanduser() / "config.json"
    if config.is_file():
        try:
            return list(json.loads(config.read_text()).get("architectures") or [])
        except (OSError, ValueError, AttributeError):
            return None
    if Path(name).expanduser().exists() or name.startswith((".", "/", "~")):
        return None
    if not hub_offline() and not hub_endpoint_reachable():
        return None  # load_model says the Hub is unreachable
    try:  # a Hub id: read its config only (small), before loading the weights
        from transformers import AutoConfig

        return list(AutoConfig.from_pretrained(name, trust_remote_code=False).architectures or [])
    except (OSError, ValueError, KeyError):
        return None
