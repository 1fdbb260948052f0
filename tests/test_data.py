"""harness.data.examples: every local format, labels as ids or names, user errors for bad data, the
Hub path failing fast offline, and seeded stratified sampling (trap 5)."""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest

from harness.data.examples import Example, load_examples, sample_stratified
from harness.data.hub import hub_endpoint_reachable, hub_offline
from harness.errors import UserError
from tasks import get_task
from tenser.cli import flag

TASK = get_task("imdb_zeroshot")
ROWS = [
    {"text": "A wonderful film.<br /><br />Loved it", "label": 1},
    {"text": "Boring plot, awful acting", "label": 0},
    {"text": "The <|endoftext|> best movie ever", "label": 1},
    {"text": "Never again, ünïcödé and all", "label": 0},
]


def _check_rows(examples, rows=ROWS):
    assert [(e.text, e.label) for e in examples] == [(r["text"], r["label"]) for r in rows]


@pytest.mark.parametrize("name", ["data.csv", "data.jsonl", "data.json", "data.parquet", "DATA.CSV"])
def test_table_files_load_in_order_with_generated_ids(write_data, name):
    path = write_data(ROWS, name)
    examples, info = load_examples(TASK, data=str(path))
    _check_rows(examples)
    assert [e.id for e in examples] == ["test-00000", "test-00001", "test-00002", "test-00003"]
    assert info.source == str(path.resolve()) and info.split == "test"
    assert (info.n_available, info.n, info.limit, info.seed) == (4, 4, None, 0)
    assert info.to_dict()["sample"]["strategy"] == "all"


def test_id_column_is_used_and_kept_as_text(write_data):
    rows = [{"id": f"00{i}", **r} for i, r in enumerate(ROWS)]
    for name in ("ids.jsonl", "ids.parquet"):
        examples, _ = load_examples(TASK, data=str(write_data(rows, name)))
        assert [e.id for e in examples] == ["000", "001", "002", "003"]


def test_jsonl_keeps_numeric_looking_strings_as_text(write_data):
    rows = [{"id": "007", "text": "10", "label": 1}, {"id": "008", "text": "3", "label": 0}]
    examples, _ = load_examples(TASK, data=str(write_data(rows, "nums.jsonl")))
    assert examples == [Example("007", "10", 1, {"text": "10"}), Example("008", "3", 0, {"text": "3"})]


def test_labels_given_as_names_or_mixed(write_data):
    rows = [{"text": r["text"], "label": ("negative", "positive")[r["label"]]} for r in ROWS]
    for name in ("names.csv", "names.jsonl", "names.parquet"):
        _check_rows(load_examples(TASK, data=str(write_data(rows, name)))[0])
    mixed = [{"text": "good", "label": "positive"}, {"text": "bad", "label": 0}]
    assert [e.label for e in load_examples(TASK, data=str(write_data(mixed, "mixed.jsonl")))[0]] == [1, 0]


def test_other_column_names_via_task_fields(write_data):
    rows = [{"review": r["text"], "sentiment": r["label"]} for r in ROWS]
    task = get_task("imdb_zeroshot", text_column="review", label_column="sentiment")
    _check_rows(load_examples(task, data=str(write_data(rows, "cols.csv")))[0])


def _acl_folder(root, split="test", names=("pos", "neg")):
    for label, name in zip((1, 0), names):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i, r in enumerate(r for r in ROWS if r["label"] == label):
            (folder / f"{i}_{7 + i}.txt").write_text(r["text"], encoding="utf-8")
    return root


def test_aclimdb_style_folder(tmp_path):
    root = _acl_folder(tmp_path / "aclImdb")
    examples, info = load_examples(TASK, data=str(root))
    assert [e.id for e in examples] == ["neg/0_7.txt", "neg/1_8.txt", "pos/0_7.txt", "pos/1_8.txt"]
    assert [e.label for e in examples] == [0, 0, 1, 1]
    assert {e.text for e in examples} == {r["text"] for r in ROWS}
    # The split folder itself works too, and full label names as folder names.
    assert load_examples(TASK, data=str(root / "test"))[0] == examples
    full = _acl_folder(tmp_path / "full", split="train", names=("positive", "negative"))
    assert len(load_examples(TASK, data=str(full), split="train")[0]) == 4
    with pytest.raises(UserError, match=r"no split 'test' \(splits: train\); pass split train"):
        load_examples(TASK, data=str(tmp_path / "full"))  # no test split, and the splits it has are named
    (root / "test" / "neg" / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(UserError, match="bad.txt: not UTF-8"):
        load_examples(TASK, data=str(root))


def test_save_to_disk_dataset_dict_and_dataset(tmp_path):
    from datasets import Dataset, DatasetDict

    test = Dataset.from_list(ROWS)
    train = Dataset.from_list(ROWS[:2])
    DatasetDict({"test": test, "train": train}).save_to_disk(str(tmp_path / "dd"))
    _check_rows(load_examples(TASK, data=str(tmp_path / "dd"))[0])
    _check_rows(load_examples(TASK, data=str(tmp_path / "dd"), split="train")[0], ROWS[:2])
    with pytest.raises(UserError, match=r"no split 'validation' \(splits: test, train\); pass split$"):
        load_examples(TASK, data=str(tmp_path / "dd"), split="validation")
    test.save_to_disk(str(tmp_path / "ds"))
    _check_rows(load_examples(TASK, data=str(tmp_path / "ds"))[0])


def test_fingerprint_identifies_the_data(write_data):
    a = load_examples(TASK, data=str(write_data(ROWS, "a.csv")))[1]
    b = load_examples(TASK, data=str(write_data(ROWS, "b.jsonl")), limit=2)[1]
    c = load_examples(TASK, data=str(write_data(ROWS[::-1], "c.csv")))[1]
    d = load_examples(TASK, data=str(write_data([{**ROWS[0], "label": 0}, *ROWS[1:]], "d.csv")))[1]
    assert a.fingerprint == b.fingerprint  # same examples, whatever the format or sample
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    assert a.fingerprint.startswith("sha256:")


# --- user errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("empty.jsonl", b"", "the file is empty"),
        ("empty.parquet", b"", "the file is empty"),
        ("header.csv", b"text,label\n", "no examples in the data"),
        ("latin1.csv", b"text,label\ncaf\xe9 au lait,1\ngood,0\n", r"not UTF-8 \(bad byte at position \d+\)"),
        ("latin1.jsonl", b'{"text": "caf\xe9", "label": 1}\n', "not UTF-8"),
        ("garbage.parquet", b"this is not parquet", "cannot read it as parquet"),
        ("broken.jsonl", b'{"text": "a", "label": 1}\n{"text": \n', "line 2 is not valid JSON"),
        ("data.txt", b"text,label\n", "unsupported file type"),
        ("cols.csv", b"review,label\ngood,1\n", r"no column 'text' \(columns: review, label\); .*-T text_column=NAME"),
        ("nolabel.csv", b"text,stars\ngood,1\n", "no column 'label'.*-T label_column=NAME"),
        ("range.csv", b"text,label\ngood,1\nbad,2\nmeh,-1\n", r"labels outside the task's labels: -1, 2 \(allowed: 0 or 'negative', 1 or 'positive'\)"),
        ("names.csv", b"text,label\ngood,pos\nbad,negative\n", "labels outside the task's labels: 'pos'"),
        ("float.jsonl", b'{"text": "good", "label": 1.5}\n', "labels outside the task's labels: 1.5"),
        ("bool.jsonl", b'{"text": "good", "label": true}\n', "labels outside the task's labels: True"),
        ("blank.csv", b'id,text,label\na,good,1\nb,"   ",0\nc,,1\n', r"2 example\(s\) have empty text \(ids: b, c\)"),
        ("null.jsonl", b'{"id": "x", "text": null, "label": 1}\n', r"empty text \(ids: x\)"),
        ("dup.csv", b"id,text,label\n1,a,1\n1,b,0\n", r"example id\(s\) repeat \(1\)"),
    ],
)
def test_bad_data_files_are_user_errors_naming_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=match) as err:
        load_examples(TASK, data=str(path))
    assert name in str(err.value) and "\n" not in str(err.value)


def test_missing_path_and_bad_limit(tmp_path):
    with pytest.raises(UserError, match=r"^data .*nope.csv: no such file or folder"):
        load_examples(TASK, data=str(tmp_path / "nope.csv"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(UserError, match="expected a folder per label"):
        load_examples(TASK, data=str(tmp_path / "empty_folder"))
    for bad in (0, -3):
        with pytest.raises(UserError, match=f"^limit {bad}: must be a positive"):
            load_examples(TASK, data=str(tmp_path / "nope.csv"), limit=bad)


# --- the Hub ------------------------------------------------------------------------------------

def test_hub_dataset_offline_fails_fast_naming_the_dataset_and_data_flag():
    task = get_task("imdb_zeroshot", dataset="tenser-tests/no-such-dataset")
    assert hub_offline()  # conftest sets HF_HUB_OFFLINE=1
    t0 = time.perf_counter()
    with pytest.raises(UserError) as err:
        load_examples(task)
    assert time.perf_counter() - t0 < 20
    msg = str(err.value)
    assert "'tenser-tests/no-such-dataset'" in msg and "with data PATH" in msg and "--data PATH" in err.value.speak(flag) and "HF_HUB_OFFLINE" in msg


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_unreachable_fails_fast_naming_the_dataset_and_data_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert not hub_offline() and not hub_endpoint_reachable(timeout=1.0)
    t0 = time.perf_counter()
    with pytest.raises(UserError) as err:
        load_examples(get_task("imdb_zeroshot"))
    assert time.perf_counter() - t0 < 20  # no connection timeouts or retries (includes importing datasets)
    msg = str(err.value)
    assert "cannot reach the Hugging Face Hub" in msg and "'stanfordnlp/imdb'" in msg and "with data PATH" in msg and "--data PATH" in err.value.speak(flag)


def test_hub_endpoint_reachable_answers_for_a_listening_port(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_endpoint_reachable(timeout=1.0)


@pytest.mark.parametrize(("value", "offline"), [("1", True), ("true", True), ("ON", True), ("0", False), ("", False)])
def test_hub_offline_reads_the_environment(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_offline() is offline


# --- sampling -------------------------------------------------------------------------------------

def _sorted_by_label(n_neg: int, n_pos: int) -> list[Example]:
    """Like the IMDB files: all negatives, then all positives."""
    labels = [0] * n_neg + [1] * n_pos
    return [Example(f"e{i:04d}", f"review {i}", lab) for i, lab in enumerate(labels)]


@pytest.mark.parametrize(("n_neg", "n_pos", "limit", "want"), [(50, 50, 10, (5, 5)), (90, 30, 20, (15, 5)),
                                                                (70, 30, 7, (5, 2)), (3, 97, 10, (0, 10))])
def test_sample_is_stratified_by_label(n_neg, n_pos, limit, want):
    examples = _sorted_by_label(n_neg, n_pos)
    sample = sample_stratified(examples, limit, seed=0)
    counts = Counter(e.label for e in sample)
    assert (counts[0], counts[1]) == want and len(sample) == limit
    assert sample != examples[:limit]  # never a prefix
    positions = [examples.index(e) for e in sample]
    assert positions == sorted(positions) and len(set(positions)) == limit  # data order, no repeats


def test_sample_is_seeded():
    examples = _sorted_by_label(200, 200)
    a, b = sample_stratified(examples, 40, seed=0), sample_stratified(examples, 40, seed=0)
    c = sample_stratified(examples, 40, seed=1)
    assert a == b and a != c
    assert Counter(e.label for e in c) == Counter(e.label for e in a) == {0: 20, 1: 20}


def test_limit_at_or_over_the_size_uses_everything(capsys):
    examples = _sorted_by_label(3, 2)
    assert sample_stratified(examples, None, seed=0) == examples
    assert sample_stratified(examples, 5, seed=0) == examples
    assert capsys.readouterr().err == ""
    assert sample_stratified(examples, 9, seed=0, source="my.csv") == examples
    out = capsys.readouterr().err
    assert "note: --limit 9 is larger than my.csv (5 examples); using all of them" in out


def test_load_examples_samples_and_records_it(write_data, synth_reviews, capsys):
    rows = sorted(synth_reviews(40, seed=1), key=lambda r: r["label"])
    path = write_data(rows, "sorted.csv")
    examples, info = load_examples(TASK, data=str(path), limit=10, seed=3)
    assert Counter(e.label for e in examples) == {0: 5, 1: 5}
    assert (info.n_available, info.n, info.limit, info.seed) == (40, 10, 10, 3)
    assert info.to_dict() == {
        "data": {"source": str(path.resolve()), "split": "test", "fingerprint": info.fingerprint, "n_available": 40},
        "sample": {"limit": 10, "seed": 3, "n": 10, "strategy": "stratified"},
    }
    again, _ = load_examples(TASK, data=str(path), limit=10, seed=3)
    other, _ = load_examples(TASK, data=str(path), limit=10, seed=4)
    assert again == examples and other != examples
    everything, info = load_examples(TASK, data=str(path), limit=100)
    assert len(everything) == 40 and info.to_dict()["sample"]["strategy"] == "all"
    assert "note: --limit 100 is larger than" in capsys.readouterr().err
