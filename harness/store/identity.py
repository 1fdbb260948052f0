"""A model's identity, one definition each: what pins a checkpoint's files (`content_hash`), a model as
a recorded setting (`model_ref`: a Hub id as given, a folder's path and content hash; `model_path`), and
what pins a loaded model's weights for the score cache (`weights_identity`). and a data source as a
recorded setting (`data_ref`; its content is pinned by the fingerprint in `DataInfo`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

PROVENANCE = "tenser_embedded.json"  # the embedded model's conversion record (harness.backends.embedded)

HASHED = (".safetensors", ".bin", ".json", ".model", ".txt")  # weights, configs, tokenizer files (merges.txt, ...)
NOT_HASHED = ("training_log.json", PROVENANCE)  # how the weights were made, not what scores


def content_hash(folder: Path) -> str:
    """A short sha256 over the folder's weight, config and tokenizer files, identifying the checkpoint."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in HASHED and p.is_file() and p.name not in NOT_HASHED)
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def model_ref(model: str) -> str:
    """A model id as given, or a local folder's absolute path and content hash."""
    local = Path(model).expanduser()
    return f"{local.resolve()} ({content_hash(local)})" if local.is_dir() else model


def model_path(model: str) -> str:
    """A model id as given, or a local path made absolute (what restarting a job needs)."""
    local = Path(model).expanduser()
    return str(local.resolve()) if local.exists() else model


def weights_identity(info: dict[str, Any]) -> str | None:
    """What pins the weights: a local folder's content hash, or a Hub id at a commit (None: nothing does)."""
    if info.get("content_hash"):
        return str(info["content_hash"])
    if info.get("revision"):
        return f"{info['name_or_path']}@{info['revision']}"
    return None


def data_ref(data: str | None) -> str | None:
    """`data` as a reference that works from another folder: an existing path made absolute, else as given."""
    local = Path(data).expanduser() if data else None
    return str(local.resolve()) if local is not None and local.exists() else data
