"""Fixtures shared by test folders: the headless browser the report tests drive.

Debian's /usr/bin/chromium through the playwright package; never `playwright install`,
which downloads a browser. Without them the browser tests skip, except under CI, where a
skip would hide that they did not run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Every audit records into the history store by default (issue 15): tests must neither
# write into the user's own store nor compare with its stale runs. Tests of the store
# name one of their own.
os.environ.setdefault("FLEETAUDIT_HISTORY", "none")

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Per module: a live playwright loop must not outlast the module into asyncio-based tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = []
    if sync_playwright is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium; scripts/setup.sh --dev does)")
    if missing:
        reason = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run them")
        pytest.skip(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


