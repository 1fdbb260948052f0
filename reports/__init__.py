"""Reports: run folders in, one self-contained HTML report out (Jinja2 templates,
seaborn charts embedded as PNG, no network, no JavaScript). `render_report` is the
whole public API; it reads recorded runs and never runs a model.
"""

from __future__ import annotations

from reports.render import render_report

__all__ = ["render_report"]
