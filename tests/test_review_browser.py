"""End-to-end tests of doseatlas review in Debian's chromium, driven by Playwright (never ``playwright
install``: the browser comes from the system, scripts/setup_browser.sh installs it). Skipped with a reason when
chromium or playwright is absent, failed under CI=true."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from doseatlas import schemas as S
from doseatlas.review.apply import review_ids

from review_run import EVIL, make_run

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip
#: when set, the tests save their screenshots there (docs/img/review_*.png are made so)
SHOTS = os.environ.get("DOSEATLAS_REVIEW_SCREENSHOTS")


def _absent(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI must run the browser tests: scripts/setup_browser.sh)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api") if os.environ.get("CI") != "true" else None
    if sync_api is None:
        from playwright import sync_api
    if CHROMIUM is None:
        _absent("no chromium (scripts/setup_browser.sh installs Debian's)")
    import uvicorn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from doseatlas.review.app import make_app
    base = tmp_path_factory.mktemp("browser")
    run_dir, db = make_run(base), base / "reviews.sqlite"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(make_app(run_dir, db=db), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield {"page": browser.new_page(viewport={"width": 1280, "height": 900}), "url": f"http://127.0.0.1:{port}",
               "run_dir": run_dir, "db": db}  # fmt: skip
        browser.close()
    server.should_exit = True
    thread.join(timeout=10)


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"review_{name}.png"), full_page=False)


def test_list_loads_and_filters(served):
    page = served["page"]
    page.goto(served["url"] + "/")
    assert page.locator("#curves tbody tr").count() == 3
    assert page.locator("#curves").inner_text().count(EVIL) == 1  # shown as text, not run
    _shot(page, "list")
    page.select_option("#filter-dataset", "lab_b")
    page.click("#apply")
    page.wait_for_url("**dataset=lab_b**")
    assert page.locator("#curves tbody tr").count() == 1
    assert "drugamab" in page.locator("#curves").inner_text()


def test_curve_opens_and_a_rejection_persists_and_is_applied(served, tmp_path):
    page = served["page"]
    page.goto(served["url"] + "/?q=flatinib")
    page.keyboard.press("Enter")  # keyboard triage: Enter opens the selected row
    page.wait_for_url("**/curve/**")
    assert "flatinib" in page.locator("#title").inner_text()
    assert page.locator("#metrics tr").count() > 5 and page.locator("#points tr").count() > 4
    page.fill("#reviewer", "ana")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("r")  # reject: focuses the reason
    assert page.evaluate("document.activeElement.id") == "reason"
    page.keyboard.type("flat control plate")
    page.click("#save")
    page.wait_for_load_state()
    page.reload()
    said = page.locator("#decision").inner_text()
    assert "reject" in said and "flat control plate" in said and "ana" in said
    _shot(page, "curve")
    again = make_run(served["run_dir"].parent, extra=("--reviews", str(served["db"])))
    metrics = pd.read_parquet(again / "metrics.parquet")
    flat = metrics[S.PERTURBAGEN].eq("flatinib")
    assert flat.any() and (metrics.loc[flat, S.REASON] == "rejected_in_review").all()
    assert (metrics.loc[flat, S.STATUS] == "refused").all()
    assert not (metrics.loc[~flat, S.REASON] == "rejected_in_review").any()
    assert review_ids(metrics.loc[flat]).nunique() == 1
