"""`slmkit classify fit | predict | evaluate | curve | explain`: tens-of-shot text classification."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from slmkit.cli._common import OVERWRITE_OPTION, SEED_OPTION, Typer, handle_errors, output_policy
from slmkit.errors import ConfigError

app = Typer(no_args_is_help=True, help="Tens-of-shot classification: small-LM embeddings + penalised LR.")

TEXT_COLUMN = typer.Option("text", "--text-column", help="Column holding the texts.")
LABEL_COLUMN = typer.Option("label", "--label-column", help="Column holding the labels.")
MODEL_DIR = typer.Option(..., "--model-dir", help="Directory written by `slmkit classify fit`.")
CACHE_DIR = typer.Option("default", "--cache-dir",
                         help="Embedding cache directory ('default': slmkit cache; 'none': in memory only).")
CV_OPTION = typer.Option(5, "--cv", help="Folds used to choose the penalty strength.")
ADAPT_BUDGET_OPTION = typer.Option("auto", "--adapt-budget", help="Seconds for encoder adaptation candidates "
                                   "(MiniLM beside the LM's features; its contrastive fine-tune; the LM's own "
                                   "contrastive LoRA fine-tune), kept only when CV says they pay. 0 = off; auto = "
                                   "900 on a GPU, off on a CPU.")
ADAPT_PAIRS_OPTION = typer.Option("auto", "--adapt-pairs", help="Pairs per example for adaptation's "
                                  "contrastive fine-tunes: auto (sized to --adapt-budget from the measured pace, "
                                  "so machine-dependent) or a fixed even number >= 4 (the same fit for a --seed on "
                                  "any machine, however long it takes).")
ARTIFACT_FILES = ("slmkit_config.json", "head.npz", "metrics.json")


def _artifact(model_dir: Path) -> list[Path]:
    """An artifact's files: inputs no output may overwrite."""
    return [model_dir / name for name in ARTIFACT_FILES]


def _layers(value: str) -> tuple | str:
    if value.strip() == "auto":
        return "auto"
    try:
        return tuple(float(v) if "." in v else int(v) for v in value.split(","))
    except ValueError as exc:
        raise ConfigError(f"--layers must be auto or comma-separated ints or depth fractions (e.g. -1 or 0.5,-1), "
                          f"got {value!r}") from exc


def _config(model, template, pooling, layers, penalty, cv, text_column, label_column, seed, cache_dir,
            adapt_budget="auto", adapt_pairs="auto"):
    from slmkit.classify import ClassifyConfig

    kwargs = {} if template is None else {"template": template}
    kwargs["adapt_budget"] = adapt_budget
    kwargs["adapt_pairs"] = adapt_pairs
    return ClassifyConfig(model=model, pooling=pooling, layers=_layers(layers), penalty=penalty, cv=cv,
                          text_column=text_column, label_column=label_column, seed=seed, cache_dir=cache_dir,
                          **kwargs)


def _print_scores(title: str, scores: dict) -> None:
    table = Table(title=title)
    for column in ("metric", "value"):
        table.add_column(column)
    for key in ("accuracy", "macro_f1", "n"):
        if key in scores:
            table.add_row(key, f"{scores[key]:.4f}" if isinstance(scores[key], float) else str(scores[key]))
    Console().print(table)


@app.command("fit")
@handle_errors
def fit_cmd(
    train: Path = typer.Option(..., "--train", help="Labelled table (CSV, TSV, JSONL or Parquet)."),
    out: Path = typer.Option(..., "--out", help="Artifact directory to write."),
    model: str = typer.Option("gemma3-270m", "--model", help="Registry name or local model directory."),
    template: str = typer.Option(None, "--template", help="auto (default: chosen by CV on the training table) or "
                                 "an instruction around the text, with {text} once."),
    pooling: str = typer.Option("auto", "--pooling",
                                help="auto (chosen by CV), mean (exact explanations), last or mean+last."),
    layers: str = typer.Option("auto", "--layers", help="auto (chosen by CV) or layers to concatenate, e.g. -1 "
                               "or 0.5,-1."),
    penalty: str = typer.Option("l2", "--penalty", help="l2, l1 or elasticnet."),
    cv: int = CV_OPTION,
    adapt_budget: str = ADAPT_BUDGET_OPTION,
    adapt_pairs: str = ADAPT_PAIRS_OPTION,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    cache_dir: str = CACHE_DIR,
    overwrite: bool = OVERWRITE_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Fit a classifier on a labelled table and save it as an artifact directory."""
    from slmkit.classify import fit_classifier

    config = _config(model, template, pooling, layers, penalty, cv, text_column, label_column, seed, cache_dir,
                     adapt_budget, adapt_pairs)
    outputs = output_policy([train], overwrite)
    outputs.folder(out, option="--out", files=ARTIFACT_FILES)
    clf, metrics = fit_classifier(train, out, config)
    outputs.record()
    _print_scores(f"fitted {len(clf.classes_)} classes, C={clf.head_.C_:.3g} -> {out}", metrics["train"])
    if clf.auto_ is not None:
        row = clf.auto_.table[clf.auto_.chosen]
        typer.echo(f"chosen by {clf.auto_.n_repeats}x{clf.auto_.n_splits}-fold CV: {row['template']} template, "
                   f"{row['pooling']} pooling, layers: {row['layers']} (all candidates in {out}/slmkit_config.json)")
    if clf.adapt_ is not None:
        skipped = f" (fine-tuning skipped: {clf.adapt_['skipped']})" if clf.adapt_["skipped"] else ""
        lm_skipped = clf.adapt_.get("lm_skipped")
        skipped += f" (the LM's LoRA fine-tune skipped: {lm_skipped})" if lm_skipped else ""
        typer.echo(f"encoder adaptation: {clf.adapt_['chosen']} chosen by CV in {clf.adapt_['seconds']:.0f} s"
                   f"{skipped}")


@app.command("predict")
@handle_errors
def predict_cmd(
    model_dir: Path = MODEL_DIR,
    input: Path = typer.Option(..., "--input", help="Table of texts to label."),
    output: Path = typer.Option(..., "--output", help="Where to write the table with predictions."),
    text_column: str = TEXT_COLUMN,
    cache_dir: str = CACHE_DIR,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Label every text of a table (adds `prediction` and `probability` columns)."""
    from slmkit.classify import predict_table

    outputs = output_policy([input, *_artifact(model_dir)], overwrite)
    outputs.file(output)
    frame = predict_table(model_dir, input, output, text_column=text_column, cache_dir=cache_dir)
    outputs.record()
    typer.echo(f"wrote {len(frame)} predictions to {output}")


@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    model_dir: Path = MODEL_DIR,
    input: Path = typer.Option(..., "--input", help="Labelled table to score."),
    output: Path = typer.Option(None, "--output", help="Optional metrics JSON to write."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    cache_dir: str = CACHE_DIR,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Accuracy and macro-F1 of a saved classifier on a labelled table."""
    from slmkit.classify import evaluate_table

    outputs = output_policy([input, *_artifact(model_dir)], overwrite)
    if output:
        outputs.file(output)
    scores = evaluate_table(model_dir, input, text_column=text_column, label_column=label_column,
                            output_path=output, cache_dir=cache_dir)
    outputs.record()
    if scores.get("unseen_labels"):
        typer.echo(f"warning: {input}: label(s) {', '.join(map(str, scores['unseen_labels']))} are classes the "
                   "classifier never saw; their rows count as errors", err=True)
    _print_scores(f"{model_dir} on {input}", scores)


@app.command("curve")
@handle_errors
def curve_cmd(
    train: Path = typer.Option(..., "--train", help="Labelled pool to draw training examples from."),
    test: Path = typer.Option(..., "--test", help="Labelled held-out table."),
    out: Path = typer.Option(..., "--out", help="Directory for curve.json and curve.png."),
    shots: str = typer.Option("4,8,16,32,64,128", "--shots", help="Examples per class, comma-separated."),
    draws: int = typer.Option(5, "--draws", help="Random draws per budget."),
    model: str = typer.Option("gemma3-270m", "--model", help="Registry name or local model directory."),
    template: str = typer.Option(None, "--template", help="auto (default: chosen by CV on the training table) or "
                                 "an instruction around the text, with {text} once."),
    pooling: str = typer.Option("auto", "--pooling",
                                help="auto (chosen by CV), mean (exact explanations), last or mean+last."),
    layers: str = typer.Option("auto", "--layers", help="auto (chosen by CV) or layers to concatenate, e.g. -1 "
                               "or 0.5,-1."),
    penalty: str = typer.Option("l2", "--penalty", help="l2, l1 or elasticnet."),
    cv: int = CV_OPTION,
    adapt_budget: str = ADAPT_BUDGET_OPTION,
    adapt_pairs: str = ADAPT_PAIRS_OPTION,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    cache_dir: str = CACHE_DIR,
    overwrite: bool = OVERWRITE_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Accuracy and macro-F1 against examples per class (answers "how many labels do I need?").

    Each fit is the one `classify fit` makes with the same options (adaptation included where it is on)."""
    from slmkit.classify import curve_tables

    try:
        budgets = [int(k) for k in shots.split(",")]
    except ValueError as exc:
        raise ConfigError(f"--shots must be comma-separated integers, got {shots!r}") from exc
    config = _config(model, template, pooling, layers, penalty, cv, text_column, label_column, seed, cache_dir,
                     adapt_budget, adapt_pairs)
    outputs = output_policy([train, test], overwrite)
    outputs.folder(out, option="--out", files=("curve.json", "curve.png"))
    result = curve_tables(train, test, out, config, shots=budgets, draws=draws)
    outputs.record()
    table = Table(title=f"learning curve -> {out}")
    for column in ("per class", "accuracy", "macro-F1"):
        table.add_column(column)
    for k in result["shots"]:
        p = result["points"][str(k)]
        table.add_row(str(k), f"{p['accuracy_mean']:.3f} ± {p['accuracy_std']:.3f}",
                      f"{p['macro_f1_mean']:.3f} ± {p['macro_f1_std']:.3f}")
    Console().print(table)
    if result.get("skipped_shots"):
        skipped = result["skipped_shots"]
        typer.echo(f"skipped shots {skipped['shots']}: the smallest class has {skipped['smallest_class_count']} "
                   "examples in the training table")


@app.command("explain")
@handle_errors
def explain_cmd(
    model_dir: Path = MODEL_DIR,
    input: Path = typer.Option(..., "--input", help="Table of texts to explain."),
    output: Path = typer.Option(..., "--output", help="HTML report to write (a .json is written beside it)."),
    limit: int = typer.Option(20, "--limit", help="Explain at most this many texts."),
    method: str = typer.Option("auto", "--method", help="auto, exact (mean pooling) or occlusion."),
    train: Path = typer.Option(None, "--train", help="Labelled table for global word rankings."),
    n_boot: int = typer.Option(0, "--n-boot", help="Bootstrap re-fits to measure stability (needs --train)."),
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    cache_dir: str = CACHE_DIR,
    overwrite: bool = OVERWRITE_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Word and phrase contributions to each prediction, as an HTML report."""
    from slmkit.classify import explain_table
    from slmkit.classify._api import explain_json_path

    outputs = output_policy([input, train, *_artifact(model_dir)], overwrite)
    outputs.file(output)
    outputs.file(explain_json_path(output), option="--output (its JSON)")
    result = explain_table(model_dir, input, output, text_column=text_column, limit=limit, method=method,
                           train_path=train, label_column=label_column, n_boot=n_boot, seed=seed,
                           cache_dir=cache_dir)
    outputs.record()
    typer.echo(f"explained {len(result['explanations'])} texts -> {output}")
    if "global_skipped" in result:
        typer.echo(f"note: {result['global_skipped']}")
    if "stability" in result:
        s = result["stability"]
        typer.echo(f"stability over {s['n_boot']} re-fits: Spearman {s['spearman_mean']:.3f}, "
                   f"top-{s['top_k']} overlap {s['top_overlap_mean']:.3f}")
