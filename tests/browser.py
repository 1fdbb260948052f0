"""Finding the browser for the browser tests (the report and the demo in headless Chromium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_BROWSER = "TENSER_REQUIRE_BROWSER"  # CI sets it: there a missing browser fails instead of skipping


def find_chromium(configured: str | None = None) -> str:
    """The Chromium binary for the browser tests: skip with the fix when there is none, unless
    $TENSER_REQUIRE_BROWSER is set (as in CI), where a missing browser must fail, never skip silently."""
    candidates = [configured or os.environ.get("CHROMIUM") or "/usr/bin/chromium", "chromium", "chromium-browser"]
    for name in candidates:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    message = (f"headless Chromium not found (tried {', '.join(candidates)}): install it with "
               f"`apt-get install -y chromium` or set CHROMIUM to the browser binary")
    if os.environ.get(REQUIRE_BROWSER):
        pytest.fail(f"{message}; {REQUIRE_BROWSER} is set, so the browser tests must run", pytrace=False)
    pytest.skip(message)

