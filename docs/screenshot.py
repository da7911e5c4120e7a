"""Save the first screen of an HTML report, as a release manager sees it, for the README.

    python docs/screenshot.py REPORT.html docs/report-first-screen.png

Headless Chromium (Debian's ``chromium``, or ``VLMGATE_CHROMIUM``) at 1280 × 800, driven by
Playwright for Python as in ``tests/test_report_browser.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(report: str, out: str) -> int:
    chromium = os.environ.get("VLMGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(Path(report).resolve().as_uri())
        page.screenshot(path=out)
        browser.close()
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
