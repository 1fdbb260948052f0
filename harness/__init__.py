"""Running evaluations: data and model loading, scorers, metrics, run folders,
fine-tuning and the `tenser` command line. Imports `tasks`; never `reports` or `demo`
(except the CLI, which is the composition root and imports them lazily)."""

from __future__ import annotations

__version__ = "0.1.0"
