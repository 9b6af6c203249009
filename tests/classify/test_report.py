"""HTML report: escaping, colours by sign, and a real render in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from slmkit.classify import Explanation, Span, explain, global_explanation, render_html, write_html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _example() -> Explanation:
    text = "Great <b>food</b> but slow service"
    spans = [Span("Great", 0, 5, 2.0), Span("food", 9, 13, 0.5), Span("slow", 22, 26, -1.5)]
    return Explanation(text=text, label="positive", probability=0.8, logit=1.0, bias=0.1, template=0.0,
                       words=spans, phrases=[Span(text, 0, len(text), 1.0)])


def test_html_escapes_text_and_colours_by_sign():
    page = render_html([_example()], title="t")
    assert "&lt;b&gt;" in page and "<b>food" not in page
    assert "rgba(22, 163, 74" in page and "rgba(220, 38, 38" in page
    assert 'title="+2.0000"' in page and 'title="-1.5000"' in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(fitted, en_data, tmp_path):
    from PIL import Image

    texts = en_data[0][:3] + en_data[0][-3:]
    page = write_html_report(tmp_path / "report.html", explain(fitted, texts),
                             global_words=global_explanation(fitted, en_data[0], top_k=3))
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,900",
                    page.as_uri()], check=True, timeout=120, capture_output=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1000, 900)
    r, g, b = np.asarray(image, dtype=int).transpose(2, 0, 1)
    greenish = int(((g > r + 30) & (g > b + 20)).sum())
    reddish = int(((r > g + 30) & (r > b + 30)).sum())
    dark = int((r + g + b < 150).sum())  # rendered text
    assert greenish > 200 and reddish > 200 and dark > 500, (greenish, reddish, dark)
