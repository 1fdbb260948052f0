"""`tenser bench`: Tenser's scoring against the usual ways, on the same examples, hardware
and process, with an agreement check so speed is never bought with wrong answers.

Ways compared, per task:
- `tenser`: `inference.predict` (length-sorted token-budget batches, right padding without an
  attention mask, LM head at the scored position only, `--dtype` as given: auto is mixed
  precision on GPU, float32 on CPU), with zero-shot inputs' shared prefix run once.
- `tenser_no_prefix`: the same without the prefix cache (`--no-prefix-cache`): the ratio is what
  the cache saves, and its probabilities are checked against `tenser`'s (`prefix_check`).
- `seed_style`: what the seed notebook did: every input padded to the task's max length,
  fp32, batch 8, a full forward with attention mask and logits at every position.
- `one_at_a_time`: fp32, batch 1, a full forward per review: the reference for agreement.
Peak memory is the GPU's per way on CUDA, the process's peak RSS so far on CPU. A task with
`-T shots=k` gets its demonstrations as `tenser run` draws them (`--train-data`, `--seed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.backends import precision
from harness.backends.hf import runtime_info
from harness.backends.loading import LoadedModel, load_model
from harness.backends.registry import model_kind, require_hf
from harness.data.examples import Example
from harness.errors import UserError
from harness.scoring.encoding import Encoded
from harness.scoring.inference import make_encoder, predict
from harness.scoring.prompting import add_demonstrations
from tasks import Task
from tasks.kinds import get_kind

MAX_DISAGREEMENT = 0.001  # share of examples whose prediction may differ from the reference
MAX_ACCURACY_GAP = 0.001  # 0.1 accuracy points
MAX_PREFIX_DIFF = 1e-5  # the prefix cache may move a probability by float32 rounding only (issue 23)
WAYS = ("tenser", "tenser_no_prefix", "seed_style", "one_at_a_time")


@torch.inference_mode()
def reference_probs(task: Task, loaded: LoadedModel, encoded: list[Encoded], *, pad_to: int | None = None,
                    batch_size: int = 1, progress: bool = True) -> np.ndarray:
    """Plain transformers forwards (attention mask, logits at every position) over `encoded`.

    Zero-shot: log P(label word | prompt), a multi-token word's tokens summed (the word fed
    after the prompt, one forward per label word); single-token words need one forward."""
    model, pad = loaded.model, int(loaded.tokenizer.pad_token_id)
    device = next(model.parameters()).device
    words = [loaded.tokenizer(w, add_special_tokens=False)["input_ids"] for w in task.label_words]
    out = []
    for start in tqdm(range(0, len(encoded), batch_size), desc="reference", disable=not progress):
        chunk = encoded[start : start + batch_size]
        if not get_kind(task.kind).prompted:
            logits = _forward(model, [e.ids for e in chunk], pad, pad_to, device)
        elif all(len(w) == 1 for w in words):
            logits = _forward(model, [e.ids for e in chunk], pad, pad_to, device)
            last = torch.tensor([e.n_tokens - 1 for e in chunk], device=device)
            logits = torch.log_softmax(logits[torch.arange(len(chunk), device=device), last], -1)[:, [w[0] for w in words]]
        else:
            logits = torch.stack([_word_logprob(model, chunk, w, pad, pad_to, device) for w in words], -1)
        out.append(torch.softmax(logits.double(), -1).cpu().numpy())
    return np.concatenate(out)


def _forward(model: Any, seqs: list[list[int]], pad: int, pad_to: int | None, device: torch.device) -> torch.Tensor:
    """Logits of right-padded `seqs` (width `pad_to` or the longest) under an attention mask."""
    width = max([pad_to or 0] + [len(s) for s in seqs])
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()


def _word_logprob(model: Any, chunk: list[Encoded], word: list[int], pad: int, pad_to: int | None,
                  device: torch.device) -> torch.Tensor:
    """Sum over the word's tokens of log P(token | prompt + the word's earlier tokens), per example."""
    logprobs = torch.log_softmax(_forward(model, [e.ids + word[:-1] for e in chunk], pad, pad_to, device), -1)
    target = torch.tensor(word, device=device)
    return torch.stack([logprobs[row, e.n_tokens - 1 + torch.arange(len(word), device=device), target].sum()
                        for row, e in enumerate(chunk)])


def _timed(fn: Callable[[], np.ndarray], device: torch.device) -> tuple[np.ndarray, float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    probs = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return probs, seconds, peak


def bench_task(task: Task, model: str, examples: list[Example], *, device: str, dtype: str,
               batch_size: int | str, ways: tuple[str, ...], compile: bool = False,
               allow_pickle: bool = False, repeats: int = 1, prefix_cache: bool = True,
               train_data: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Time every way on `examples`; check Tenser against the fp32 one-at-a-time reference.

    Every way first runs untimed on a few inputs spread from the shortest to the longest, so
    that no way pays the process's first-use costs (allocator growth, first-touch of the
    weights) for the others: 3 inputs, or 24 for Tenser with `compile` (whose compiling time
    is reported apart, `compile_s`) or mixed precision (so its bf16 path runs too). With
    `repeats`, the ways run that many times in alternating order and the fastest time counts.
    """
    require_hf(model, "tenser bench")
    kind = model_kind(task)
    fast = load_model(model, kind, device=device, dtype=dtype, allow_pickle=allow_pickle, compile=compile,
                      prefix_cache=prefix_cache)
    task, _ = add_demonstrations(task, fast, train_data=train_data, seed=seed, exclude={e.id for e in examples})
    exact = fast if fast.dtype == torch.float32 and not compile else load_model(
        model, kind, device=device, dtype="float32", allow_pickle=allow_pickle)
    t0 = time.perf_counter()
    encoded = make_encoder(task, fast).encode_many([e.inputs() for e in examples], ids=[e.id for e in examples])
    tokenize_s = time.perf_counter() - t0
    gold = np.array([e.label for e in examples])
    n_tokens = sum(e.n_tokens for e in encoded)
    pad_to = make_encoder(task, exact).max_tokens
    mixed: dict[str, Any] = {}  # mixed-precision statistics of the timed passes
    shared: dict[str, Any] = {}  # the prefix cache of the timed pass

    def tenser(enc: list[Encoded], bar: bool, loaded: LoadedModel = fast) -> np.ndarray:
        done = predict(task, loaded, enc, batch_size=batch_size, progress=bar)
        if bar and loaded is fast:  # a timed pass
            mixed.update(precision.merge(mixed, done.precision))
            shared.update(done.prefix)
        return done.probs

    runs: dict[str, Callable[[list[Encoded], bool], np.ndarray]] = {
        "tenser": tenser,
        "tenser_no_prefix": lambda enc, bar: tenser(enc, bar, dataclasses.replace(fast, prefix_cache=False)),
        "seed_style": lambda enc, bar: reference_probs(task, exact, enc, pad_to=pad_to, batch_size=8, progress=bar),
        "one_at_a_time": lambda enc, bar: reference_probs(task, exact, enc, batch_size=1, progress=bar),
    }
    by_length = sorted(encoded, key=lambda e: e.n_tokens)
    compile_s = 0.0
    for way in ways:
        n_warm = 24 if way == "tenser" and (compile or fast.compute is not None) else 3
        t0 = time.perf_counter()
        runs[way]([by_length[round(k * (len(by_length) - 1) / max(1, n_warm - 1))] for k in range(n_warm)], False)
        if way == "tenser":
            compile_s = time.perf_counter() - t0 if compile else 0.0
    times: dict[str, list[float]] = {way: [] for way in ways}
    probs_of: dict[str, np.ndarray] = {}
    peaks = dict.fromkeys(ways, 0.0)
    for r in range(repeats):  # alternate the order, so a machine that speeds up or slows down favours no way
        for way in ways if r % 2 == 0 else ways[::-1]:
            probs, seconds, peak = _timed(lambda w=way: runs[w](encoded, True), fast.device)  # type: ignore[misc]
            probs_of.setdefault(way, probs)
            times[way].append(round(seconds, 3))
            peaks[way] = max(peaks[way], peak)
    preds = {way: p.argmax(1) for way, p in probs_of.items()}
    rows: dict[str, dict[str, Any]] = {}
    for way in ways:
        seconds = min(times[way])
        rows[way] = {"seconds": seconds, "all_seconds": times[way], "examples_per_s": round(len(examples) / seconds, 2),
                     "tokens_per_s": round(n_tokens / seconds, 1), "peak_memory_mib": round(peaks[way], 1),
                     "accuracy": float((preds[way] == gold).mean())}
    ref = "one_at_a_time" if "one_at_a_time" in preds else None
    check = agreement(preds["tenser"], preds[ref], gold) if ref else None
    for way in ways:
        rows[way]["speedup_vs_tenser"] = round(rows[way]["seconds"] / rows["tenser"]["seconds"], 2)
    return {"task": task.name, "n": len(examples), "tokens": n_tokens, "tokenize_s": round(tokenize_s, 3),
            "compile_s": round(compile_s, 3), "ways": rows, "agreement": check,
            "prefix_cache": shared, "prefix_check": prefix_check(probs_of),
            "runtime": {**runtime_info(fast, batch_size), **({"mixed_precision": mixed} if mixed else {})}}


def agreement(pred: np.ndarray, ref: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """How far Tenser's predictions are from the reference's, and whether that is within limits."""
    disagree = float((pred != ref).mean())
    gap = abs(float((pred == gold).mean()) - float((ref == gold).mean()))
    return {"disagreement": disagree, "accuracy_gap": gap,
            "ok": disagree <= MAX_DISAGREEMENT + 1e-12 and gap <= MAX_ACCURACY_GAP + 1e-12}  # 1 in 1,000 is ok


def prefix_check(probs_of: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """Tenser with the prefix cache against Tenser without: the largest probability change, the same predictions."""
    if "tenser_no_prefix" not in probs_of:
        return None
    diff = float(np.abs(probs_of["tenser"] - probs_of["tenser_no_prefix"]).max())
    same = bool((probs_of["tenser"].argmax(1) == probs_of["tenser_no_prefix"].argmax(1)).all())
    return {"max_prob_diff": diff, "same_predictions": same, "ok": same and diff <= MAX_PREFIX_DIFF}


def markdown(results: list[dict[str, Any]], training: dict[str, Any] | None = None) -> str:
    """Markdown tables of every task and way (and of fine-tuning throughput, when measured)."""
    lines = ["| task | way | n | seconds | examples/s | tokens/s | peak MiB | accuracy | Tenser is x faster |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        agree = r["agreement"]
        if agree:
            lines.append(f"| {r['task']} | agreement with reference | | | | | | "
                         f"{agree['disagreement']:.2%} disagree, gap {agree['accuracy_gap']:.4f} | "
                         f"{'ok' if agree['ok'] else 'FAILED'} |")
        same = r.get("prefix_check")
        if same:
            lines.append(f"| {r['task']} | prefix cache vs none | | | | | | max prob diff {same['max_prob_diff']:.1e}, "
                         f"{'same' if same['same_predictions'] else 'DIFFERENT'} predictions | "
                         f"{'ok' if same['ok'] else 'FAILED'} |")
        for way, w in r["ways"].items():
            lines.append(f"| {r['task']} | {way} | {r['n']} | {w['seconds']:.2f} | {w['examples_per_s']:.1f} | "
                         f"{w['tokens_per_s']:.0f} | {w['peak_memory_mib']:.0f} | {w['accuracy']:.4f} | "
                         f"{w['speedup_vs_tenser']:.2f} |")
    if training:
        lines += ["", "| fine-tuning | way | examples | seconds | examples/s | est. epoch of 22,500 (s) | peak MiB | "
                  "Tenser is x faster |", "|---|---|---|---|---|---|---|---|"]
        for way, w in training["ways"].items():
            lines.append(f"| {training['task']} | {way} | {w['examples']} | {w['seconds']:.1f} | "
                         f"{w['examples_per_s']:.2f} | {w['epoch_s_for_22500']:.0f} | {w['peak_memory_mib']:.0f} | "
                         f"{w['speedup_vs_tenser']:.2f} |")
    hw = results[0]["runtime"]
    lines.append(f"\nHardware: {hw['hardware']}; device {hw['device']}, Tenser dtype {hw['dtype']}"
                 f"{', compiled' if hw.get('compiled') else ''}; torch {hw['versions']['torch']}, "
                 f"transformers {hw['versions']['transformers']}.")
    for r in results:
        mixed = r["runtime"].get("mixed_precision")
        if mixed:
            lines.append(f"- {r['task']}, mixed precision: {mixed['sampled_fp32']} inputs sampled and "
                         f"{mixed['rescored_fp32']} near-ties re-scored in fp32 of {mixed['scored']}; bf16 error "
                         f"{mixed['sample_error']:.4f}, threshold {mixed['threshold']:.4f}.")
        shared = r.get("prefix_cache") or {}
        if shared.get("prefix_tokens"):
            lines.append(f"- {r['task']}: a {shared['prefix_tokens']}-token shared prefix run once "
                         f"({shared['tokens_saved']} tokens saved of {r['tokens']}).")
        elif shared.get("off"):
            lines.append(f"- {r['task']}: prefix cache off ({shared['off']}).")
        if r.get("compile_s"):
            lines.append(f"- {r['task']}: compiling took {r['compile_s']:.1f} s before the timed pass.")
    return "\n".join(lines) + "\n"


def write_outputs(results: list[dict[str, Any]], training: dict[str, Any] | None, out: Path) -> None:
    """Save bench.json and bench.md in `out`; raise if any agreement check failed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"scoring": results, "finetuning": training}, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(results, training))
    print(markdown(results, training), file=sys.stderr)
    failed = [r["task"] for r in results if (r["agreement"] and not r["agreement"]["ok"])
              or (r.get("prefix_check") and not r["prefix_check"]["ok"])]
    if failed:
        raise UserError(f"agreement check failed for {', '.join(failed)}: Tenser's predictions differ from the "
                        f"fp32 one-at-a-time reference beyond {MAX_DISAGREEMENT:.1%}, or the prefix cache changed "
                        f"a probability by over {MAX_PREFIX_DIFF} (see {out / 'bench.json'})")


def bench_finetune(model: str, task: Task, examples: list[Example], *, device: str,
                   allow_pickle: bool = False) -> dict[str, Any]:
    """Training throughput over one epoch of `examples`: Tenser's set-up against seed-style padding.

    A whole epoch, not a few steps: length grouping puts the longest batch first, so a few
    steps would time the worst case only. Reviews are cut at the seed's 512 tokens, or the
    model's context if shorter.
    """
    import tempfile

    from transformers import AutoConfig, Trainer, TrainingArguments

    from harness.backends.loading import check_source, context_length, resolve_device
    from harness.training.config import FinetuneConfig
    from harness.training.data import Collator, encode_examples
    from harness.training.trainer import load_trainable

    limit = context_length(AutoConfig.from_pretrained(check_source(model, allow_pickle=allow_pickle)))
    cfg = FinetuneConfig(max_length=min(FinetuneConfig.max_length, limit))
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    rows = {}
    for way, pad_to, sampling in (("tenser", None, "group_by_length"), ("seed_style", cfg.max_length, "random")):
        tokenizer, net = load_trainable(model, task, cfg, allow_pickle=allow_pickle)
        data = encode_examples(task, tokenizer, examples, cfg)
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(
                output_dir=tmp, num_train_epochs=1, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
                train_sampling_strategy=sampling, report_to="none", save_strategy="no", logging_strategy="no",
                use_cpu=not cuda, bf16=cuda and way == "tenser" and torch.cuda.is_bf16_supported(),
                optim="adamw_torch_fused" if cuda and way == "tenser" else "adamw_torch", seed=cfg.seed,
            )
            trainer = Trainer(model=net, args=args, train_dataset=data,
                              data_collator=Collator(int(tokenizer.pad_token_id), pad_to))
            with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its summary; stdout is for the result
                _, seconds, peak = _timed(lambda t=trainer: np.array(t.train().training_loss), dev)  # type: ignore[misc]
        per_example = seconds / len(examples)
        rows[way] = {"examples": len(examples), "seconds": round(seconds, 2), "examples_per_s": round(1 / per_example, 2),
                     "epoch_s_for_22500": round(per_example * 22500, 1), "peak_memory_mib": round(peak, 1)}
    for way in rows:
        rows[way]["speedup_vs_tenser"] = round(rows[way]["seconds"] / rows["tenser"]["seconds"], 2)
    return {"task": f"finetune:{task.name}", "ways": rows}
