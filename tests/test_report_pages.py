"""``report.html`` of a certification and of a matrix, rendered by a real browser: Debian's Chromium, headless,
driven by Playwright.

Each page must render with its verdict visible, every plot decoded, and no
console error; a hostile subject's name is shown as text and runs nothing.
Without Chromium these skip, but not in CI (``CI`` set), whose ``.ci/run``
installs it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from optspec.conformance import report
from optspec.conformance.cli import main
from tests.test_report import certificate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    assert CHROMIUM is not None, "CI must install Chromium (apt-get install chromium): .ci/run does"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (the test extra has it)")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Rendered:
    """A page as the browser showed it: its text, its images' decoded widths, what the console logged, and
    any dialog a script opened."""

    def __init__(self, browser, path: Path) -> None:
        page = browser.new_page()
        self.console: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        self.text = page.inner_text("body")
        self.image_widths = page.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
        self.visible = page.is_visible
        self.page = page

    @property
    def errors(self) -> list[str]:
        return [line for line in self.console if line.startswith(("error", "pageerror"))]


def test_a_failing_certification_page_shows_the_verdict_the_evidence_and_its_plot(browser, tmp_path):
    code = main(["certify", "--framework", "numpy", "--impl", "spec.adamw", "--convention", "optax",
                 "--examples", "5", "--out", str(tmp_path)])
    assert code == 1
    shown = Rendered(browser, tmp_path / "report.html")
    assert not shown.errors, shown.console
    assert shown.page.get_by_text("Verdict: does not conform").is_visible()
    assert "most likely knob: amsgrad=raw" in shown.text
    assert "optspec certify --framework numpy --impl spec.adamw --convention optax" in shown.text
    plots = sorted(tmp_path.glob("errors-*.png"))
    assert plots and len(shown.image_widths) == len(plots) and all(w > 0 for w in shown.image_widths), \
        shown.image_widths


def test_a_matrix_page_shows_the_table_and_its_verdicts(browser, tmp_path):
    code = main(["matrix", "--framework", "numpy", "--impl", "spec.adamw", "--examples", "2",
                 "--out", str(tmp_path)])
    shown = Rendered(browser, tmp_path / "report.html")
    assert not shown.errors, shown.console
    assert shown.page.get_by_role("heading", name="optspec matrix").is_visible()
    assert "spec.adamw" in shown.text and "differs" in shown.text
    assert code == 0 and all(w > 0 for w in shown.image_widths), shown.image_widths


def test_a_hostile_subject_name_is_text_on_the_page_and_runs_nothing(browser, tmp_path):
    hostile = "<script>alert('name')</script><img src=x onerror=alert('img')>"
    cert = certificate(0, failing=True, subject=hostile)
    cert = dataclasses.replace(cert, failure=dataclasses.replace(
        cert.failure, detail=f"{hostile} diverged", reproduce_cli=f"optspec certify --impl '{hostile}'"))
    report.write([cert], tmp_path)
    shown = Rendered(browser, tmp_path / "report.html")
    assert not shown.dialogs and not shown.errors, (shown.dialogs, shown.console)
    assert f"optspec certificate: {hostile}" in shown.text and f"{hostile} diverged" in shown.text
    plots = sorted(tmp_path.glob("errors-*.png"))
    assert len(shown.image_widths) == len(plots)  # the name's <img> is text, not an element


def test_the_ecosystem_scoreboard_page_shows_every_row_its_plots_and_filters_by_framework(browser):
    from tools import ecosystem
    from tools.ecosystem_rows import IMPLEMENTATIONS

    rows = ecosystem.load(ecosystem.DEFAULT_DIR)
    shown = Rendered(browser, ecosystem.DEFAULT_DIR / "index.html")
    assert not shown.errors, shown.console
    assert shown.page.get_by_role("heading", name="Real optimizers, certified").is_visible()
    for impl, row in zip(IMPLEMENTATIONS, rows):
        cells = shown.page.locator(f"#row-{impl.slug} td").all_inner_texts()
        assert cells[0] == impl.name and all(f"{v.dtype}: {v.verdict}" in cells[5] for v in row.verdicts), cells
    plotted = sum(1 for row in rows for v in row.verdicts if len([e for e in v.errors if e[0] > 0 and e[1] > 0]) > 1)
    assert plotted and shown.page.locator("table svg").count() == plotted
    assert all(box["width"] > 0 for box in (svg.bounding_box() for svg in shown.page.locator("table svg").all()))
    # the framework filter hides every other framework's rows (CSS alone: the page runs no script)
    torch_rows = [impl for impl in IMPLEMENTATIONS if impl.framework == "torch"]
    other = next(impl for impl in IMPLEMENTATIONS if impl.framework != "torch")
    assert shown.visible(f"#row-{other.slug}")
    shown.page.click("label[for=framework-torch]")
    assert not shown.visible(f"#row-{other.slug}") and all(shown.visible(f"#row-{i.slug}") for i in torch_rows)
    shown.page.click("label[for=verdict-differs]")
    differing = {row.name for row in rows if any(v.verdict == "does not conform" for v in row.verdicts)}
    assert all(shown.visible(f"#row-{i.slug}") == (i.name in differing) for i in torch_rows)
    assert not shown.errors, shown.console
