"""Checking the two models the demo is asked to put side by side, before either is loaded.

`--pretrained` must be a causal LM (it is scored zero-shot); the same model given as both
`--pretrained` and `--finetuned` would show one model twice, so it is refused; a plain causal LM
(no `training_log.json`) as `--finetuned` is allowed, since it may be prompt-tuned elsewhere, but
warned about.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.backends.loading import content_hash, is_classifier
from harness.backends.registry import architectures
from harness.data.embedded import is_embedded
from harness.errors import UserError


def check_pair(pretrained: str, finetuned: str) -> None:
    """Refuse a pair that makes no sense as "before and after"; warn about a doubtful one."""
    if _same_model(pretrained, finetuned):
        raise UserError(f"--pretrained {pretrained} and --finetuned {finetuned} are the same model; the demo would "
                        f"show it twice: give the checkpoint `tenser finetune` saved as --finetuned")
    pre = architectures(pretrained)
    if pre is not None and is_classifier(pre):
        raise UserError(f"--pretrained {pretrained}: is a classifier checkpoint ({', '.join(pre)}), but --pretrained "
                        f"is scored zero-shot and needs a causal LM; pass this folder as --finetuned")
    fin = architectures(finetuned)
    trained = not is_embedded(finetuned) and (Path(finetuned).expanduser() / "training_log.json").is_file()
    if fin is not None and not is_classifier(fin) and not trained:
        print(f"warning: --finetuned {finetuned} is a causal LM with no training_log.json (not saved by tenser "
              f"finetune); it is scored zero-shot like --pretrained", file=sys.stderr)


def _same_model(a: str, b: str) -> bool:
    """The same Hub id, the same folder, or two folders with the same weights, config and tokenizer."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if not (pa.is_dir() and pb.is_dir()):
        return a == b
    return pa.resolve() == pb.resolve() or content_hash(pa) == content_hash(pb)
