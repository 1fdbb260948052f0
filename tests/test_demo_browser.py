"""A real-browser test of the demo: headless Chromium, driven over the Chrome DevTools
protocol on a pipe (no driver, no extra Python packages), types a review, clicks
Classify, and checks the page shows both models' answers, then takes a screenshot.

Needs Chromium (`apt-get install -y chromium`); without one the test skips with that fix, and
fails where TENSER_REQUIRE_BROWSER is set (CI). Set CHROMIUM to another binary, and TENSER_DEMO_SCREENSHOT to a path to keep the screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_fixtures  # noqa: E402
from browser import find_chromium  # noqa: E402

from demo.sample_reviews import SAMPLE_REVIEWS  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe"]
WIDTH, HEIGHT = 1280, 1500
REVIEW = dict(SAMPLE_REVIEWS)["Mixed opinion"]


class Browser:
    """Headless Chromium and one page, spoken to over the DevTools pipe (fds 3 and 4)."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child, before exec: the protocol reads fd 3 and writes fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        with open(log, "wb") as err:
            self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         close_fds=False, preexec_fn=wire_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                reply = json.loads(message)
                if "id" in reply:
                    self._replies.put(reply)

    def send(self, method: str, params: dict[str, Any] | None = None, *, page: bool = False,
             timeout: float = 20) -> dict[str, Any]:
        """Send one command (to the page's session if `page`) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._replies.get(timeout=timeout)
            if reply["id"] == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, page=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll until `expression` is truthy in the page; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := self.js(expression):
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for: {expression}")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (once it is there)."""
        self.wait_for(f"document.querySelector({json.dumps(selector)}) !== null")
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
                      f" const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1}, page=True)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, queue.Empty, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)


@contextlib.contextmanager
def open_browser(tmp: Path) -> Iterator[Browser]:
    """Start headless Chromium; a missing binary skips the test with the fix (fails under CI's
    TENSER_REQUIRE_BROWSER)."""
    browser = Browser(find_chromium(CHROMIUM), tmp / "profile", tmp / "chromium.log")
    try:
        yield browser
    finally:
        browser.close()


def text_of(b: Browser, selector: str) -> str:
    return str(b.js(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))


def test_browser_shows_both_models_answers(tmp_path: Path) -> None:
    from gradio_client import Client

    shot = Path(os.environ.get("TENSER_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    with open_browser(tmp_path) as browser:
        app = demo_fixtures.start_demo(demo_fixtures.save_tiny_models(tmp_path / "models"))
        try:
            want = Client(app.local_url, verbose=False, analytics_enabled=False).predict(REVIEW, api_name="/classify")
            drive_page(browser, app.local_url, shot)
        finally:
            app.close()
        for role, label in (("pretrained", want[1]), ("finetuned", want[4])):
            shown = text_of(browser, f"#{role}-label")
            assert label["label"] in shown and f"{label['confidences'][0]['confidence']:.0%}" in shown, shown
            assert "of 128 tokens · not truncated" in text_of(browser, f"#{role}-note")
        prompt = browser.js("document.querySelector('#pretrained-prompt textarea').value")
        assert prompt == f"Review: {REVIEW}\nSentiment:"
        assert text_of(browser, "#verdict").strip() == want[0].replace("**", "")
    check_screenshot(shot)


def drive_page(b: Browser, url: str, shot: Path) -> None:
    """Open the demo, type the review, click Classify, wait for the answers, save a screenshot."""
    b.send("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1,
                                                  "mobile": False}, page=True)
    b.send("Page.navigate", {"url": url}, page=True)
    b.wait_for("document.readyState === 'complete' && document.querySelector('#review textarea') !== null")
    b.js("document.querySelector('#review textarea').focus()")
    b.send("Input.insertText", {"text": REVIEW}, page=True)
    b.wait_for(f"document.querySelector('#review textarea').value === {json.dumps(REVIEW)}")
    b.click("#classify")
    b.wait_for("document.querySelector('#finetuned-note')?.innerText.includes('tokens')")
    b.js("window.scrollTo(0, 0)")
    time.sleep(0.3)  # let the label bars finish their transition before the picture
    png = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png"}, page=True)["data"])
    shot.write_bytes(png)


def check_screenshot(path: Path) -> None:
    """The screenshot is the full viewport and not blank: text, bars and the orange button."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    colours: list[tuple[int, tuple[int, int, int]]] = image.getcolors(maxcolors=1 << 20) or []  # type: ignore[assignment]
    assert len(colours) > 200, "screenshot looks blank"
    orange = sum(n for n, (r, g, b) in colours if r > 200 and 80 < g < 180 and b < 80)
    assert orange > 500, "primary (orange) button or label bars not visible"
