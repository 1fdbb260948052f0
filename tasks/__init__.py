"""What to evaluate: the `Task` record, the task registry and the built-in IMDB tasks.

A task is plain data. `register_task` adds one, `get_task` fetches one (with field
overrides), `list_tasks` lists them. This package imports nothing else of Tenser's.
"""

from __future__ import annotations

from tasks import imdb as _imdb  # noqa: F401  (registers the built-in tasks)
from tasks.registry import (
    Task,
    TaskError,
    get_task,
    include_file,
    list_tasks,
    prompt_variants,
    register_task,
)

__all__ = ["Task", "TaskError", "get_task", "include_file", "list_tasks", "prompt_variants", "register_task"]
