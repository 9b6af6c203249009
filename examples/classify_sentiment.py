"""Tens-of-shot sentiment classification with explanations, using only slmkit's public API.

Run: python examples/classify_sentiment.py [MODEL] [OUT_DIR]
(MODEL defaults to gemma3-270m; later runs read the embeddings back from slmkit's cache)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from slmkit.classify import LMClassifier, explain, write_html_report
from slmkit.data import read_table

DATA = Path(__file__).parent / "data" / "sentences_en.csv"
MODEL = sys.argv[1] if len(sys.argv) > 1 else "gemma3-270m"
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.gettempdir()) / "slmkit-examples"


def main() -> None:
    frame = read_table(DATA, required=["label"], text_columns=["text"])
    train, test = frame.iloc[::2], frame.iloc[1::2]  # 10 labelled sentences per class
    # Template, pooling and layers are chosen by cross-validation on the training rows (template="auto" ...).
    clf = LMClassifier(MODEL, random_state=0)
    clf.fit(train["text"].tolist(), train["label"].tolist())
    chosen = clf.auto_.table[clf.auto_.chosen]
    print(f"chosen: {chosen['template']} template, {chosen['pooling']} pooling, layers {chosen['layers']}")
    accuracy = clf.score(test["text"].tolist(), test["label"].tolist())
    print(f"held-out accuracy with {len(train)} labels: {accuracy:.2f}")
    explanations = explain(clf, test["text"].tolist()[:6])
    for ex in explanations[:3]:
        top = max(ex.words, key=lambda w: abs(w.score))
        print(f"{ex.label:>8} p={ex.probability:.2f}  strongest word: {top.text!r} ({top.score:+.3f})  {ex.text}")
    report = write_html_report(OUT / "classify_report.html", explanations)
    clf.save(OUT / "sentiment-classifier")
    print(f"report: {report}; classifier saved to {OUT / 'sentiment-classifier'}")


if __name__ == "__main__":
    main()
