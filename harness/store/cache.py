"""The score cache: per-example raw label probabilities, so a finished job is never scored twice.

Entries live under `$TENSER_CACHE` (default `~/.cache/tenser`) in `scores/KEY/*.jsonl`, where KEY
hashes everything a score depends on besides the text: the model's content hash (or Hub id and
commit), dtype, device type, the task fields that shape the input (prompt, label words, token
budget, truncation side) and the Tenser version. Each entry is keyed by a hash of the input's
text (of every field's, for a task with several), so the same input under another id or in
another file is a hit, and a changed text is a miss. Each process appends to its own shard file, so parallel runs never interleave lines.
Anything unreadable (a torn line, a bad value, a broken file) is ignored and re-scored, and a
cache that cannot be written is switched off with a warning: the cache never fails a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.version import VERSION
from tasks import Task
from tasks.kinds import NOT_SCORED

if TYPE_CHECKING:  # the store comes before the backends: it reads a backend's identity, never loads one
    from harness.backends.base import Backend, Encoded, Inputs

__all__ = ["NOT_SCORED", "ScoreCache", "cache_root", "for_run"]

ENV = "TENSER_CACHE"
FORMAT = 1


def cache_root() -> Path:
    """$TENSER_CACHE, else $XDG_CACHE_HOME/tenser, else ~/.cache/tenser."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tenser"


def text_hash(text: Inputs) -> str:
    """The key of one input: its text, or every field's name and text."""
    if isinstance(text, Mapping):
        text = json.dumps(dict(text), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Entry:
    """A cached score: raw probabilities over the task's labels, and the input's token count."""

    probs: tuple[float, ...]
    n_tokens: int
    truncated: bool
    cut: str = ""  # the field that was cut to fit


def for_run(task: Task, loaded: Backend, max_tokens: int, *, enabled: bool = True) -> ScoreCache | None:
    """The cache for scoring `task` with `loaded`, or None when disabled or the weights have no identity."""
    identity = loaded.identity
    if not enabled or identity is None:
        return None
    fields = {k: v for k, v in task.to_dict().items() if k not in NOT_SCORED}  # NOT_SCORED: tasks.kinds
    parts = {"format": FORMAT, "tenser": VERSION, "model": identity,
             "dtype": loaded.precision, "device": loaded.device_type,
             "task": fields, "max_tokens": max_tokens}
    return ScoreCache(cache_root(), parts, n_labels=len(task.labels))


class ScoreCache:
    """Reads every shard of one key on first lookup; appends new entries to this process's shard."""

    def __init__(self, root: Path, parts: dict[str, Any], *, n_labels: int) -> None:
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        self.folder = root / "scores" / hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.parts, self.n_labels = parts, n_labels
        self._entries: dict[str, Entry] | None = None
        self._shard: Any = None
        self.disabled = False

    def lookup(self, texts: list[Inputs]) -> dict[int, Entry]:
        """Cached entries for `texts`, by position."""
        if self._entries is None:
            self._entries = self._read()
        hits = {i: self._entries.get(text_hash(t)) for i, t in enumerate(texts)}
        return {i: e for i, e in hits.items() if e is not None}

    def _read(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        try:
            shards = sorted(self.folder.glob("*.jsonl"))
            for shard in shards:
                for line in shard.read_bytes().split(b"\n"):
                    parsed = self._parse(line)
                    if parsed is not None:
                        entries.setdefault(*parsed)
        except OSError as exc:
            self._warn(f"cannot read the score cache {self.folder} ({exc.strerror or exc}); scoring everything")
        return entries

    def _parse(self, line: bytes) -> tuple[str, Entry] | None:
        try:
            d = json.loads(line)
            probs = tuple(float(p) for p in d["p"])
            ok = (isinstance(d["t"], str) and len(probs) == self.n_labels and isinstance(d["n"], int) and d["n"] > 0
                  and isinstance(d["c"], bool) and all(math.isfinite(p) and p >= 0 for p in probs)
                  and abs(sum(probs) - 1) < 1e-6 and isinstance(d.get("f", ""), str))
        except (ValueError, TypeError, KeyError):
            return None
        return (d["t"], Entry(probs, d["n"], d["c"], d.get("f", ""))) if ok else None

    def add(self, texts: list[Inputs], probs: Any, encoded: list[Encoded]) -> None:
        """Store raw probabilities for `texts`; a failed write switches the cache off for this run."""
        if self.disabled:
            return
        lines = [json.dumps({"t": text_hash(t), "p": [float(x) for x in p], "n": e.n_tokens, "c": e.truncated,
                             **({"f": e.cut} if e.cut else {})}) for t, p, e in zip(texts, probs, encoded)]
        try:
            if self._shard is None:
                self._open()
            self._shard.write("".join(line + "\n" for line in lines))
            self._shard.flush()
        except OSError as exc:
            self._warn(f"cannot write the score cache {self.folder} ({exc.strerror or exc}); "
                       f"continuing without it (set {ENV} to another folder or pass --no-cache)")

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "key.json"
        if not key_file.exists():
            key_file.write_text(json.dumps(self.parts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._shard = open(self.folder / name, "a", encoding="utf-8")

    def _warn(self, message: str) -> None:
        if not self.disabled:
            print(f"warning: {message}", file=sys.stderr)
        self.disabled = True

    def close(self) -> None:
        if self._shard is not None:
            with contextlib.suppress(OSError):
                self._shard.close()
            self._shard = None
