"""Tests for the Gradio demo: input checks and output formatting as plain functions, then
the real app on a localhost port called with `gradio_client`, checked against `tenser run`
for the same texts and tiny models, including 20 parallel requests."""

from __future__ import annotations

import dataclasses
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_fixtures  # noqa: E402

from demo.app import classify_batch, classify_review, serve  # noqa: E402
from demo.inputs import EMPTY_BATCH, EMPTY_REVIEW, MAX_CHARS, MAX_ROWS, InputProblem, check_review, read_batch  # noqa: E402
from demo.outputs import batch_table, display_table, token_note, verdict, write_csv  # noqa: E402
from demo.predictors import Answer, Predictor  # noqa: E402
from demo.sample_reviews import SAMPLE_REVIEWS  # noqa: E402
from harness.backends.registry import checkpoint_kind  # noqa: E402
from harness.errors import UserError  # noqa: E402
from tasks import get_task  # noqa: E402
from tenser.cli import main as tenser  # noqa: E402

LONG = "The plot wanders and the acting is flat. " * 60  # well past the tiny models' 128 tokens
TEXTS = [text for _, text in SAMPLE_REVIEWS] + [LONG, "Fine <|endoftext|> film, really.", "bad"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> demo_fixtures.TinyModels:
    return demo_fixtures.save_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def app(tiny: demo_fixtures.TinyModels) -> Any:
    server = demo_fixtures.start_demo(tiny)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(app: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from gradio_client import Client

    return Client(app.local_url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def expected(tiny: demo_fixtures.TinyModels, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """`tenser run` probabilities for TEXTS, per role, in TEXTS order."""
    tmp = tmp_path_factory.mktemp("runs")
    data = tmp / "data.csv"
    pd.DataFrame({"id": [f"t{i}" for i in range(len(TEXTS))], "text": TEXTS, "label": 0}).to_csv(data, index=False)
    out = {}
    for role, task, model in (("pretrained", "imdb_zeroshot", tiny.lm), ("finetuned", "imdb_classifier", tiny.classifier)):
        assert tenser(["run", "--task", task, "--model", str(model), "--data", str(data), "--out", str(tmp / role),
                       "--device", "cpu", "--batch-size", "3"]) == 0
        lines = next((tmp / role).glob("*/predictions.jsonl")).read_text().splitlines()
        records = {r["id"]: r for r in map(json.loads, lines)}
        out[role] = [records[f"t{i}"] for i in range(len(TEXTS))]
    return out


def probs_of(label_output: dict) -> dict[str, float]:
    """Label probabilities from a gr.Label value as the client returns it."""
    return {c["label"]: c["confidence"] for c in label_output["confidences"]}


def assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    assert all(abs(got[k] - want[k]) < 1e-5 for k in want), (got, want)


# --- plain functions -------------------------------------------------------------------

def test_check_review_refuses_empty_and_oversize_text() -> None:
    for empty in (None, "", "   \n "):
        with pytest.raises(InputProblem, match="Type or paste"):
            check_review(empty)
    with pytest.raises(InputProblem, match="20,001 characters long"):
        check_review("x" * (MAX_CHARS + 1))
    assert check_review(" kept as is \n") == " kept as is \n"  # no stripping: same text as evaluation


def test_oversize_review_is_refused_before_tokenizing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Predictor, texts: list[str]) -> list[Answer]:
        raise AssertionError("must not score")

    monkeypatch.setattr(Predictor, "answer", boom)
    bare = Predictor.__new__(Predictor)
    bare.task = get_task("imdb_zeroshot")  # only the task's fields are read
    out = classify_review([bare], "x" * (MAX_CHARS + 5))
    assert out[0].startswith("⚠️") and "at most 20,000" in out[0] and out[1:] == (None, "", "")
    assert classify_review([bare], "  ")[0] == EMPTY_REVIEW


def test_read_batch_pasted_lines_skip_blanks_and_check_sizes() -> None:
    assert read_batch("good\r\n\n  \nbad film\n", None) == ["good", "bad film"]
    for empty in (None, "", "\n \n"):
        with pytest.raises(InputProblem, match="one per line"):
            read_batch(empty, None)
    with pytest.raises(InputProblem, match="at most 500"):
        read_batch("r\n" * (MAX_ROWS + 1), None)
    with pytest.raises(InputProblem, match="line\\(s\\) 2 are longer"):
        read_batch("ok\n" + "x" * (MAX_CHARS + 1), None)


def test_read_batch_csv(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    pd.DataFrame({"id": [1, 2], "text": ["Great, \"quoted\", film", "NA"]}).to_csv(good, index=False)
    assert read_batch("ignored when a CSV is given", str(good)) == ['Great, "quoted", film', "NA"]
    cases = {
        "review\ngood\n": r'no `text` column \(columns found: "review"\)',
        "text\n" + "r\n" * (MAX_ROWS + 1): "at most 500",
        "text,x\ngood,1\n,2\n": r"empty `text` in row\(s\) 2",
        "": "Cannot read the file as CSV",
    }
    for i, (content, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.csv"
        bad.write_text(content)
        with pytest.raises(InputProblem, match=message):
            read_batch(None, str(bad))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(InputProblem, match="not UTF-8"):
        read_batch(None, str(latin))


def _answer(label: str, p: float, *, truncated: bool = False) -> Answer:
    probs = {"negative": 1 - p, "positive": p}
    return Answer(label, probs, "prompt", 128 if truncated else 7, truncated)


def test_verdict_and_token_note() -> None:
    pos, neg = _answer("positive", 0.9), _answer("negative", 0.3)
    assert verdict([("Pretrained", pos), ("Fine-tuned", pos)]) == "Both models say **positive**."
    said = verdict([("Pretrained", neg), ("Fine-tuned", pos)])
    assert "disagree" in said and "Pretrained: **negative** (70%)" in said and "Fine-tuned: **positive** (90%)" in said
    assert token_note(pos, 1024, "left", what="Movie review") == "7 of 1,024 tokens · not truncated"
    cut = token_note(_answer("positive", 0.9, truncated=True), 128, "left", what="Movie review")
    assert "Truncated" in cut and "128 of 128 tokens" in cut and "The movie review was too long, so its start" in cut
    assert "The text was too long" in token_note(_answer("positive", 0.9, truncated=True), 128, "left", what="Text")


def test_batch_table_display_and_csv(tmp_path: Path) -> None:
    texts = ["short", "y" * 200]
    answers = {"pretrained": [_answer("positive", 0.123456789), _answer("negative", 0.2)],
               "finetuned": [_answer("positive", 0.7), _answer("positive", 0.6, truncated=True)]}
    df = batch_table(texts, answers)  # type: ignore[arg-type]
    assert list(df.columns) == ["row", "text", "pretrained_label", "pretrained_p_negative", "pretrained_p_positive",
                                "pretrained_truncated", "finetuned_label", "finetuned_p_negative",
                                "finetuned_p_positive", "finetuned_truncated", "agree"]
    assert df["agree"].tolist() == [True, False] and df["finetuned_truncated"].tolist() == [False, True]
    shown = display_table(df, ["pretrained", "finetuned"], what="Movie review")
    assert list(shown.columns) == ["#", "movie review", "pretrained", "pre P(negative)", "pre P(positive)", "fine-tuned",
                                   "fine P(negative)", "fine P(positive)", "agree", "truncated"]
    assert shown.loc[0, "pre P(positive)"] == 0.1235 and len(shown.loc[1, "movie review"]) == 60
    assert shown["agree"].tolist() == ["yes", "no"] and shown["truncated"].tolist() == ["", "fine"]
    back = pd.read_csv(write_csv(df, tmp_path), keep_default_na=False)
    assert back.loc[0, "pretrained_p_positive"] == pytest.approx(0.123456789, abs=1e-12)
    assert back.loc[1, "text"] == "y" * 200


def test_finetuned_task_follows_the_saved_architecture(tiny: demo_fixtures.TinyModels, tmp_path: Path) -> None:
    assert checkpoint_kind(str(tiny.classifier), strict=False) == "classifier"
    assert checkpoint_kind(str(tiny.lm), strict=False) == "causal_lm"  # a prompt-tuned causal LM
    assert checkpoint_kind(str(tmp_path / "missing"), strict=False) == "classifier"  # load_model reports it


def test_bad_model_paths_fail_at_start_up(tiny: demo_fixtures.TinyModels, tmp_path: Path) -> None:
    port = demo_fixtures.free_port()
    with pytest.raises(UserError, match="no such folder") as err:
        serve(str(tmp_path / "missing"), str(tiny.classifier), port=port, device="cpu", prevent_thread_lock=True)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no config.json"):
        serve(str(tiny.lm), str(tmp_path), port=port, device="cpu", prevent_thread_lock=True)
    with pytest.raises(UserError, match="--port 0"):
        serve(str(tiny.lm), str(tiny.classifier), port=0, prevent_thread_lock=True)


# --- the running app -------------------------------------------------------------------

def test_single_review_matches_tenser_run(client: Any, expected: dict[str, list[dict]]) -> None:
    for i in (0, 2, len(TEXTS) - 2):
        out = client.predict(TEXTS[i], api_name="/classify")
        assert len(out) == 7
        assert_close(probs_of(out[1]), expected["pretrained"][i]["probs"])
        assert_close(probs_of(out[4]), expected["finetuned"][i]["probs"])
        assert out[1]["label"] == expected["pretrained"][i]["pred"] and out[4]["label"] == expected["finetuned"][i]["pred"]
        both = {out[1]["label"], out[4]["label"]}
        assert ("disagree" in out[0]) == (len(both) == 2)
    assert out[3] == f"Review: {TEXTS[-2]}\nSentiment:"  # the literal <|endoftext|> stays text
    assert "not truncated" in out[2]


def test_long_review_is_truncated_as_in_evaluation(client: Any, expected: dict[str, list[dict]]) -> None:
    i = TEXTS.index(LONG)
    assert expected["pretrained"][i]["truncated"] and expected["finetuned"][i]["truncated"]
    out = client.predict(LONG, api_name="/classify")
    assert_close(probs_of(out[1]), expected["pretrained"][i]["probs"])
    assert "Truncated" in out[2] and "128 of 128 tokens" in out[2] and "Truncated" in out[5]
    assert out[3].endswith("acting is flat. \nSentiment:") and out[3].startswith("Review:")
    assert len(out[3]) < len(LONG)


def test_empty_and_oversize_input_get_messages(client: Any) -> None:
    out = client.predict("   ", api_name="/classify")
    assert out[0] == EMPTY_REVIEW and out[1] == {} and out[3] == ""
    out = client.predict("word " * 5000, api_name="/classify")
    assert "25,000 characters long" in out[0] and out[1] == {}
    summary, table, file = client.predict("", None, api_name="/classify_batch")
    assert summary == f"⚠️ {EMPTY_BATCH}" and file is None


def test_batch_paste_and_csv_match_tenser_run(client: Any, expected: dict[str, list[dict]], tmp_path: Path) -> None:
    from gradio_client import handle_file

    summary, table, file = client.predict("\n".join(TEXTS[:3]), None, api_name="/classify_batch")
    assert summary.startswith("Scored **3** movie reviews") and len(table["data"]) == 3
    assert pd.read_csv(file)["text"].tolist() == TEXTS[:3]
    upload = tmp_path / "reviews.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(upload, index=False)
    summary, table, file = client.predict("", handle_file(str(upload)), api_name="/classify_batch")
    assert f"Scored **{len(TEXTS)}** movie reviews" in summary and "1 truncated for the pretrained model" in summary
    got = pd.read_csv(file, keep_default_na=False)
    assert got["text"].tolist() == TEXTS
    for role in ("pretrained", "finetuned"):
        for i, row in got.iterrows():
            assert_close({lab: row[f"{role}_p_{lab}"] for lab in ("negative", "positive")}, expected[role][i]["probs"])
            assert row[f"{role}_label"] == expected[role][i]["pred"]
    bad = tmp_path / "bad.csv"
    bad.write_text("review\ngood\n")
    summary, _, file = client.predict("", handle_file(str(bad)), api_name="/classify_batch")
    assert "no `text` column" in summary and file is None


def test_twenty_parallel_requests_are_all_answered(client: Any, expected: dict[str, list[dict]]) -> None:
    jobs = [i % len(TEXTS) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        outs = list(pool.map(lambda i: client.predict(TEXTS[i], api_name="/classify"), jobs))
    for i, out in zip(jobs, outs):
        assert_close(probs_of(out[1]), expected["pretrained"][i]["probs"])
        assert_close(probs_of(out[4]), expected["finetuned"][i]["probs"])


def test_prompt_tuned_lm_as_finetuned_model(tiny: demo_fixtures.TinyModels, expected: dict[str, list[dict]],
                                           tmp_path: Path) -> None:
    from gradio_client import Client

    from tests.test_demo_safety import _other_lm

    tuned = _other_lm(tiny.lm, tmp_path / "prompt_tuned")  # the same LM again would be refused (same model)
    (tuned / "training_log.json").write_text(json.dumps({"objective": "prompt"}))
    server = demo_fixtures.start_demo(tiny, finetuned=tuned)
    try:
        out = Client(server.local_url, verbose=False, analytics_enabled=False).predict(TEXTS[0], api_name="/classify")
    finally:
        server.close()
    assert out[6] == out[3] == f"Review: {TEXTS[0]}\nSentiment:"  # both scored the zero-shot prompt
    assert_close(probs_of(out[1]), expected["pretrained"][0]["probs"])
    assert sum(probs_of(out[4]).values()) == pytest.approx(1.0)


def test_classify_batch_handler_without_server(tiny: demo_fixtures.TinyModels, tmp_path: Path) -> None:
    from harness.backends.loading import load_model
    from tasks import get_task

    lm = load_model(str(tiny.lm), "causal_lm", device="cpu")
    predictors = [Predictor.create("pretrained", lm, get_task("imdb_zeroshot"))]
    summary, shown, path = classify_batch(predictors, "good\nbad", None, tmp_path)
    assert shown is not None and path is not None and summary.startswith("Scored **2** movie reviews")
    assert Path(path).parent.parent == tmp_path and shown.shape == (2, 7) and "movie review" in shown.columns
    # A task that is not IMDB (sentences, tickets, ...) never hears of reviews.
    sentences = dataclasses.replace(get_task("imdb_zeroshot"), name="sentences_zeroshot", tags=())
    summary, shown, _ = classify_batch([Predictor.create("pretrained", lm, sentences)], "good\nbad", None, tmp_path)
    assert summary.startswith("Scored **2** texts;") and "review" not in summary
    assert shown is not None and list(shown.columns)[:2] == ["#", "text"]


def test_load_with_a_megabyte_input_among_the_requests(client: Any, expected: dict[str, list[dict]]) -> None:
    """Many requests at once (40 at concurrency 8 here; TENSER_LOAD=200,20 for the full run), with
    1 MB inputs mixed in: every review is answered correctly and every 1 MB input is refused."""
    import os
    import time

    n, concurrency = (int(x) for x in os.environ.get("TENSER_LOAD", "40,8").split(","))
    huge = "x" * 1_000_000
    jobs = [-1 if i % 10 == 5 else i % len(TEXTS) for i in range(n)]

    def call(i: int) -> tuple[int, Any, float]:
        t0 = time.perf_counter()
        out = client.predict(huge if i < 0 else TEXTS[i], api_name="/classify")
        return i, out, time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(call, jobs))
    latencies = sorted(t for i, _, t in results if i >= 0)
    refusals = sorted(t for i, _, t in results if i < 0)
    for i, out, _ in results:
        if i < 0:
            assert "1,000,000 characters long" in out[0] and out[1] == {}
        else:
            assert_close(probs_of(out[1]), expected["pretrained"][i]["probs"])
            assert_close(probs_of(out[4]), expected["finetuned"][i]["probs"])
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\nload: {n} requests at concurrency {concurrency}: {len(latencies)} reviews answered, "
          f"p50 {latencies[len(latencies) // 2]:.3f}s p95 {p95:.3f}s; {len(refusals)} x 1 MB refused, "
          f"slowest refusal {refusals[-1]:.3f}s")
