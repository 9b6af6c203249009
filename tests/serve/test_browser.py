"""The web page in a real browser: Playwright driving headless Chromium (Debian's; Playwright cannot download
its own here). Skipped when chromium or playwright is not installed, like the classification report check."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytest.importorskip("playwright.sync_api")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_page_summarizes_classifies_and_colours_words(live_server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            page.goto(live_server.url + "/")
            expect(page.locator("#sum-model option[value='tiny']")).to_have_count(1)

            page.select_option("#sum-model", "tiny")
            page.select_option("#sum-method", "lead")
            page.fill("#sum-max", "8")
            page.click("#summarize-btn")
            expect(page.locator("#summary")).to_have_attribute("data-done", "1", timeout=60_000)
            assert not page.is_visible("#error"), page.text_content("#error")
            assert page.text_content("#summary").startswith("Hi, I'd like to return these shoes.")

            page.click("#tab-classify")
            page.select_option("#clf-model", "clf/reviews")
            page.fill("#clf-text", "A wonderful, moving film. The plot made no sense.")
            page.click("#classify-btn")
            words = page.locator("#clf-result span.word")
            expect(words.first).to_be_visible(timeout=60_000)
            assert page.text_content("#clf-label") in ("positive", "negative")
            assert words.count() >= 8
            shown = words.evaluate_all(
                "spans => spans.map(s => [getComputedStyle(s).backgroundColor, Number(s.dataset.score)])")
            # Green for words that push toward the label, red for words that push away (random weights here, so
            # the mix of signs is whatever it is); the strongest word is drawn at full strength.
            for colour, score in shown:
                assert colour.startswith("rgba(22, 163, 74" if score >= 0 else "rgba(220, 38, 38"), (colour, score)
            assert any(colour.endswith(", 0.75)") for colour, _ in shown)

            page.click("#tab-models")
            page.locator("#registry tr.entry", has_text="runs/ft").click()
            expect(page.locator("#learning-curve polyline")).to_have_count(2)
            assert not page.is_visible("#error")
        finally:
            browser.close()
