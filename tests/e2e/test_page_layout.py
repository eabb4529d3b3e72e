"""A citation of a scanned page opens the page's image with the cited region highlighted (issue 18, layout).

The OCR fixture (tests/fixtures/ocr/notice.pdf: an image-only PDF, no text layer) is uploaded through the page,
read by Tesseract, and asked about; the citation opens the passage dialog, which shows the page image (fetched
from GET /v1/documents/{id}/pages/1/image) with the supporting sentence's lines drawn over it. The test checks
that the marked region lies on the image where the sentence's words are (OCR boxes), and always saves a
screenshot (LECTERN_E2E_SHOTS, else the test's tmp folder) to look at.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_web_ui import ANSWER_TIMEOUT_MS, INDEX_TIMEOUT_MS, sign_in, upload

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ocr" / "notice.pdf"
QUESTION = "Who is the contractor on site for the Harbour Street water works, and what is its job reference?"


def test_a_citation_of_a_scanned_page_opens_the_page_with_the_region_highlighted(
    page: Page, lectern_server: Any, tmp_path: Path
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{lectern_server.url}/")
    sign_in(page, lectern_server)
    scan = tmp_path / f"water-notice-{uuid.uuid4().hex[:6]}.pdf"
    shutil.copyfile(FIXTURE, scan)
    expect(upload(page, scan)).to_have_attribute("data-status", "INDEXED", timeout=INDEX_TIMEOUT_MS)

    page.get_by_test_id("question").fill(QUESTION)
    page.get_by_test_id("ask").click()
    answer = page.get_by_test_id("answer")
    expect(answer).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
    expect(answer).not_to_have_attribute("data-abstained", "true")
    marker = answer.locator('[data-testid="citation"]:not([disabled])').first
    with page.expect_response(lambda r: "/pages/1/image" in r.url) as served:
        marker.click()
    assert served.value.status == 200 and served.value.headers["content-type"] == "image/png"

    passage = page.get_by_test_id("passage")
    expect(passage).to_be_visible()
    figure = page.get_by_test_id("passage-page")
    expect(figure).to_be_visible()
    img = figure.locator("img")
    page.wait_for_function("() => document.getElementById('passage-page-img').naturalWidth > 0")
    assert (img.get_attribute("src") or "").startswith("blob:")
    support = figure.get_by_test_id("page-support")
    assert support.count() >= 1
    expect(figure.get_by_test_id("page-passage").first).to_be_attached()

    # the highlighted region lies on the image, where the sentence sits: below the title, above the bottom,
    # a narrow band per line (the notice's lines are ~6% of its height)
    box = img.bounding_box()
    region = support.first.bounding_box()
    assert box and region
    top = (region["y"] - box["y"]) / box["height"]
    assert 0.1 < top < 0.95, top
    assert region["height"] / box["height"] < 0.15
    assert box["x"] <= region["x"] and region["x"] + region["width"] <= box["x"] + box["width"] + 1
    # the support sentence names the contractor: the passage text under the image marks the same sentence
    expect(passage.get_by_test_id("support")).to_contain_text("Brennan")

    page.wait_for_timeout(300)  # the dialog's opening animation
    shots = Path(os.environ.get("LECTERN_E2E_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "scanned-citation-page.png"))
    figure.screenshot(path=str(shots / "scanned-citation-region.png"))
    page.keyboard.press("Escape")
    expect(passage).to_be_hidden()
    assert errors == [], errors
