"""Loading checkpoints: a Hub id or a local folder, as a causal LM (zeroshot tasks) or a
sequence-classification model (classifier tasks), on the chosen device and dtype.

GPT-2 has no pad token: we set it to EOS on the tokenizer and the model config. A plain
LM loaded for classification would get a random head without complaint; we refuse it.
Weights load from safetensors where the checkpoint has them; remote code never runs.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from harness.data import hub_endpoint_reachable, hub_offline
from harness.errors import UserError

ModelKind = Literal["causal_lm", "classifier"]
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FINETUNE_HINT = "fine-tune one first: tenser finetune --model MODEL --task imdb_classifier --output DIR"


@dataclass
class LoadedModel:
    """A model ready to score, its tokenizer, and what results.json records about it."""

    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    info: dict[str, Any]

    @property
    def context_length(self) -> int:
        return int(self.info["context_length"])


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an unavailable device is a user error."""
    if name not in DEVICES:
        raise UserError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 on GPUs that support it and float32 elsewhere."""
    if name == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    if name not in DTYPES:
        raise UserError(f"--dtype {name!r}: choose one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def load_model(name: str, kind: ModelKind, *, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load tokenizer and model `name` (Hub id or folder) for scoring as `kind`."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    source = _check_source(name)
    tokenizer = _load_tokenizer(source, name)
    auto = AutoModelForCausalLM if kind == "causal_lm" else AutoModelForSequenceClassification
    model, loading = _from_pretrained(auto, source, name, dtype=dt, output_loading_info=True)
    if kind == "classifier":
        _check_trained_head(model, loading, name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 ships without a pad token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(dev).eval()
    return LoadedModel(model, tokenizer, dev, dt, _describe(model, name, source))


def _check_source(name: str) -> str:
    """Return a local folder path, or `name` as a Hub id after checking the Hub is reachable."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"--model {name}: folder has no config.json; is it a Hugging Face model folder?")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(("/", "\\")):
        raise UserError(f"--model {name}: no such folder; give a local model folder or a Hub id such as gpt2")
    if not hub_offline() and not hub_endpoint_reachable():
        raise UserError(
            f"--model {name}: not a local folder and the Hugging Face Hub is unreachable; "
            f"pass a local model folder (e.g. one saved with save_pretrained)"
        )
    return name


def _from_pretrained(cls: Any, source: str, name: str, **kwargs: Any) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.from_pretrained(source, trust_remote_code=False, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if Path(source).exists():
            raise UserError(f"--model {name}: cannot load this local folder ({first})") from None
        offline = "; HF_HUB_OFFLINE is set, so only the local cache is searched" if hub_offline() else ""
        raise UserError(
            f"--model {name}: cannot load this Hub model ({first}){offline}; check the id or pass a local model folder"
        ) from None


def _load_tokenizer(source: str, name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, source, name)
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"--model {name}: needs a fast (Rust) tokenizer with offsets; add tokenizer.json to the folder")
    return tokenizer


def _check_trained_head(model: Any, loading: dict[str, Any], name: str) -> None:
    archs = getattr(model.config, "architectures", None) or []
    untrained = [k for k in loading.get("missing_keys", []) if k.split(".")[0] in ("score", "classifier")]
    if untrained or not any(a.endswith("ForSequenceClassification") for a in archs):
        saved = ", ".join(archs) or "unknown"
        raise UserError(
            f"--model {name}: has no trained classification head (saved as {saved}); "
            f"a random head would give meaningless results. {FINETUNE_HINT}"
        )


def _describe(model: Any, name: str, source: str) -> dict[str, Any]:
    config = model.config
    context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
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
    }


def content_hash(folder: Path) -> str:
    """A short sha256 over the folder's weight and config files, identifying the checkpoint."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


logging.getLogger("transformers.modeling_utils").setLevel(logging.ERROR)
# With modeling_utils at ERROR, transformers 5 checks the tensor-parallel plan on every load and
# warns that each layer "was not sharded" (meaningless without tensor parallelism).
logging.getLogger("transformers.distributed.tensor_parallel").setLevel(logging.ERROR)
