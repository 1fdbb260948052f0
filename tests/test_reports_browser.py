"""The report in a real browser: headless Chromium opens the file from disk (`file://`,
network features off) and screenshots it; the screenshot must show a rendered page
(many colours, much non-white), not a blank or error page. Needs Chromium
(`apt-get install -y chromium`); without it the test skips with that fix, and fails where
TENSER_REQUIRE_BROWSER is set (CI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reports import render_report
from tests.browser import find_chromium
from tests.report_fixtures import make_run, make_training_log


def _chromium() -> str:
    return find_chromium()


def screenshot(page: Path, png: Path, profile: Path, *, width: int = 1200, height: int = 3000) -> Path:
    """Screenshot `page` with headless Chromium, network features off, into `png`."""
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if not png.is_file():
        pytest.fail(f"Chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return png


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    log = make_training_log(tmp_path / "ft" / "training_log.json")
    runs = [make_run(tmp_path / "before", accuracy=0.72, seed=1),
            make_run(tmp_path / "after", accuracy=0.86, seed=2, model="gpt2-imdb", training_log=log)]
    page = render_report(runs, tmp_path / "report.html")
    png = screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[:2] == (3000, 1200)
    non_white = np.any(pixels < 245, axis=2).mean()
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert non_white > 0.2, f"screenshot is mostly blank ({non_white:.1%} non-white)"
    assert colours > 500, f"screenshot has only {colours} distinct colours: charts and text did not render"
    # The dark masthead spans the top of the page: the stylesheet was applied.
    assert pixels[40, 600].max() < 80, f"masthead pixel {pixels[40, 600].tolist()} is not the dark header colour"
