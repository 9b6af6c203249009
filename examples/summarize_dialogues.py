"""Summarize the example dialogues with the public API: validate, clean, predict, evaluate.

python examples/summarize_dialogues.py            # lead-2 baseline, a second
python examples/summarize_dialogues.py few-shot   # gemma3-270m few-shot prompting, about a minute
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from slmkit.summarize import PredictConfig, clean_dialogues, evaluate, find_example_data, load_dialogues, predict

method = sys.argv[1] if len(sys.argv) > 1 else "lead"
data = find_example_data()
frame = load_dialogues(data / "dialogues_ko.csv", require_summary=True)
_, cleaning = clean_dialogues(frame)
print(f"{len(frame)} dialogues, {len(frame.attrs['issues'])} validation issue(s), cleaning changed {cleaning.changed}")

with tempfile.TemporaryDirectory() as tmp:
    output = Path(tmp) / "predictions.csv"
    config = PredictConfig(method=method, max_new_tokens=48)  # few-shot draws from the built-in Korean pool
    predictions = predict(data / "dialogues_ko.csv", output, config)
    report = evaluate(output, data / "dialogues_ko.csv")
for fname, summary in predictions.head(3).itertuples(index=False):
    print(f"{fname}: {summary}")
scores = report.result.summary()
low, high = report.result.ci["final"]
print(
    f"ROUGE ({report.result.tokenizer}): R-1 {scores['rouge1']:.1f}  R-2 {scores['rouge2']:.1f}  "
    f"R-L {scores['rougeL']:.1f}  final {scores['final']:.1f} (95% CI {low:.1f}-{high:.1f})"
)
