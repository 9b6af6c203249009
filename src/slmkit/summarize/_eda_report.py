"""Render an EdaResult: PNG plots, a Markdown summary and the JSON statistics, into one folder."""

from __future__ import annotations

from pathlib import Path

from slmkit.data import atomic_open, write_json
from slmkit.summarize._dialogue import HANGUL
from slmkit.summarize._eda import EdaResult

_HISTOGRAMS = {
    "lengths_chars.png": ("dialogue_chars", "summary_chars"),
    "lengths_tokens.png": ("dialogue_tokens", "summary_tokens"),
    "turns_speakers.png": ("turns", "speakers"),
    "compression.png": ("compression_tokens", "compression_chars"),
}
PLOT_NAMES = (*_HISTOGRAMS, "topics.png")  # every file name the report may write beside eda.json and report.md


def write_eda_report(result: EdaResult, directory: str | Path, *, title: str = "Dialogue summarization EDA") -> Path:
    """Write eda.json, report.md and the plots into `directory`; returns the Markdown path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plots = _plots(result, directory)
    write_json(directory / "eda.json", result.to_dict())
    path = directory / "report.md"
    with atomic_open(path) as handle:
        handle.write(_markdown(result, plots, title))
    return path


def _plots(result: EdaResult, directory: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    written = []
    for filename, keys in _HISTOGRAMS.items():
        keys = [k for k in keys if k in result.lengths]
        if not keys:
            continue
        fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5), squeeze=False)
        for ax, key in zip(axes[0], keys):
            ax.hist(result.lengths[key], bins=40, color="#4c72b0")
            ax.set_title(key.replace("_", " "))
            ax.set_ylabel("rows")
        _save(fig, directory / filename)
        written.append(filename)
    if result.topics:
        top = result.topics[:20][::-1]
        labels = [t for t, _ in top]
        font = _hangul_font() if any(HANGUL.search(t) for t in labels) else None
        if any(HANGUL.search(t) for t in labels) and font is None:
            # No installed font draws Hangul (it would come out as boxes): label bars by rank; the report's
            # topic table gives the names.
            labels = [f"#{len(top) - i}" for i in range(len(top))]
        fig, ax = plt.subplots(figsize=(7, 6))
        ax.barh(range(len(top)), [n for _, n in top], color="#55a868")
        ax.set_yticks(range(len(top)), labels, fontfamily=font or "sans-serif")
        ax.set_title("top-20 topics")
        _save(fig, directory / "topics.png")
        written.append("topics.png")
    return written


def _hangul_font() -> str | None:
    from matplotlib import font_manager

    for entry in font_manager.fontManager.ttflist:
        if any(
            key in entry.name for key in ("Nanum", "Noto Sans CJK", "Noto Sans KR", "Malgun", "AppleGothic", "UnDotum")
        ):
            return entry.name
    return None


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _markdown(result: EdaResult, plots: list[str], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        (
            f"{result.n_rows} rows, language `{result.language}`, token counts from "
            f"`{result.model or 'no model (characters only)'}`."
        ),
        "",
        "## Lengths",
        "",
        "| quantity | mean | p50 | p90 | p95 | p99 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in result.stats.items():
        if isinstance(s, dict) and "mean" in s:
            lines.append(
                f"| {name} | {s['mean']:.2f} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p95']:.2f} | "
                f"{s['p99']:.2f} | {s['max']:.2f} |"
            )
    lines += ["", f"Speakers per dialogue: {result.stats.get('speaker_counts')}", ""]
    if result.recommendation:
        r = result.recommendation
        lines += [
            "## Recommended lengths",
            "",
            (
                f"- max input tokens: **{r.get('max_input_tokens')}** (p{r['coverage_percentile']}; "
                f"{r.get('max_input_tokens_truncates')} dialogue(s) longer)"
            ),
            (
                f"- max output tokens: **{r.get('max_output_tokens')}** ({r.get('max_output_tokens_truncates')} "
                "summary(ies) longer)"
            ),
            "",
        ]
    if "topics" in result.stats:
        t = result.stats["topics"]
        lines += [
            "## Topics",
            "",
            (
                f"{t['distinct']} distinct topics; the top {len(t['top'])} cover "
                f"{t['share_in_top']:.1%} of rows; {t['singletons']} topics occur once ({t['tail_topics']} in the tail)."
            ),
            "",
            "| topic | rows | keywords (TF-IDF) |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {n} | {', '.join(result.keywords.get(name, []))} |" for name, n in t["top"]]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
