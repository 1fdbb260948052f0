"""Hostile-input probe for issue 24 ("Reliability III"): re-runs the issue's bad cases through the real CLI.

Issue 24 listed bad inputs that must each give ONE clear error line with exit status 2 (no Python
traceback), or behave correctly. Its "done when" asks for a re-run of the hostile probe's bad cases;
the original probe script is lost, so the cases below are RECONSTRUCTED FROM THE ISSUE'S TEXT, with the
flags and the expected wording taken from the tests that cover each item.

    source /work/venv/bin/activate
    python benchmarks/probe_issue24.py [--keep DIR]

Everything is built in a temporary folder (or in DIR, kept, with --keep): a tiny random GPT-2 LM and
GPT-2 classifier saved with save_pretrained, their BPE tokenizer trained in code (no network), small CSV
data and task files. Each case runs `sys.executable -m tenser ...` in a subprocess (HF_HUB_OFFLINE=1,
OMP_NUM_THREADS=1, TENSER_CACHE inside the folder). Output: a markdown table (case | command | exit | the
stderr line saying "error:", else stderr's first line, else stdout's; paths relative to the folder |
verdict). A case is BAD on "Traceback" in stderr, another exit code than expected, an expected phrase
missing from stdout+stderr (or an unwanted one present), other than one "error:" line on exit 2, or a
failed after-check (a file written or changed). Exit 1 if any case is BAD. About 2-3 minutes on 2 cores.

Driven here, by issue item: 1 (different data of the same size: gate refuses, report unpaired),
2 (metrics module in a TOML task file needs --trust-metrics), 3 (edited / NaN predictions.jsonl),
4 (task-file field types, non-UTF-8 file), 6 (TENSER_CACHE a regular file), 8 (the demo command
`compare` prints, via compare --finetuned so nothing is fine-tuned), 9 (task from a file without
--include, a family given to run, --split validation on embedded:imdb, finetune --resume when finished,
plan --n with --change), 11 (5,000 labels, a 401-character label word, --lora-r 100000),
13 (report wording when McNemar p < 0.05; the run folders are a real tiny-GPT-2 run whose predictions are
flipped and re-scored with the product's own compute_metrics, as tests/report_fixtures.flip_run does),
14 (gate without --out leaves ./gate.json alone).

Left to the tests (not drivable from the CLI in seconds; R = tests/test_reliability_inputs.py,
E = tests/test_embedded.py):
  5  full disk while saving a checkpoint: R::test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_torn_*
  6  quickstart refused as too long on a busy CPU: R::test_quickstart_refused_as_too_long_names_its_own_yes_*
  7  the time estimate: tests/test_estimate.py
  9  model cards of other tasks: tests/test_model_card.py::test_a_card_of_another_task_speaks_of_its_texts_not_reviews
  10 the plain embedded LM as the demo's --finetuned: E::test_the_plain_embedded_lm_as_the_demos_finetuned_model_*
  12 a corrupt converted model, stale conversion folders (need a patched embedded-model table):
     E::test_a_corrupt_converted_model_in_the_cache_is_converted_again,
     E::test_stale_conversion_temp_folders_are_removed_and_live_ones_kept
  14 the Trainer's tied lm_head warning: R::test_the_trainers_missing_tied_lm_head_warning_is_dropped_*
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EOS = "<|endoftext|>"
_VOCABULARY = ("the movie film was is great terrible acting plot story good bad awful wonderful boring loved hated it "
               "this a an and but not very really review actor scene music ending script funny sad slow long short "
               "best worst ever never watch time love hate fun dull brilliant mess cast camera year family night day")
WORDS, GOOD, BAD = _VOCABULARY.split(), ["great", "wonderful", "loved", "best"], ["terrible", "awful", "hated", "worst"]


# --- what the probe builds ----------------------------------------------------------------------------

def build_models(root: Path) -> tuple[Path, Path]:
    """A tiny random GPT-2 LM and GPT-2 classifier (negative/positive), each saved with its tokenizer
    (the same recipe as tests/conftest.py: byte-level BPE trained on synthetic prompts)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, GPT2TokenizerFast

    rng = random.Random(0)
    corpus = [f"Review: {' '.join(rng.choice(WORDS) for _ in range(14))}.<br /><br />\nSentiment: positive negative"
              for _ in range(400)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=500, special_tokens=[EOS], min_frequency=1,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS)

    def config(**extra: Any) -> Any:
        return GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=2, n_positions=128,
                          bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, **extra)

    torch.manual_seed(0)
    lm, clf = root / "gpt2", root / "gpt2_clf"
    GPT2LMHeadModel(config()).save_pretrained(lm)
    torch.manual_seed(1)
    GPT2ForSequenceClassification(config(num_labels=2, id2label={0: "negative", 1: "positive"},
                                         label2id={"negative": 0, "positive": 1})).save_pretrained(clf)
    for folder in (lm, clf):
        tok.save_pretrained(folder)
    return lm, clf


def reviews(n: int, seed: int, separable: bool = False) -> list[dict[str, Any]]:
    """n short reviews, labels alternating 0/1 (so two files of one size hold the same labels)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 20))]
        if separable:
            words += [rng.choice(GOOD if i % 2 else BAD) for _ in range(3)]
            rng.shuffle(words)
        rows.append({"text": " ".join(words).capitalize() + ".", "label": i % 2})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_NONNUMERIC).writerows([("text", "label")] + [(r["text"], r["label"]) for r in rows])
    return path


def put(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


ZS = ('name = "{name}"\nkind = "zeroshot"\nlabels = ["negative", "positive"]\ndataset = "me/d"\n'
      'prompt = "Review: {{text}}\\nSentiment:"\nlabel_words = [" negative", " positive"]\n')


def typed(root: Path, field_name: str, toml_value: str) -> Path:
    """A zero-shot task file with one field given a value of the wrong type."""
    lines = [x for x in ZS.format(name="typed").splitlines() if not x.startswith(f"{field_name} =")]
    return put(root / f"typed_{field_name}.toml", "\n".join(lines + [f"{field_name} = {toml_value}"]) + "\n")


# --- running the CLI ----------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    argv: list[str]
    rc: int = 2
    want: list[str] = field(default_factory=list)  # phrases that must appear in stdout + stderr
    unwanted: list[str] = field(default_factory=list)  # phrases that must not
    check: Callable[[], str | None] | None = None  # after-check: a problem, or None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    show: str = "error:"  # the stderr line the table shows (else the first line)


def cli(argv: list[str], env: dict[str, str], cwd: Path | None = None, timeout: int = 600) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "tenser", *argv], capture_output=True, text=True, env=env,
                          cwd=str(cwd or REPO), timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def judge(case: Case, rc: int, out: str, err: str) -> list[str]:
    n_errors = sum("error:" in line for line in err.splitlines())
    problems = ["traceback"] * ("Traceback" in err) + [f"exit {rc}, expected {case.rc}"] * (rc != case.rc)
    problems += [f"missing {w!r}" for w in case.want if w not in out + err]
    problems += [f"unexpected {w!r}" for w in case.unwanted if w in out + err]
    problems += [f"{n_errors} error lines"] * (case.rc == 2 and n_errors != 1)
    found = case.check() if case.check and not problems else None
    return problems + [found] * bool(found)


def shown(out: str, err: str, show: str, root: Path) -> str:
    """The stderr line holding `show`, else its first line, else "stdout: " and stdout's first; paths made relative."""
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip()]
    line = next((x for x in lines if show in x), lines[0] if lines else "stdout: " + (out.strip().splitlines() or [""])[0])
    line = line.replace(str(root) + os.sep, "")
    return line if len(line) <= 140 else line[:137] + "..."


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- item 13: run folders with a significant McNemar test ---------------------------------------------------

def flipped(src: Path, dst: Path, wrong: int, right: int) -> Path:
    """A copy of run folder `src` with `wrong` right predictions made wrong and `right` wrong ones made right,
    probabilities 0.9/0.1 and results.json metrics recomputed by the product (as tests/report_fixtures.flip_run)."""
    import numpy as np

    from harness.metrics.classification import compute_metrics
    from harness.store.runs import load_run, save_run

    results, predictions = load_run(src)
    labels = results["task"]["labels"]
    for p in predictions:
        other = labels[1 - labels.index(p["label"])]
        if wrong and p["pred"] == p["label"]:
            p["pred"], wrong = other, wrong - 1
        elif right and p["pred"] != p["label"]:
            p["pred"], right = p["label"], right - 1
        p["probs"] = {x: 0.9 if x == p["pred"] else 0.1 for x in labels}
        p["loss"] = -math.log(p["probs"][p["label"]])
    assert wrong == right == 0, "the base run has too few right or wrong predictions"
    gold = np.array([labels.index(p["label"]) for p in predictions])
    results["metrics"] = compute_metrics(gold, np.array([[p["probs"][x] for x in labels] for p in predictions]), labels)
    dst.mkdir(parents=True)
    return save_run(dst, {k: v for k, v in results.items() if k != "schema_version"}, predictions)


def summary_sentences(page: Path) -> str | None:
    """Item 13 after-check (as tests/test_reports_paired.py): run 2 (b = 2, c = 12 of 200, McNemar p = 0.013) is
    called significant, not undetectable; run 3 (b = 8, c = 6) is called undetectable, its drop with a real minus."""
    import re

    match = re.search(r'<section class="card" id="summary">(.*?)</section>', page.read_text(encoding="utf-8"), re.S)
    if not match:
        return "no summary section"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1)))
    run2 = re.search(r"Run 2 versus Baseline: With 200 examples.*?(?=Run \d versus|$)", text)
    run3 = re.search(r"Run 3 versus Baseline: With 200 examples [^:]*, changes under ~[\d.]+ points are not detectable",
                     text)
    p = json.loads((page.parent / "comparison.json").read_text())["comparisons"][0]["mcnemar"]["p_value"]
    if not p < 0.05:
        return f"McNemar p = {p:.3f}, not < 0.05: the case did not build a significant change"
    if not run2 or "significant" not in run2[0] or "not detectable" in run2[0]:
        return f"significant change worded as: {run2[0][:160] if run2 else 'no MDE sentence'}"
    if not run3:
        return "the non-significant run (b = 8, c = 6) is not called 'not detectable'"
    return None if "\u22121.0 points" in text else "the drop of 1 point lacks a real minus sign"


# --- the cases ------------------------------------------------------------------------------------------

def cases(root: Path, env: dict[str, str]) -> list[Case]:
    lm, clf = build_models(root / "models")
    (data := root / "data").mkdir()
    a = write_csv(data / "a.csv", reviews(12, seed=1))
    b = write_csv(data / "b.csv", reviews(12, seed=2))  # same size, same labels, other texts
    big = write_csv(data / "big.csv", reviews(200, seed=3))
    train = write_csv(data / "train.csv", reviews(40, seed=4, separable=True))
    run = ["run", "--model", str(lm), "--device", "cpu", "--batch-size", "4"]

    def scored(csv: Path, out: Path) -> Path:
        rc, stdout, stderr = cli([*run, "--data", str(csv), "--out", str(out)], env)
        if rc != 0:
            raise SystemExit(f"setup run on {csv} failed (exit {rc}):\n{stderr[-2000:]}")
        return Path(stdout.strip().splitlines()[-1])

    run_a, run_b, run_big = scored(a, root / "runs_a"), scored(b, root / "runs_b"), scored(big, root / "runs_big")

    # item 3: an edited copy (one prediction flipped, probabilities swapped to match) and a NaN copy
    def edited(name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
        dst = root / name
        shutil.copytree(run_a, dst)
        lines = (dst / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        lines[3] = json.dumps(change(json.loads(lines[3])))
        (dst / "predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return dst

    def flip(r: dict[str, Any]) -> dict[str, Any]:
        other = next(x for x in r["probs"] if x != r["pred"])
        return {**r, "pred": other, "probs": {other: r["probs"][r["pred"]], r["pred"]: r["probs"][other]}}

    run_flip = edited("run_flipped", flip)
    run_pred = edited("run_pred", lambda r: {**r, "pred": min(r["probs"], key=r["probs"].get)})
    run_nan = edited("run_nan", lambda r: {**r, "probs": {**r["probs"], "positive": float("nan")}})

    # item 13: before/after/worse on the same 200 examples
    before = flipped(run_big, root / "sig" / "before", 0, 0)
    after = flipped(before, root / "sig" / "after", wrong=2, right=12)
    worse = flipped(before, root / "sig" / "worse", wrong=8, right=6)

    # item 2: a local metric module folder named by a TOML task file
    evil, marker = root / "evil", root / "evil_ran"
    put(evil / "evil.py", f"open({str(marker)!r}, 'w').write('code ran')\n")
    evil_toml = put(root / "evil_task.toml", ZS.format(name="evil_task") + f'metrics = ["{evil}"]\n')
    module = root / "mods" / "macro_scores"
    shutil.copytree(REPO / "metrics" / "macro_scores", module)
    trusted_toml = put(root / "trusted_task.toml", ZS.format(name="trusted_task") + f'metrics = ["{module}"]\n')

    # item 8: a family from a file, compared with an already fine-tuned classifier (no fine-tune)
    family = put(root / "my tasks.toml", "[[family]]\n" + ZS.format(name="stars_zeroshot").replace(
        'kind = "zeroshot"\n', "") + "max_tokens = 64\n")
    demo_want = ["tenser demo", f"--include '{family}'", "-T max_tokens=48", "--task stars"]

    # item 11
    many = put(root / "many_labels.toml", 'name = "many"\nkind = "classifier"\ndataset = "me/d"\nlabels = ['
                     + ", ".join(f'"l{i}"' for i in range(5000)) + "]\n")
    long_word = " " + "very " * 80
    long_toml = put(root / "long_word.toml", ZS.format(name="long_word").replace(
        '" positive"]', json.dumps(long_word) + "]"))

    ci = put(root / "ci" / "gate.json", '{"mine": true}\n').parent  # item 14
    cache_file = put(root / "cache-is-a-file", "not a folder")  # item 6

    # item 9: a finished fine-tune to --resume
    ft = ["finetune", "--model", str(lm), "--data", str(train), "--output", str(root / "ft"), "--epochs", "1",
          "--max-length", "64", "--device", "cpu", "--yes"]
    rc, _, stderr = cli(ft, env)
    if rc != 0:
        raise SystemExit(f"setup fine-tune failed (exit {rc}):\n{stderr[-2000:]}")

    utf = root / "latin1.toml"
    utf.write_bytes('name = "caf\xe9"\nkind = "classifier"\nlabels = ["a", "b"]\n'.encode("latin-1"))
    g = str(root / "g.json")

    def nothing_at(path: Path) -> Callable[[], str | None]:
        return lambda: f"{path} was written" if path.exists() else None

    def html_unpaired() -> str | None:
        page = (root / "r_ab.html").read_text(encoding="utf-8")
        missing = [x for x in ("Paired statistics not computed", "different data") if x not in page]
        present = [x for x in ("of the same 12 examples", "McNemar exact") if x in page]
        if missing or present:
            return f"report: missing {missing}, present {present}"
        saved = json.loads((root / "comparison.json").read_text())["comparisons"][0]
        return None if saved["paired"] is False and str(b) in saved["reason"] else f"comparison.json: {saved['reason']}"

    def extra_metrics() -> str | None:
        found = [json.loads(p.read_text()).get("extra_metrics", {}) for p in (root / "o2t").glob("*/results.json")]
        return None if found and str(module) in found[0] else "results.json lacks the trusted module's metrics"

    out: list[Case] = [
        Case("1 gate: different data, same size", ["gate", str(run_a), str(run_b), "--out", g],
             want=["different data", str(a), str(b)], check=nothing_at(Path(g))),
        Case("1 report: different data unpaired", ["report", str(run_a), str(run_b), "--out", str(root / "r_ab.html")],
             rc=0, check=html_unpaired),
        Case("2 TOML metrics module, no opt-in", [*run, "--data", str(a), "--out", str(root / "o2"), "--include",
                                                  str(evil_toml), "--task", "evil_task"],
             want=[str(evil), "--trust-metrics", str(evil_toml)],
             check=lambda: "the module's code ran" if marker.exists() else nothing_at(root / "o2")()),
        Case("2 TOML metrics module, --trust-metrics", [*run, "--data", str(a), "--out", str(root / "o2t"), "--include",
                                                        str(trusted_toml), "--task", "trusted_task", "--trust-metrics"],
             rc=0, check=extra_metrics),
        Case("3 report: flipped prediction", ["report", str(run_flip), "--out", str(root / "r3.html")],
             want=[str(run_flip / "predictions.jsonl"), "results.json records"]),
        Case("3 gate: flipped prediction", ["gate", str(run_a), str(run_flip), "--out", g],
             want=[str(run_flip / "predictions.jsonl")]),
        Case("3 report: pred not the most probable", ["report", str(run_pred), "--out", str(root / "r3p.html")],
             want=[f"{run_pred / 'predictions.jsonl'}: line 4: pred"]),
        Case("3 report: NaN probability", ["report", str(run_nan), "--out", str(root / "r3n.html")],
             want=[f"{run_nan / 'predictions.jsonl'}: line 4: probs", "nan"]),
        Case("3 gate: NaN probability", ["gate", str(run_nan), str(run_a), "--out", g],
             want=[f"{run_nan / 'predictions.jsonl'}: line 4: probs", "nan"]),
    ]
    for fname, value, shown_value, expected in [
            ("name", "5", "5", "a string"), ("prompt", "7", "7", "a string"),
            ("label_words", "3", "3", "a list of strings"), ("max_tokens", "512.0", "512.0", "a whole number or none"),
            ("shots", "2.0", "2.0", "a whole number"), ("labels", '"np"', "'np'", "a list of strings"),
            ("content_free", '"N/A"', "'N/A'", "a list of strings"),
            ("chat_template", '"false"', "'false'", "true or false")]:
        path = typed(root, fname, value)
        out.append(Case(f"4 task file: {fname} = {value}", ["tasks", "--include", str(path)],
                        want=[str(path), f"{fname} = {shown_value}", f"must be {expected}"]))
    out += [
        Case("4 task file not UTF-8", ["tasks", "--include", str(utf)], want=["not UTF-8 text", "save it as UTF-8"]),
        Case("6 TENSER_CACHE is a file", ["quickstart", "--out", str(root / "qs")], env={"TENSER_CACHE": str(cache_file)},
             want=[f"TENSER_CACHE={cache_file}", "set TENSER_CACHE to a folder you can write to"],
             check=lambda: None if cache_file.read_text() == "not a folder" else "the cache file was changed"),
        Case("8 compare prints demo with --include/-T",
             ["compare", "--model", str(lm), "--finetuned", str(clf), "--include", str(family), "--task", "stars",
              "--data", str(a), "--out", str(root / "cmp"), "-T", "max_tokens=48", "--noise-examples", "0",
              "--device", "cpu"], rc=0, want=demo_want, show="try both models"),
        Case("9 task from a file without --include", [*run, "--data", str(a), "--out", str(root / "o9"),
                                                      "--task", "stars_zeroshot"],
             want=["Unknown task 'stars_zeroshot'", "a task from a file needs --include FILE"]),
        Case("9 run --task FAMILY", [*run, "--data", str(a), "--out", str(root / "o9f"), "--task", "imdb"],
             want=["--task imdb is a task family", "imdb_zeroshot", "imdb_classifier"]),
        Case("9 --split validation on embedded:imdb", [*run, "--data", "embedded:imdb", "--split", "validation",
                                                       "--out", str(root / "o9s")],
             want=["no split 'validation' (splits: test, train)", "--split test"],
             unwanted=["expected a folder per label"]),
        Case("9 finetune --resume when finished", [*ft, "--resume"], want=["finished", "--overwrite"],
             unwanted=["no Trainer checkpoint"]),
        Case("9 plan --n 200 --change 0.02", ["plan", "--n", "200", "--change", "0.02"], rc=0,
             want=["n = 200: the smallest detectable accuracy change", "change 0.02 (2.0 points)"]),
        Case("11 a task with 5,000 labels", ["tasks", "--include", str(many)], want=["5000 labels; at most 1000"]),
        Case("11 a 401-character label word", ["tasks", "--include", str(long_toml)],
             want=[f"is {len(long_word)} characters; at most 100"]),
        Case("11 --lora-r 100000", ["finetune", "--model", str(lm), "--data", str(train), "--output",
                                    str(root / "lora"), "--lora-r", "100000", "--max-length", "64", "--device", "cpu",
                                    "--yes"],
             want=["--lora-r 100000", "hidden size (32)"],
             check=lambda: "a checkpoint was saved" if (root / "lora" / "model.safetensors").exists() else None),
        Case("13 report: significant change vs MDE", ["report", str(before), str(after), str(worse), "--out",
                                                      str(root / "sig" / "r.html")], rc=0,
             check=lambda: summary_sentences(root / "sig" / "r.html")),
        Case("14 gate without --out, ./gate.json exists", ["gate", str(before), str(before)], rc=0, cwd=ci,
             want=["PASS"], check=lambda: None if (ci / "gate.json").read_text() == '{"mine": true}\n'
             and [p.name for p in ci.iterdir()] == ["gate.json"] else "./gate.json was touched"),
    ]
    return out


def short(argv: list[str], root: Path) -> str:
    text = " ".join(argv).replace(str(root) + os.sep, "")
    for noise in (" --device cpu", " --batch-size 4", " --yes", " --max-length 64"):
        text = text.replace(noise, "")
    return text if len(text) <= 110 else text[:107] + "..."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.keep and args.keep.exists():
        parser.error(f"--keep {args.keep}: already exists; name a new folder")
    if args.keep:
        args.keep.mkdir(parents=True)
    root = (args.keep or Path(tempfile.mkdtemp(prefix="probe_issue24_"))).resolve()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TENSER_CACHE": str(root / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    os.environ.update({k: env[k] for k in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS")})
    sys.path.insert(0, str(REPO))
    try:
        all_cases = cases(root, env)
        rows, bad = [], 0
        for case in all_cases:
            rc, out, err = cli(case.argv, {**env, **case.env}, case.cwd)
            problems = judge(case, rc, out, err)
            bad += bool(problems)
            verdict = "good" if not problems else "BAD: " + "; ".join(problems)
            rows.append(f"| {cell(case.name)} | `{cell(short(case.argv, root))}` | {rc} | {cell(shown(out, err, case.show, root))} | "
                        f"{cell(verdict)} |")
            print(f"[{time.monotonic() - started:6.1f}s] {case.name}: {verdict}", file=sys.stderr, flush=True)
        print("| case | command (short) | exit | first line of stderr (its error line if any) | verdict |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
        print(f"\n{len(all_cases) - bad} good, {bad} BAD, {time.monotonic() - started:.0f} s; paths relative to {root}")
        return 1 if bad else 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
