"""What a scored corpus looks like: S histograms per domain, the extremes, and how two scorers agree."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from slmkit.data import atomic_open, write_json
from slmkit.errors import DataError


def top_overlap(a: pd.DataFrame, b: pd.DataFrame, *, fraction: float = 0.5, by: str = "S") -> dict:
    """Share of the top-`fraction` rows by `by` that two scorers agree on, over the ids both scored.

    Returns:
        {"overlap": |top_a ∩ top_b| / |top_a|, "n_common": ids scored by both, "n_top": size of each top set}.
        The paper's measure: a small and a large scorer picked 91-94% the same data.
    """
    from slmkit.quality._select import select

    for name, frame in (("first", a), ("second", b)):
        if "id" not in frame.columns or by not in frame.columns:
            raise DataError(f"the {name} scores need columns 'id' and {by!r}")
    # Ids with a finite score in both tables: a row one scorer rejected (NaN) is not "scored by both".
    a = a[np.isfinite(pd.to_numeric(a[by], errors="coerce"))]
    b = b[np.isfinite(pd.to_numeric(b[by], errors="coerce"))]
    common = set(a["id"].astype(str)) & set(b["id"].astype(str))
    if not common:
        raise DataError("the two score tables share no ids; score the same corpus with both scorers")
    a = a[a["id"].astype(str).isin(common)]
    b = b[b["id"].astype(str).isin(common)]
    top_a = set(select(a, by=by, fraction=fraction)["id"].astype(str))
    top_b = set(select(b, by=by, fraction=fraction)["id"].astype(str))
    return {"overlap": len(top_a & top_b) / max(1, len(top_a)), "n_common": len(common), "n_top": len(top_a)}


def histogram_figure(scores: pd.DataFrame, *, by: str = "S", domain_column: str | None = None):
    """One histogram of `by` per domain (one panel for all rows when there is no domain column)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = pd.to_numeric(scores[by], errors="coerce")
    groups = (
        [(str(name), values[group.index]) for name, group in scores.groupby(domain_column, sort=True, dropna=False)]
        if domain_column
        else [("all rows", values)]
    )
    finite = values[np.isfinite(values)]
    bins = np.histogram_bin_edges(finite, bins=30) if len(finite) else 10
    fig, axes = plt.subplots(len(groups), 1, figsize=(7, 1.8 + 1.6 * len(groups)), sharex=True, squeeze=False)
    for ax, (name, group) in zip(axes[:, 0], groups):
        group = group[np.isfinite(group)]
        ax.hist(group, bins=bins, color="tab:blue", alpha=0.8)
        if len(group):
            ax.axvline(group.median(), color="black", linestyle="--", linewidth=1)
        ax.set_ylabel("documents")
        ax.set_title(f"{name} (n={len(group)}, median {group.median():.3f})" if len(group) else name, fontsize=9)
    axes[-1, 0].set_xlabel(f"{by} = forward loss - reverse loss (nats/token)" if by == "S" else by)
    fig.tight_layout()
    return fig


def write_report(
    scores: pd.DataFrame,
    output_dir: str | Path,
    *,
    by: str = "S",
    domain_column: str | None = None,
    text_column: str = "text",
    n_examples: int = 5,
    other: pd.DataFrame | None = None,
    fraction: float = 0.5,
) -> dict:
    """Write histograms.png, report.html (self-contained: the PNG is embedded) and report.json.

    Args:
        other: a second scorer's scores of the same corpus: adds the overlap of the top-`fraction` selections.
    """
    import matplotlib.pyplot as plt

    for column in [by] + ([domain_column] if domain_column else []):
        if column not in scores.columns:
            raise DataError(f"no column {column!r} in the scores; found {', '.join(map(str, scores.columns))}")
    output_dir = Path(output_dir)
    fig = histogram_figure(scores, by=by, domain_column=domain_column)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    png = buffer.getvalue()
    with atomic_open(output_dir / "histograms.png", "wb") as handle:
        handle.write(png)

    numeric = pd.to_numeric(scores[by], errors="coerce")
    ranked = scores.assign(_value=numeric).dropna(subset=["_value"]).sort_values("_value", kind="stable")
    shown = [c for c in ("id", domain_column, by, "forward_loss", "reverse_loss", "n_tokens", text_column) if c]
    shown = [c for c in dict.fromkeys(shown) if c in scores.columns]
    highest = ranked.iloc[::-1].head(n_examples)[shown]
    lowest = ranked.head(n_examples)[shown]
    per_domain = (
        scores.assign(_value=numeric).groupby(domain_column, dropna=False)["_value"].describe()
        if domain_column
        else numeric.describe().to_frame("all rows").T
    )
    summary = {
        "n_rows": len(scores),
        "n_scored": int(numeric.notna().sum()),
        "by": by,
        # std of a one-row domain, mean of an all-rejected one: NaN, which JSON cannot hold -> null
        "per_domain": {str(k): {s: float(v) if math.isfinite(v) else None for s, v in row.items()}
                       for k, row in per_domain.iterrows()},
        "highest": _json_records(highest),
        "lowest": _json_records(lowest),
    }
    if other is not None:
        summary["top_overlap"] = {**top_overlap(scores, other, fraction=fraction, by=by), "fraction": fraction}
    write_json(output_dir / "report.json", summary)

    def table(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, escape=True, float_format=lambda v: f"{v:.4f}", border=0)

    overlap = summary.get("top_overlap")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>slmkit quality report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{padding:3px 8px;"
        "text-align:left;vertical-align:top}tr:nth-child(even){background:#f3f3f3}</style></head><body>",
        "<h1>Data quality by reverse modeling</h1>",
        f"<p>{summary['n_scored']} of {summary['n_rows']} rows scored. <b>{html.escape(by)}</b> = mean forward token "
        "loss - mean reverse token loss; high = easier backwards = more coherent (Yu et al. 2024).</p>",
        f"<img alt='histograms' src='data:image/png;base64,{base64.b64encode(png).decode()}'>",
        "<h2>Per domain</h2>" + per_domain.to_html(float_format=lambda v: f"{v:.4f}", border=0),
        f"<h2>Highest {html.escape(by)}</h2>" + table(highest),
        f"<h2>Lowest {html.escape(by)}</h2>" + table(lowest),
    ]
    if overlap:
        parts.append(
            f"<h2>Agreement with the second scorer</h2><p>top {fraction:.0%} selections overlap "
            f"<b>{overlap['overlap']:.1%}</b> ({overlap['n_top']} rows each, {overlap['n_common']} ids in common)</p>"
        )
    parts.append("</body></html>")
    with atomic_open(output_dir / "report.html") as handle:
        handle.write("\n".join(parts))
    return summary


def _json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with NaN (a missing domain, say) as None: JSON has no NaN."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
            for row in frame.to_dict("records")]
