"""The Gradio app: `build_app` lays out the single-review and batch tabs over two loaded
models; `serve` loads both models once, then launches the app (local, no telemetry, no
share link unless asked). `classify_review` and `classify_batch` are the event handlers,
plain functions of the predictors, testable without a server.

Requests go through Gradio's queue: at most `CONCURRENCY` run at once across both tabs,
at most `QUEUE_SIZE` wait; each model additionally scores one request at a time.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from demo.inputs import EMPTY_REVIEW, MAX_CHARS, MAX_ROWS, TEXT_COLUMN, check_fields, read_batch
from demo.outputs import (
    batch_summary,
    batch_table,
    display_table,
    model_heading,
    noun,
    token_note,
    verdict,
    write_csv,
)
from demo.pairing import check_pair
from demo.predictors import Predictor
from demo.sample_reviews import SAMPLE_REVIEWS
from harness.backends.base import Backend
from harness.backends.registry import checkpoint_kind, load_backend, model_kind
from harness.errors import UserError, renamed_params
from tasks import Task, get_family, get_task
from tasks.fields import input_columns
from tasks.kinds import get_kind, kind_for_model

CONCURRENCY = 4  # requests in flight; the per-model locks keep scoring itself serial per model
QUEUE_SIZE = 64  # waiting requests beyond this are turned away with "queue full"
MAX_UPLOAD = "5mb"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Small table headers that wrap between words, not inside them ("P(negative)" stays whole).
CSS = "#batch-table th, #batch-table th * { font-size: 12px; word-break: normal !important; overflow-wrap: normal; }"
ReviewOutputs = tuple[Any, ...]  # verdict, then (probabilities, token note, prompt) per model


def classify_review(predictors: Sequence[Predictor], *texts: str | None) -> ReviewOutputs:
    """Verdict markdown, then for each model: label probabilities, token note, exact prompt (one text per field)."""
    try:
        review = check_fields(texts, input_columns(predictors[0].task))
        answers = [p.answer([review])[0] for p in predictors]
    except UserError as exc:
        notice = str(exc) if str(exc) == EMPTY_REVIEW else f"⚠️ {exc}"
        return (notice,) + (None, "", "") * len(predictors)
    columns: tuple[Any, ...] = ()
    for p, a in zip(predictors, answers):
        columns += (a.probs, token_note(a, p.encoder.max_tokens, p.task.truncation_side, what=noun(p.task)), a.prompt)
    return (verdict([(p.title, a) for p, a in zip(predictors, answers)]),) + columns


def classify_batch(
    predictors: Sequence[Predictor], pasted: str | None, csv_path: str | None, folder: Path
) -> tuple[str, pd.DataFrame | None, str | None]:
    """Summary markdown, the table to show, and the path of the full-precision CSV."""
    try:
        texts = read_batch(pasted, csv_path, input_columns(predictors[0].task))
        answers = {p.role: p.answer(texts) for p in predictors}
    except UserError as exc:
        return f"⚠️ {exc}", None, None
    df, roles, what = batch_table(texts, answers), [p.role for p in predictors], noun(predictors[0].task)
    return batch_summary(df, roles, what=what), display_table(df, roles, what=what), str(write_csv(df, folder))


def build_app(
    pretrained: Backend, finetuned: Backend, *, pretrained_task: Task | str, finetuned_task: Task | str,
    train_data: str | None = None, seed: int = 0,
) -> gr.Blocks:
    """The demo app over two loaded models and their tasks (names or Task records); few-shot
    demonstrations are drawn from `train_data` (default: the task's train split) with `seed`."""
    predictors = (
        Predictor.create("pretrained", pretrained, _task(pretrained_task), train_data=train_data, seed=seed),
        Predictor.create("finetuned", finetuned, _task(finetuned_task), train_data=train_data, seed=seed),
    )
    task = predictors[0].task
    with gr.Blocks(title=f"Tenser demo: {task.name}", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"# Tenser: pretrained vs fine-tuned\n**{task.description or task.name}**. One "
                    f"{noun(task).lower()}, two models, labels {', '.join(task.labels)}: does fine-tuning change "
                    "the answer? Both are scored exactly as `tenser run` scores them (same prompt, "
                    "demonstrations and calibration).")
        with gr.Tab(f"Single {noun(task).lower()}"):
            _single_tab(predictors)
        with gr.Tab("Batch"):
            _batch_tab(predictors)
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return app


def _task(task: Task | str) -> Task:
    return get_task(task) if isinstance(task, str) else task


def _single_tab(predictors: Sequence[Predictor]) -> None:
    what, fields = noun(predictors[0].task), input_columns(predictors[0].task)
    boxes = [gr.Textbox(label=what, lines=6, max_lines=16, elem_id="review",
                        placeholder=f"Paste or type a {what.lower()}…", info=f"At most {MAX_CHARS:,} characters.")]
    if len(fields) > 1:  # one box per input field, labelled by its column
        boxes = [gr.Textbox(label=name, lines=3, max_lines=12, elem_id=f"field-{i}", info=f"At most {MAX_CHARS:,} "
                            "characters.") for i, name in enumerate(fields)]
    review = boxes[0]
    with gr.Row():
        button = gr.Button("Classify", variant="primary", elem_id="classify")
        clear = gr.ClearButton(value="Clear")
    verdict_box = gr.Markdown(elem_id="verdict")
    outputs: list[gr.components.Component] = [verdict_box]
    with gr.Row(equal_height=False):
        for p in predictors:
            with gr.Column():
                outputs += _answer_column(p)
    clear.add([*boxes, *outputs])
    gr.on([button.click, *(b.submit for b in boxes)], lambda *texts: classify_review(predictors, *texts),
          inputs=boxes, outputs=outputs, api_name="classify", concurrency_id="models")
    if "imdb" in predictors[0].task.tags and len(fields) == 1:  # the examples are movie reviews
        gr.Examples([[text] for _, text in SAMPLE_REVIEWS], inputs=review, example_labels=[name for name, _ in SAMPLE_REVIEWS],
                    label="Examples (written for this demo, some deliberately hard)")


def _answer_column(p: Predictor) -> list[gr.components.Component]:
    gr.Markdown(model_heading(p))
    label = gr.Label(label=f"{p.title}: probability of each label", num_top_classes=len(p.task.labels),
                     elem_id=f"{p.role}-label")
    note = gr.Markdown(elem_id=f"{p.role}-note")
    what = "prompt" if get_kind(p.task.kind).prompted else "input"
    prompt = gr.Textbox(label=f"Exact {what} scored (decoded tokens, after truncation)", lines=4, max_lines=10,
                        interactive=False, buttons=["copy"], elem_id=f"{p.role}-prompt")
    return [label, note, prompt]


def _batch_tab(predictors: Sequence[Predictor]) -> None:
    scratch = tempfile.TemporaryDirectory(prefix="tenser-demo-")  # removed at exit; Gradio serves copies
    fields = input_columns(predictors[0].task)
    lines, columns = f"{noun(predictors[0].task)}s, one per line", f"a `{TEXT_COLUMN}` column"
    if len(fields) > 1:
        lines = f"One row per line, its fields separated by tabs: {', '.join(fields)}"
        columns = "columns " + ", ".join(f"`{f}`" for f in fields)
    with gr.Row():
        pasted = gr.Textbox(label=lines, lines=8, max_lines=16, elem_id="batch-text")
        upload = gr.File(label=f"…or a CSV file with {columns} (used instead of the box)",
                         file_types=[".csv"], type="filepath", elem_id="batch-file")
    gr.Markdown(f"At most {MAX_ROWS} {noun(predictors[0].task).lower()}s of {MAX_CHARS:,} characters each. "
                "Probabilities are rounded here; the CSV download has full precision.")
    button = gr.Button("Classify all", variant="primary", elem_id="classify-batch")
    summary = gr.Markdown(elem_id="batch-summary")
    table = gr.Dataframe(label="Predictions", interactive=False, wrap=True, elem_id="batch-table",
                         column_widths=_column_widths(predictors))
    download = gr.File(label="Download predictions (CSV)", interactive=False, elem_id="batch-download")
    button.click(lambda text, path: classify_batch(predictors, text, path, Path(scratch.name)), inputs=[pasted, upload],
                 outputs=[summary, table, download], api_name="classify_batch", concurrency_id="models")


def _column_widths(predictors: Sequence[Predictor]) -> list[str | int]:
    """Widths for the shown table: #, review, then per model label and probabilities, agree, truncated."""
    rest = 2 + sum(1 + len(p.task.labels) for p in predictors)
    widths: list[str | int] = ["3%", "24%"]
    return widths + [f"{73 / rest:.2f}%"] * rest


def serve(
    pretrained: str,
    finetuned: str,
    *,
    task: str = "imdb",
    overrides: dict[str, str] | None = None,
    train_data: str | None = None,
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    device: str = "auto",
    dtype: str = "auto",
    allow_pickle: bool = False,
    prevent_thread_lock: bool = False,
    prefix_cache: bool = True,
) -> gr.Blocks:
    """Load both models once (a bad path raises UserError here), then launch the demo.

    `task` names a family (or either of its tasks): the pretrained LM is scored on its zero-shot
    task, the fine-tuned checkpoint on its classifier task (or, prompt-tuned, the zero-shot one);
    `overrides` are `-T` field values.
    """
    _check_port(host, port)
    check_pair(pretrained, finetuned)
    family = get_family(task)
    zeroshot = family.task("zeroshot", **(overrides or {}))
    finetuned_task = family.task(kind_for_model(checkpoint_kind(finetuned, strict=False)).name, **(overrides or {}))
    print(f"loading pretrained model {pretrained} ({zeroshot.name}) …", file=sys.stderr)
    with renamed_params({"model": "pretrained"}):  # loading speaks of `model`; the demo has two models
        pre = load_backend(pretrained, model_kind(zeroshot), device=device, dtype=dtype, allow_pickle=allow_pickle,
                           task=zeroshot.name, prefix_cache=prefix_cache)
    print(f"loading fine-tuned model {finetuned} ({finetuned_task.name}) …", file=sys.stderr)
    with renamed_params({"model": "finetuned"}):
        fin = load_backend(finetuned, model_kind(finetuned_task), device=device, dtype=dtype,
                           allow_pickle=allow_pickle, task=finetuned_task.name, prefix_cache=prefix_cache)
    app = build_app(pre, fin, pretrained_task=zeroshot, finetuned_task=finetuned_task, train_data=train_data,
                    seed=seed)
    if host not in LOCAL_HOSTS:
        print(f"warning: --host {host} makes the demo reachable from other machines", file=sys.stderr)
    # No server-side rendering (needs Node), no MCP endpoint, no run history kept in browsers.
    app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=prevent_thread_lock,
               show_error=True, ssr_mode=False, mcp_server=False, run_history=False, max_file_size=MAX_UPLOAD,
               footer_links=["api", "settings"], css=CSS)
    return app


def _check_port(host: str, port: int) -> None:
    """Fail before loading models when the port is out of range or taken."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port}: choose a port between 1 and 65535")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            s.bind((host, port))
    except OSError as exc:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another port") from None
