"""lm-evaluation-harness task YAML -> a Tenser task file (TOML text with one [[family]] table).

Only what maps one to one is converted: `output_type: multiple_choice`, a fixed `doc_to_choice`
list, a `doc_to_text` of literal text and plain `{{field}}` placeholders, `doc_to_target` naming
the label column, `target_delimiter`, the dataset and its splits, and `include:` of a sibling
file. Anything else (Jinja filters or statements, expressions, per-example choices, `!function`
code, generation and rolling-loglikelihood tasks, unknown keys) raises TaskError naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tasks.registry import TaskError

# Keys that change nothing Tenser scores: bookkeeping, lm-eval's own metrics (Tenser reports its
# own), decontamination, and few-shot formatting Tenser does its own way.
IGNORED = frozenset({"tag", "group", "group_alias", "task_alias", "metadata", "metric_list",
                     "should_decontaminate", "doc_to_decontamination_query", "fewshot_split",
                     "fewshot_delimiter", "fewshot_config", "unsafe_code", "repeats"})
CONVERTED = frozenset({"task", "include", "output_type", "dataset_path", "dataset_name", "dataset_kwargs",
                       "training_split", "validation_split", "test_split", "doc_to_text", "doc_to_target",
                       "doc_to_choice", "target_delimiter", "description", "num_fewshot"})
FIELD = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Function(str):
    """The argument of a `!function` tag: Python code Tenser will not run."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps `!function` as a marker instead of failing on the unknown tag."""


_Loader.add_constructor("!function", lambda loader, node: Function(loader.construct_scalar(node)))


def convert_file(path: str | Path) -> str:
    """The TOML task file for the lm-eval task YAML at `path` (TaskError when it cannot be converted)."""
    path = Path(path).expanduser()
    config = load_config(path)
    return to_toml(family_fields(config, path.name), header=_header(path, config))


def load_config(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML at `path` with its `include:` chain merged in (the including file wins)."""
    if not path.is_file():
        raise TaskError(f"--from-lm-eval {path}: no such file")
    if path.resolve() in seen:
        raise TaskError(f"--from-lm-eval {path}: include loop ({' -> '.join(p.name for p in seen)})")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as exc:
        raise TaskError(f"--from-lm-eval {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise TaskError(f"--from-lm-eval {path}: expected a mapping of task settings, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str) or not (path.parent / include).is_file():
        raise TaskError(f"{path.name}: include {include!r} is not a YAML file next to it; copy the included "
                        f"file beside it")
    return {**load_config(path.parent / include, (*seen, path.resolve())), **data}


def family_fields(config: dict[str, Any], source: str) -> dict[str, Any]:
    """A zero-shot Tenser task's fields (a [[family]] table) from a merged lm-eval config."""
    _refuse_unsupported(config, source)
    choices = _choices(config.get("doc_to_choice"), source)
    template = config["doc_to_text"]
    if isinstance(template, str) and NAME.fullmatch(template):  # lm-eval reads a bare column name as that column
        template = "{{" + template + "}}"
    fields = _fields(template, source, "doc_to_text")
    prompt = _prompt(template, fields)
    delimiter = config.get("target_delimiter", " ")
    if not isinstance(delimiter, str):
        raise TaskError(f"{source}: target_delimiter {delimiter!r} must be a string")
    entry: dict[str, Any] = {"name": _name(config["task"], source) + "_zeroshot", "labels": choices}
    entry.update(_dataset(config, source))
    entry["text_column"] = fields[0]
    if len(fields) == 2:
        entry["pair_column"] = fields[1]  # issue 21: the classifier twin encodes (text, pair)
    entry["label_column"] = _target(config.get("doc_to_target"), source)
    entry["prompt"] = _description(config, source) + prompt
    entry["label_words"] = [delimiter + c for c in choices]
    if config.get("num_fewshot"):
        entry["shots"] = int(config["num_fewshot"])
    return entry


def _refuse_unsupported(config: dict[str, Any], source: str) -> None:
    kind = config.get("output_type", "generate_until")  # lm-eval's default output_type
    if kind != "multiple_choice":
        raise TaskError(f"{source}: output_type {kind} is not a classification task; only multiple_choice converts")
    if not isinstance(config.get("task"), str):
        raise TaskError(f"{source}: task {config.get('task')!r} must be one task name; convert each task's YAML")
    for key, value in config.items():
        if isinstance(value, Function) and key not in IGNORED:
            raise TaskError(f"{source}: {key}: !function {value} is Python code; Tenser converts templates only")
        if key not in IGNORED | CONVERTED:
            raise TaskError(f"{source}: {key} is not convertible to a Tenser task; remove it or write the task by hand")
    if "doc_to_text" not in config:
        raise TaskError(f"{source}: no doc_to_text; Tenser needs the prompt template")


def _choices(value: Any, source: str) -> list[str]:
    if isinstance(value, str):
        raise TaskError(f"{source}: doc_to_choice {value!r} gives per-example choices; Tenser needs a fixed list")
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(c, (str, int, float)) for c in value):
        raise TaskError(f"{source}: doc_to_choice {value!r} must be a fixed list of at least two choices")
    choices = [str(c) for c in value]
    if len(set(choices)) != len(choices) or not all(c.strip() for c in choices):
        raise TaskError(f"{source}: doc_to_choice {value!r} must be distinct, non-blank choices")
    return choices


def _fields(template: Any, source: str, key: str) -> list[str]:
    """The data columns a template names, in order (TaskError for anything beyond `{{field}}`)."""
    if not isinstance(template, str):
        raise TaskError(f"{source}: {key} {template!r} must be a template string")
    for jinja in ("{%", "{#"):
        if jinja in template:
            raise TaskError(f"{source}: {key} uses Jinja statements or comments ({jinja} ...); only {{{{field}}}} "
                            f"placeholders convert")
    fields = []
    for inner in FIELD.findall(template):
        expr = inner.strip()
        if "|" in expr:
            raise TaskError(f"{source}: {key} uses a Jinja filter {{{{{expr}}}}}; only {{{{field}}}} placeholders convert")
        if not NAME.fullmatch(expr):
            raise TaskError(f"{source}: {key} uses the expression {{{{{expr}}}}}; only {{{{field}}}} placeholders convert")
        if expr in fields:
            raise TaskError(f"{source}: {key} uses {{{{{expr}}}}} twice; Tenser fills each field once")
        fields.append(expr)
    if not fields and key == "doc_to_text":
        raise TaskError(f"{source}: doc_to_text {template!r} names no field; it must show the example")
    return fields


def _prompt(template: str, fields: list[str]) -> str:
    """`{{field}}` -> `{field}`; a single field becomes `{text}`, which every Tenser version reads."""
    if len(fields) == 1:
        return FIELD.sub("{text}", template)
    return FIELD.sub(lambda m: "{" + m.group(1).strip() + "}", template)


def _target(value: Any, source: str) -> str:
    if isinstance(value, str) and NAME.fullmatch(value.strip()):
        return value.strip()
    if isinstance(value, str) and "{" in value:
        fields = _fields(value, source, "doc_to_target")
        if len(fields) == 1 and FIELD.fullmatch(value.strip()):
            return fields[0]
    if isinstance(value, int):
        raise TaskError(f"{source}: doc_to_target {value} is one fixed answer for every example; Tenser reads "
                        f"each example's label from a column")
    raise TaskError(f"{source}: doc_to_target {value!r} must name the label column (e.g. label or {{{{label}}}})")


def _dataset(config: dict[str, Any], source: str) -> dict[str, Any]:
    split = config.get("test_split") or config.get("validation_split")  # lm-eval scores test first
    if not split:
        raise TaskError(f"{source}: no test_split or validation_split; Tenser needs the split to score")
    out: dict[str, Any] = {"dataset": str(config.get("dataset_path", "")), "split": str(split)}
    kwargs = config.get("dataset_kwargs")
    if kwargs is not None:
        out["dataset"] = _data_files(kwargs, out["dataset"], source)
    elif config.get("dataset_name") is not None:
        out["dataset_config"] = str(config["dataset_name"])
    if config.get("training_split"):
        out["train_split"] = str(config["training_split"])
    return out


def _data_files(kwargs: Any, builder: str, source: str) -> str:
    """Local files (`dataset_path: parquet|csv|json` with `data_files`) as a Tenser dataset path."""
    files = kwargs.get("data_files") if isinstance(kwargs, dict) and set(kwargs) == {"data_files"} else None
    if builder not in ("parquet", "csv", "json") or files is None:
        raise TaskError(f"{source}: dataset_kwargs {kwargs!r} is not convertible; only data_files with "
                        f"dataset_path parquet, csv or json is")
    if isinstance(files, str):
        return files
    paths = [Path(p) for p in files.values()] if isinstance(files, dict) else []
    if not paths or not all(isinstance(p, str) for p in files.values()) or len({p.parent for p in paths}) != 1 \
            or any(p.stem != split for split, p in zip(files, paths)):
        raise TaskError(f"{source}: data_files {files!r} must be one file, or SPLIT.EXT files in one folder")
    return str(paths[0].parent)


def _description(config: dict[str, Any], source: str) -> str:
    text = config.get("description", "")
    if not isinstance(text, str) or _fields(text, source, "description"):
        raise TaskError(f"{source}: description {text!r} must be plain text to convert")
    return text


def _name(task: str, source: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", task)
    if not name.strip("_-"):
        raise TaskError(f"{source}: task name {task!r} has no letters or digits")
    return name


def _header(path: Path, config: dict[str, Any]) -> str:
    base = _name(config["task"], path.name)
    return (f"# Converted from the lm-evaluation-harness task YAML {path.name} (task {config['task']!r}).\n"
            f"# Family {base!r}: {base}_zeroshot and its classifier twin {base}_classifier.\n")


def to_toml(entry: dict[str, Any], header: str = "") -> str:
    """`entry` as one [[family]] TOML table."""
    lines = [header + "[[family]]"]
    for key, value in entry.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"no TOML form for {value!r}")
    if isinstance(value, int):
        return str(value)
    # JSON string escapes are TOML basic-string escapes; TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
