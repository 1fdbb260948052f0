"""What to evaluate: the `Task` record, task families, the registry, task files and the
built-in IMDB tasks.

A task is plain data. `register_task` adds one, `register_family` a zero-shot task with its
classifier twin, `get_task` fetches one (with field overrides), `list_tasks` lists them,
`include_file` loads a task file once. This package imports nothing else of Tenser's.
"""

from __future__ import annotations

from tasks import imdb as _imdb  # noqa: F401  (registers the built-in tasks)
from tasks.families import Family, get_family, list_families, register_family
from tasks.files import include_file
from tasks.registry import (
    Task,
    TaskError,
    get_task,
    list_tasks,
    prompt_variants,
    register_task,
    task_from_dict,
)

__all__ = ["Family", "Task", "TaskError", "get_family", "get_task", "include_file", "list_families", "list_tasks",
           "prompt_variants", "register_family", "register_task", "task_from_dict"]
