"""A self-contained HTML page that highlights each word by its contribution (no scripts, no network)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from slmkit.classify._explain import Explanation
from slmkit.data import atomic_open

# Toward the explained label: green; away from it: red (the usual convention of explanation tools).
POSITIVE_RGB = (22, 163, 74)
NEGATIVE_RGB = (220, 38, 38)

_STYLE = """
body { font-family: sans-serif; margin: 24px; max-width: 960px; color: #111; }
.ex { border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; margin: 12px 0; }
.meta { color: #555; font-size: 13px; margin-bottom: 6px; }
.text { font-size: 18px; line-height: 2.0; }
.w { padding: 2px 1px; border-radius: 3px; }
table { border-collapse: collapse; margin: 8px 0 20px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; font-size: 13px; text-align: left; }
.legend span { padding: 2px 8px; border-radius: 3px; margin-right: 8px; }
"""


def _colour(score: float, scale: float) -> str:
    strength = min(1.0, abs(score) / scale) if scale > 0 else 0.0
    r, g, b = POSITIVE_RGB if score > 0 else NEGATIVE_RGB
    return f"rgba({r}, {g}, {b}, {0.15 + 0.75 * strength:.3f})" if strength > 0.02 else "transparent"


def _highlight(ex: Explanation, scale: float) -> str:
    parts, pos = [], 0
    for span in ex.words:
        parts.append(html.escape(ex.text[pos : span.start]))
        title = f"{span.score:+.4f}"
        parts.append(f'<span class="w" style="background:{_colour(span.score, scale)}" title="{title}">'
                     f"{html.escape(ex.text[span.start:span.end])}</span>")
        pos = span.end
    parts.append(html.escape(ex.text[pos:]))
    return "".join(parts)


def _label(value) -> str:
    return html.escape(str(value.item() if hasattr(value, "item") else value))


def render_html(explanations: Sequence[Explanation], *, title: str = "slmkit explanations",
                global_words: Mapping | None = None, top_phrases: int = 3) -> str:
    """The report as an HTML string: one block per explanation, words shaded by contribution.

    Args:
        explanations: from `explain`.
        title: page title.
        global_words: optional output of `global_explanation`, shown as a table per class.
        top_phrases: phrases listed under each text (largest absolute contribution first).
    """
    scale = max((abs(s.score) for ex in explanations for s in ex.words), default=0.0)
    legend = ('<p class="legend"><span style="background:rgba(22,163,74,0.9)">toward the label</span>'
              '<span style="background:rgba(220,38,38,0.9)">away from it</span></p>')
    blocks = [f"<h1>{html.escape(title)}</h1>", legend]
    for ex in explanations:
        phrases = sorted(ex.phrases, key=lambda s: -abs(s.score))[:top_phrases]
        listed = "; ".join(f"“{html.escape(p.text)}” {p.score:+.3f}" for p in phrases)
        blocks.append(
            f'<div class="ex"><div class="meta">label <b>{_label(ex.label)}</b> · p = {ex.probability:.3f} · '
            f"logit {ex.logit:+.3f} (bias {ex.bias:+.3f}, template {ex.template:+.3f}) · {ex.method}</div>"
            f'<div class="text">{_highlight(ex, scale)}</div><div class="meta">phrases: {listed}</div></div>')
    for label, rows in (global_words or {}).items():
        body = "".join(f"<tr><td>{html.escape(r['word'])}</td><td>{r['mean']:+.4f}</td><td>{r['count']}</td></tr>"
                       for r in rows)
        blocks.append(f"<h2>Words pushing toward {_label(label)}</h2>"
                      f"<table><tr><th>word</th><th>mean contribution</th><th>count</th></tr>{body}</table>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(blocks)}</body></html>\n")


def write_html_report(path: str | Path, explanations: Sequence[Explanation], **options) -> Path:
    """Write `render_html(explanations, **options)` to `path` atomically; returns the path."""
    with atomic_open(path) as handle:
        handle.write(render_html(explanations, **options))
    return Path(path)
