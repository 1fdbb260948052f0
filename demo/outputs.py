"""Turning answers into what the demo shows: the agree/disagree verdict, the token note
(length and truncation), and the batch table with its CSV download.

Plain functions over `Answer` records, testable without a server. The CSV keeps full
precision; the table on screen rounds.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from demo.predictors import ROLE_TITLES, Answer, Predictor, Role
from tasks import Task
from tasks.kinds import get_kind

PREVIEW_CHARS = 60
SHORT_ROLE: dict[Role, str] = {"pretrained": "pre", "finetuned": "fine"}


def noun(task: Task) -> str:
    """What one input is called on the page: the built-in IMDB tasks take movie reviews, others a text."""
    return "Movie review" if "imdb" in task.tags else "Text"


def verdict(titled: Sequence[tuple[str, Answer]]) -> str:
    """Markdown saying whether the models agree, naming each one's label and probability."""
    labels = {a.label for _, a in titled}
    if len(labels) == 1:
        return f"Both models say **{labels.pop()}**."
    said = "; ".join(f"{title}: **{a.label}** ({a.probs[a.label]:.0%})" for title, a in titled)
    return f"⚠️ **The models disagree.** {said}."


def token_note(answer: Answer, max_tokens: int, truncation_side: str, *, what: str) -> str:
    """Markdown: how many tokens the model read and whether the input (`what`, e.g. "text") was cut to fit."""
    count = f"{answer.n_tokens:,} of {max_tokens:,} tokens"
    if not answer.truncated:
        return f"{count} · not truncated"
    cut = "start" if truncation_side == "left" else "end"
    return f"⚠️ **Truncated**: {count}. The {what.lower()} was too long, so its {cut} was cut, as in evaluation."


def batch_table(texts: Sequence[str], answers: dict[Role, list[Answer]]) -> pd.DataFrame:
    """One row per input text: each model's label, probability per label and truncation; agreement."""
    table: dict[str, list[object]] = {"row": list(range(1, len(texts) + 1)), "text": list(texts)}
    for role, rows in answers.items():
        table[f"{role}_label"] = [a.label for a in rows]
        for label in rows[0].probs if rows else ():
            table[f"{role}_p_{label}"] = [a.probs[label] for a in rows]
        table[f"{role}_truncated"] = [a.truncated for a in rows]
    preds = [table[f"{role}_label"] for role in answers]
    table["agree"] = [len(set(row)) == 1 for row in zip(*preds)]
    return pd.DataFrame(table)


def display_table(df: pd.DataFrame, roles: Sequence[Role], *, what: str) -> pd.DataFrame:
    """The table for the screen: short headers, the input (column `what`) shortened, probabilities to 4 places."""
    shown = pd.DataFrame({"#": df["row"], what.lower(): [_preview(t) for t in df["text"]]})
    for role in roles:
        short = SHORT_ROLE[role]
        shown[ROLE_TITLES[role].lower()] = df[f"{role}_label"]
        for column in (c for c in df.columns if c.startswith(f"{role}_p_")):
            shown[f"{short} P({column.removeprefix(f'{role}_p_')})"] = df[column].round(4)
    shown["agree"] = ["yes" if a else "no" for a in df["agree"]]
    cut = zip(*(df[f"{role}_truncated"] for role in roles))
    shown["truncated"] = [", ".join(SHORT_ROLE[r] for r, c in zip(roles, flags) if c) for flags in cut]
    return shown


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def batch_summary(df: pd.DataFrame, roles: Sequence[Role], *, what: str) -> str:
    """Markdown: how many inputs (`what`, e.g. "text"), how many disagreements, how many truncated per model."""
    n, disagree = len(df), int((~df["agree"]).sum())
    parts = [f"Scored **{n}** {what.lower()}{'s' if n != 1 else ''}",
             f"the models disagree on **{disagree}**" if disagree else "the models agree on all of them"]
    for role in roles:
        cut = int(df[f"{role}_truncated"].sum())
        if cut:
            parts.append(f"{cut} truncated for the {ROLE_TITLES[role].lower()} model")
    return "; ".join(parts) + "."


def write_csv(df: pd.DataFrame, folder: Path) -> Path:
    """Write the full-precision table to a new CSV file in `folder`; return its path."""
    path = folder / uuid.uuid4().hex / "tenser_demo_predictions.csv"
    path.parent.mkdir(parents=True)
    # Every text cell quoted: pandas leaves a bare carriage return unquoted, which splits the row.
    df.map(neutralise_formula).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return path


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula


def neutralise_formula(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula (`=HYPERLINK(...)`) gets a leading `'`, which
    shows the text as it is (OWASP's CSV-injection advice); other cells are unchanged.

    >>> neutralise_formula("=1+1"), neutralise_formula("great film"), neutralise_formula(-0.5)
    ("'=1+1", 'great film', -0.5)
    """
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell


def model_heading(predictor: Predictor) -> str:
    """Markdown heading for one model's column: role, short model name, how it scores."""
    name = predictor.name
    short = Path(name.rstrip("/")).name if Path(name).exists() else name
    how = "zero-shot prompt" if get_kind(predictor.task.kind).prompted else "classification head"
    return f"### {predictor.title}: `{short}`\n{how} · task `{predictor.task.name}` · {predictor.encoder.max_tokens:,} tokens max"
