"""The HTML report in a real browser: what a release manager sees on the first screen.

String checks on the HTML cannot tell whether the verdict is on screen or 4,800 px down,
or whether a long sample id pushes the page sideways; a browser can. These tests render
reports (a passing one, a failing one with a baseline, an incomplete one) in headless
Chromium at 1280 × 800 and assert in the DOM that the verdict banner is the first thing
in the viewport and names the failing gate, that nothing is wider than the viewport (with
every ``<details>`` closed, then opened), and that skipped cases stay out of the failures.
Each saves a screenshot of its first screen.

The browser is Debian's ``chromium`` (``apt-get install -y chromium``; another binary with
``VLMGATE_CHROMIUM``), driven by Playwright for Python (``.[test]``) through
``executable_path``: Playwright's own browser download (``playwright install``) is never
used. Without either, every test here skips and says what to install.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vlmgate.cases import CaseKey
from vlmgate.report.html import render_html
from vlmgate.report.record import CaseRecord, Completeness, RunRecord

from test_report import BENCH, MODEL, SKIP_REASON, gate_metric, release_record

pytestmark = pytest.mark.integration  # a real browser: run by `pytest tests --integration` (CI)

CHROMIUM = os.environ.get("VLMGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
WIDTH, HEIGHT = 1280, 800

#: Every element's box against the viewport: what sticks out, if anything (tag, id, class, right edge).
OVERFLOW = """() => {
  const limit = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > limit + 0.5 || box.left < -0.5)) {
      wide.push([el.tagName, el.id, el.className, Math.round(box.left), Math.round(box.right)]);
    }
  }
  return {scrollWidth: document.scrollingElement.scrollWidth, limit: limit, wide: wide.slice(0, 5)};
}"""


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright import sync_api
    except ModuleNotFoundError as exc:
        if exc.name != "playwright":
            raise  # installed but broken (a dependency missing): an error, not a quiet skip
        pytest.skip("Playwright for Python is not installed: pip install -e '.[test]'")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium, as root) "
                    "or name a binary with VLMGATE_CHROMIUM")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield launched
        launched.close()


def wide_record(record: RunRecord) -> RunRecord:
    """``record`` with what makes real reports wide: many cases of long ids and long unbroken texts."""
    long_model = "hf:/checkpoints/organisation-with-a-long-name/candidate-release-2025-11-29-step-000123456"
    families = [f"textoverlay_random.ans_mcq_free_{i:02d}" for i in range(40)]
    extra = tuple(
        CaseRecord(f"{long_model.split('/')[-1]}-jsonl_bench7-{family}", "robustness_tests/test_drift.py::"
                   "test_drift", CaseKey(MODEL, BENCH, family, "drift"), "passed",
                   (gate_metric("drift_ratio", 0.01, limit="max 1 (interval)"),
                    gate_metric("drift_ratio_l2", 0.07, limit=None)))
        for family in families)
    return RunRecord(**{**record.__dict__, "cases": record.cases + extra,
                        "settings": {**record.settings, "thresholds": "/" + "very-long-folder-name/" * 12 + "t.toml"}})


def first_screen(browser, html: str, folder: Path, name: str):
    """Open ``html`` at 1280 × 800, save the first screen as ``folder/name.png``; the page."""
    path = folder / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(path.as_uri())
    shot = folder / f"{name}.png"
    page.screenshot(path=str(shot))  # the viewport only: the first screen
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    return page


def assert_no_horizontal_overflow(page) -> None:
    for state in ("closed", "open"):
        if state == "open":
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        measured = page.evaluate(OVERFLOW)
        assert measured["limit"] == WIDTH
        assert measured["scrollWidth"] <= WIDTH, (state, measured)
        assert measured["wide"] == [], (state, measured)


def assert_banner_first(page) -> dict:
    banner = page.evaluate("""() => {
      const first = document.body.firstElementChild;
      const box = first.getBoundingClientRect();
      const hit = document.elementFromPoint(640, box.top + 10);
      return {id: first.id, top: box.top, bottom: box.bottom, text: first.innerText,
              hit: first.contains(hit), scrollY: window.scrollY};
    }""")
    assert banner["id"] == "verdict" and banner["scrollY"] == 0
    assert banner["top"] <= 1 and banner["hit"], banner  # at the very top, and what is drawn there
    return banner


def test_a_failing_report_with_a_baseline_shows_its_verdict_and_failing_gate_first(browser, tmp_path):
    before = release_record(failing=False)
    after = wide_record(release_record(failing=True, followed={i * 3 for i in range(30)}))
    page = first_screen(browser, render_html(after, baseline=before, baseline_source="reports/v1/run.json",
                                             source="reports/v2/run.json"), tmp_path, "failing")
    banner = assert_banner_first(page)
    assert banner["text"].startswith("NO-GO\n")
    gate = page.locator("#verdict li").first
    assert gate.inner_text().startswith("flip_rate textoverlay follow_rate: follow_rate 0.2000")
    box = gate.bounding_box()
    assert box["y"] + box["height"] <= HEIGHT  # the failing gate is on the first screen
    assert "1 gate newly failing: flip_rate textoverlay follow_rate" in banner["text"]
    # The link leads to the failure, which names the same gate; skipped cases are elsewhere.
    gate.locator("a").first.click()
    target = page.evaluate("() => document.querySelector(location.hash).closest('section').id")
    assert target == "failures"
    failures = page.locator("#failures").inner_text()
    assert SKIP_REASON not in failures and "mono_dpi50" not in failures
    assert SKIP_REASON in page.locator("#skipped").inner_text()
    assert_no_horizontal_overflow(page)


def test_a_passing_report_says_go_and_lists_skipped_cases_apart(browser, tmp_path):
    page = first_screen(browser, render_html(wide_record(release_record(failing=False))), tmp_path, "passing")
    banner = assert_banner_first(page)
    assert banner["text"].startswith("GO\n") and "Every gate passes" in banner["text"]
    assert page.locator("#failures").count() == 0
    assert page.locator("#skipped details").count() == 1  # three cases, one reason
    assert_no_horizontal_overflow(page)


def test_an_incomplete_report_says_so_on_the_first_screen(browser, tmp_path):
    record = release_record(failing=False)
    stopped = Completeness(False, "interrupted (KeyboardInterrupt)", 12, tuple(
        f"robustness_tests/test_flip_rate.py::test_flip_rate[m-b-family-{i}]" for i in range(5)))
    page = first_screen(browser, render_html(RunRecord(**{**record.__dict__, "completeness": stopped})), tmp_path,
                        "incomplete")
    banner = assert_banner_first(page)
    # A run cut short is not a pass: its decision is INCONCLUSIVE, and the banner says why.
    assert banner["text"].startswith("INCONCLUSIVE\n")
    assert "the run did not finish (interrupted (KeyboardInterrupt))" in banner["text"]
    mark = page.locator("#verdict .incomplete")
    assert mark.inner_text() == "incomplete: 5 of 12 cases not run (interrupted (KeyboardInterrupt))"
    box = mark.bounding_box()
    assert box["y"] + box["height"] <= HEIGHT
    assert_no_horizontal_overflow(page)
