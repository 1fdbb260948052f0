"""Screenshot of the demo with real models, for the README (not part of the test suite).

    python docs/screenshot_demo.py PRETRAINED FINETUNED OUT.png [REVIEW]

Starts `demo.app.serve` on a free port, drives headless Chromium with the browser test's
helpers (type a review, click Classify, wait for both answers) and saves the screenshot.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests"), str(Path(__file__).resolve().parents[1])]

import demo_fixtures  # noqa: E402
import test_demo_browser as browser_test  # noqa: E402

from demo.app import serve  # noqa: E402


def _patient(wait_for):  # real models on a busy CPU answer slower than the tiny test models
    def wait(self, expression, timeout=300.0):
        return wait_for(self, expression, timeout)
    return wait


browser_test.Browser.wait_for = _patient(browser_test.Browser.wait_for)


def main() -> None:
    pretrained, finetuned, out = sys.argv[1:4]
    if len(sys.argv) > 4:
        browser_test.REVIEW = sys.argv[4]
    app = serve(pretrained, finetuned, port=demo_fixtures.free_port(), prevent_thread_lock=True)
    try:
        with tempfile.TemporaryDirectory() as tmp, browser_test.open_browser(Path(tmp)) as browser:
            browser_test.drive_page(browser, app.local_url, Path(out))
    finally:
        app.close()
    print(out)


if __name__ == "__main__":
    main()
