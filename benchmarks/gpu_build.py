"""Build the GPT-2-shaped models `benchmarks/gpu.sh` measures, where it runs (500 MB: too big to carry).

    python benchmarks/gpu_build.py TOKENIZER_DIR OUT_DIR [--layers 12 --width 768 --heads 12 --positions 1024]

Writes OUT_DIR/lm (a GPT2LMHeadModel with RANDOM weights, the recipe and seed of
../shared/tools/build_gpt2_small.py, so the same weights at the same sizes), OUT_DIR/clf (the same
body with a random two-label head, for the classifier task) and OUT_DIR/params.json (parameter
counts, for the FLOP shares). An OUT_DIR that already has params.json is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(tokenizer_dir: Path, out: Path, *, layers: int, width: int, heads: int, positions: int) -> dict[str, int]:
    """Save the LM and the classifier under `out`; their parameter counts."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tokenizer.eos_token_id
    # At the real sizes every value equals GPT2Config's default, as in build_gpt2_small.py.
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=heads, n_positions=positions,
                        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)  # build_gpt2_small.py's default seed
    lm = GPT2LMHeadModel(config)
    lm.save_pretrained(out / "lm")
    tokenizer.save_pretrained(out / "lm")
    clf = GPT2ForSequenceClassification.from_pretrained(
        out / "lm", num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
        pad_token_id=eos)
    clf.save_pretrained(out / "clf")
    tokenizer.save_pretrained(out / "clf")
    embeddings = sum(p.numel() for p in (lm.transformer.wte.weight, lm.transformer.wpe.weight))
    total = sum(p.numel() for p in lm.parameters())
    return {"parameters": total, "non_embedding": total - embeddings, "layers": layers, "width": width,
            "heads": heads, "positions": positions, "vocab": len(tokenizer)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tokenizer", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--positions", type=int, default=1024)
    a = p.parse_args()
    if (a.out / "params.json").is_file():
        print(f"kept {a.out}")
        return
    counts = build(a.tokenizer, a.out, layers=a.layers, width=a.width, heads=a.heads, positions=a.positions)
    (a.out / "params.json").write_text(json.dumps(counts) + "\n")
    print(f"built {a.out}: {counts['parameters'] / 1e6:.1f}M parameters, random weights, seed 0")


if __name__ == "__main__":
    main()
