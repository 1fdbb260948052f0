"""What a recorded setting says about a model or a data source: one definition each.

`model_ref` pins a model given as a Hub id or a local folder (a folder's path and content hash, so
a changed checkpoint is another model); `data_ref` turns `data` into a reference that still works
from another folder (an absolute path; an embedded or Hub name as given). The data's content is
pinned separately by its fingerprint (`harness.data.DataInfo`); a loaded model's weights by
`harness.cache.model_identity`.
"""

from __future__ import annotations

from pathlib import Path


def model_ref(model: str) -> str:
    """A model id as given, or a local folder's absolute path and content hash."""
    from harness.models import content_hash  # lazy: torch and transformers load with the models

    local = Path(model).expanduser()
    return f"{local.resolve()} ({content_hash(local)})" if local.is_dir() else model


def model_path(model: str) -> str:
    """A model id as given, or a local path made absolute (what restarting a job needs)."""
    local = Path(model).expanduser()
    return str(local.resolve()) if local.exists() else model


def data_ref(data: str | None) -> str | None:
    """`data` as a reference that works from another folder: an existing path made absolute, else as given."""
    local = Path(data).expanduser() if data else None
    return str(local.resolve()) if local is not None and local.exists() else data
