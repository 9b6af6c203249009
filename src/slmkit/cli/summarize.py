"""`slmkit summarize ...`: dialogue summarization from the command line (demo, predict, evaluate, eda, clean)."""

from __future__ import annotations

from pathlib import Path

import typer

from slmkit.cli._common import DTYPE_OPTION, OVERWRITE_OPTION, SEED_OPTION, Typer, handle_errors, output_policy

app = Typer(
    no_args_is_help=True, help="Dialogue summarization: data checks, EDA, baselines, fine-tuning, tuning, ROUGE."
)

ID_COLUMN = typer.Option("fname", "--id-column", help="Unique row id column.")
DIALOGUE_COLUMN = typer.Option("dialogue", "--dialogue-column", help="Column with the #PersonN#-tagged dialogue.")
SUMMARY_COLUMNS = typer.Option(
    "", "--summary-columns", help="Comma-separated reference columns; empty finds summary or summary1,summary2,..."
)
TOPIC_COLUMN = typer.Option("topic", "--topic-column", help="Topic column (ignored when absent).")
MODEL = typer.Option("gemma3-270m", "--model", help="Causal LM for zero-/few-shot (registry name or path).")
METHOD = typer.Option("few-shot", "--method", help="lead | longest | zero-shot | few-shot")
TOKENIZER = typer.Option(
    "auto", "--tokenizer", help="auto (kiwi for Korean, default for English) | kiwi | whitespace | char | default"
)


def _columns(id_column: str, dialogue_column: str, summary_columns: str, topic_column: str):
    from slmkit.summarize import DialogueColumns

    summaries = tuple(c.strip() for c in summary_columns.split(",") if c.strip()) or None
    return DialogueColumns(id=id_column, dialogue=dialogue_column, summaries=summaries, topic=topic_column)


def _print_scores(title: str, report) -> None:
    from rich.console import Console
    from rich.table import Table

    result = report.result
    typer.echo(f"{title}: {result.n} rows, tokenizer {result.tokenizer}, multi-ref {result.multi_ref}")
    table = Table()
    for column in ("metric", "F1 x100", "95% CI"):
        table.add_column(column)
    scores = result.summary()
    for name in ("rouge1", "rouge2", "rougeL", "final"):
        lo, hi = result.ci.get(name, (float("nan"), float("nan")))
        table.add_row(name, f"{scores[name]:.2f}", f"{lo:.2f}–{hi:.2f}")
    Console().print(table)


@app.command("demo")
@handle_errors
def demo_cmd(
    method: str = METHOD,
    model: str = MODEL,
    shots: int = typer.Option(2, "--shots", help="Few-shot examples per prompt."),
    max_new_tokens: int = typer.Option(
        None, "--max-new-tokens", help="Generation budget per summary (default: 64; a fine-tuned run's own)."
    ),
    languages: str = typer.Option("ko,en", "--languages", help="Example sets to run: ko, en or both."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Folder with dialogues_{ko,en}[_train].csv."),
    output_dir: Path = typer.Option(Path("out/summarize_demo"), "--output-dir", help="Predictions and reports."),
    overwrite: bool = OVERWRITE_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Summarize the project's example dialogues end to end: predict -> fname,summary CSV -> ROUGE."""
    from slmkit.summarize import DemoConfig, PredictConfig, run_demo

    predict_config = PredictConfig(method=method, model=model, shots=shots, max_new_tokens=max_new_tokens, seed=seed)
    config = DemoConfig(
        predict=predict_config,
        languages=tuple(x.strip() for x in languages.split(",") if x.strip()),
        data_dir=str(data_dir) if data_dir else None,
        output_dir=str(output_dir),
    )
    outputs = output_policy([data_dir], overwrite)
    outputs.folder(output_dir, option="--output-dir", files=["demo.json"])
    for language in config.languages:  # resumable: their manifests decide (run_demo), as in `summarize predict`
        outputs.file(output_dir / f"predictions_{language}.csv", option="--output-dir", resumable=True)
        if not outputs.written_by_us(output_dir / "demo.json"):  # a folder this command made owns its reports
            outputs.folder(output_dir / f"eval_{language}", option="--output-dir",
                           files=["rouge.json", "per_example.csv", "per_topic.csv"])
    for result in run_demo(config, progress=True, restart_changed=overwrite):
        _print_scores(f"demo {result.language} ({method}, {result.seconds:.0f} s)", result.report)
        typer.echo(f"predictions: {result.predictions}")
    outputs.record()
    typer.echo(f"report: {output_dir / 'demo.json'}")


@app.command("predict")
@handle_errors
def predict_cmd(
    input: Path = typer.Argument(..., help="Dialogue table (CSV/TSV/JSONL/Parquet)."),
    output: Path = typer.Option(..., "--output", help="fname,summary CSV; an existing one is resumed."),
    method: str = METHOD,
    model: str = MODEL,
    examples: str = typer.Option(
        None,
        "--examples",
        help="Table of dialogue/summary pairs for few-shot retrieval (default: slmkit's small built-in pool).",
    ),
    backend: str = typer.Option(
        "transformers", "--backend", help="transformers | ctranslate2 (int8 CPU engine, extra `fast`) | llamacpp"
    ),
    embedder: str = typer.Option(
        None, "--embedder", help="Retrieval embedder (default: minilm-l6 for English, --model for Korean)."
    ),
    language: str = typer.Option("auto", "--language", help="auto | ko | en"),
    shots: int = typer.Option(2, "--shots", help="few-shot: examples per prompt."),
    lead_k: int = typer.Option(2, "--lead-k", help="lead: turns kept as the summary."),
    max_new_tokens: int = typer.Option(
        None, "--max-new-tokens", help="Generation budget per summary in tokens (default: 64; a fine-tuned run's own)."
    ),
    num_beams: int = typer.Option(1, "--num-beams", help="Beam width (1 = greedy)."),
    mbr_samples: int = typer.Option(
        0,
        "--mbr-samples",
        help="Fine-tuned models: MBR over greedy + N sampled summaries (8: +0.9 ROUGE, ~6x time; 2-4 scored "
        "below greedy).",
    ),
    batch_size: int = typer.Option(4, "--batch-size", help="Prompts generated together."),
    max_dialogue_chars: int = typer.Option(
        2000, "--max-dialogue-chars", help="Longer dialogues are cut at a turn boundary before prompting."
    ),
    limit: int = typer.Option(None, "--limit", help="Summarize at most this many remaining rows."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    topic_column: str = TOPIC_COLUMN,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming --output."),
    keep_tokens: str = typer.Option(
        None,
        "--keep-tokens",
        help="Dialogue table (e.g. the training table): the output layer keeps only the tokens of its summaries "
        "and dialogues and of the input's dialogues; faster decoding, other tokens cannot be written.",
    ),
    dtype: str = DTYPE_OPTION,
    quantize: str = typer.Option(
        None,
        "--quantize",
        help="ctranslate2 precision: int8 (default) | float32 (float32's summaries; with --keep-tokens ~2x "
        "transformers float32).",
    ),
    seed: int = SEED_OPTION,
) -> None:
    """Summarize every dialogue and write the competition's fname,summary CSV (resumes where it stopped)."""
    from slmkit.summarize import PredictConfig, predict

    config = PredictConfig(
        method=method,
        model=model,
        backend=backend,
        examples=examples,
        embedder=embedder,
        language=language,
        shots=shots,
        lead_k=lead_k,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        mbr_samples=mbr_samples,
        batch_size=batch_size,
        max_dialogue_chars=max_dialogue_chars,
        limit=limit,
        seed=seed,
        keep_tokens=keep_tokens,
        dtype=dtype,
        quantize=quantize,
    )
    from slmkit.data import resumable_output
    from slmkit.summarize._resume import predict_identity

    columns = _columns(id_column, dialogue_column, "", topic_column)
    outputs = output_policy([input, examples, keep_tokens], overwrite)
    outputs.file(output, resumable=True)
    from slmkit.data._write import check_table_suffix

    check_table_suffix(output, "--output")  # before any model loads, not at the first chunk
    with resumable_output(output, predict_identity(input, config, columns), overwrite=overwrite):
        frame = predict(input, output, config, columns=columns, progress=True)
    outputs.record()
    typer.echo(f"{len(frame)} summaries in {output}")


@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    predictions: Path = typer.Argument(..., help="fname,summary CSV."),
    references: Path = typer.Argument(..., help="Dialogue table with reference summaries."),
    tokenizer: str = TOKENIZER,
    multi_ref: str = typer.Option("max", "--multi-ref", help="max | mean over several references."),
    n_bootstrap: int = typer.Option(1000, "--n-bootstrap", help="Bootstrap resamples for the 95% CIs."),
    output_dir: Path = typer.Option(None, "--output-dir", help="Write rouge.json, per_example.csv, per_topic.csv."),
    topics: int = typer.Option(10, "--topics", help="Topics shown in the per-topic table."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
    overwrite: bool = OVERWRITE_OPTION,
    seed: int = SEED_OPTION,
) -> None:
    """Score a prediction file against references: ROUGE-1/2/L, the competition mean, CIs, per topic."""
    from rich.console import Console
    from rich.table import Table

    from slmkit.summarize import evaluate

    outputs = output_policy([predictions, references], overwrite)
    if output_dir:
        outputs.folder(output_dir, option="--output-dir", files=["rouge.json", "per_example.csv", "per_topic.csv"])

    from slmkit._status import status

    with status(f"scoring {predictions.name} with ROUGE (tokenizer {tokenizer}, {n_bootstrap} bootstrap resamples)"):
        report = evaluate(
            predictions,
            references,
            tokenizer=tokenizer,
            multi_ref=multi_ref,
            n_bootstrap=n_bootstrap,
            seed=seed,
            columns=_columns(id_column, dialogue_column, summary_columns, topic_column),
        )
    _print_scores(str(predictions.name), report)
    table = Table(title="per topic (most frequent)")
    for column in ("topic", "n", "R-1", "R-2", "R-L", "final"):
        table.add_column(column)
    for row in report.per_topic.head(topics).itertuples():
        table.add_row(
            str(row.topic), str(row.n), *(f"{x:.1f}" for x in (row.rouge1, row.rouge2, row.rougeL, row.final))
        )
    Console().print(table)
    if output_dir:
        typer.echo(f"written to {report.save(output_dir)}")
        outputs.record()


@app.command("eda")
@handle_errors
def eda_cmd(
    input: Path = typer.Argument(..., help="Dialogue table."),
    output_dir: Path = typer.Option(Path("out/summarize_eda"), "--output-dir", help="Plots, report.md, eda.json."),
    model: str = typer.Option("gemma3-270m", "--model", help="Model whose tokens are counted; 'none' for chars only."),
    coverage: int = typer.Option(99, "--coverage", help="Token percentile the recommended max lengths cover."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Lengths (chars, tokens), turns, speakers, topics and keywords, compression, plots, recommended lengths."""
    from slmkit.summarize import EdaConfig, describe, load_dialogues, write_eda_report

    config = EdaConfig(coverage=coverage)
    outputs = output_policy([input], overwrite)
    from slmkit.summarize._eda_report import PLOT_NAMES

    ours = outputs.written_by_us(output_dir / "eda.json")  # a folder this command made owns its plots
    outputs.folder(output_dir, option="--output-dir", files=["eda.json", "report.md", *(() if ours else PLOT_NAMES)])
    frame = load_dialogues(input, _columns(id_column, dialogue_column, summary_columns, topic_column), strict=False)
    lm = None
    if model.lower() != "none":
        from slmkit.models import load_model

        lm = load_model(model)
    result = describe(frame, config, lm=lm)
    path = write_eda_report(result, output_dir, title=f"EDA of {input.name}")
    outputs.record()
    if result.recommendation:
        r = result.recommendation
        typer.echo(
            f"recommended max input tokens {r.get('max_input_tokens')}, "
            f"max output tokens {r.get('max_output_tokens')} (p{coverage})"
        )
    typer.echo(f"report: {path}")


@app.command("clean")
@handle_errors
def clean_cmd(
    input: Path = typer.Argument(..., help="Dialogue table."),
    output: Path = typer.Option(..., "--output", help="Cleaned table (CSV/TSV/JSONL/Parquet by suffix)."),
    disable: str = typer.Option("", "--disable", help="Comma-separated steps to skip (see --help of the API)."),
    report: Path = typer.Option(None, "--report", help="Markdown cleaning report (default: beside --output)."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Apply the cleaning steps to the dialogue and every reference column; keep all other columns as they are;
    print what each step changed; flag (never drop) suspicious summaries."""
    from slmkit.data import atomic_open, read_table, write_table
    from slmkit.summarize import CleaningConfig, clean_table, load_dialogues

    config = CleaningConfig(disable=tuple(x.strip() for x in disable.split(",") if x.strip()))
    report = report or output.with_name(output.stem + ".cleaning.md")
    outputs = output_policy([input], overwrite)
    outputs.file(output)
    outputs.file(report, option="--report")
    frame = load_dialogues(input, _columns(id_column, dialogue_column, summary_columns, topic_column), strict=False)
    raw = read_table(input, text_columns=[dialogue_column], id_column=id_column)
    text_columns = [dialogue_column, *frame.attrs["summary_columns"]]
    cleaned, result = clean_table(raw, text_columns, id_column=id_column, config=config)
    write_table(output, cleaned)
    with atomic_open(report) as handle:
        handle.write(result.to_markdown())
    outputs.record()
    for name, count in result.changed.items():
        typer.echo(f"{name}: {count} row(s) changed")
    typer.echo(f"{len(result.flags)} flagged row(s); report: {report}")


@app.command("validate")
@handle_errors
def validate_cmd(
    input: Path = typer.Argument(..., help="Dialogue table."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
) -> None:
    """Check columns, quoting, ids and every dialogue's turn tags; list the problems by row."""
    from slmkit.summarize import load_dialogues

    frame = load_dialogues(input, _columns(id_column, dialogue_column, summary_columns, topic_column), strict=False)
    issues = frame.attrs["issues"]
    for issue in issues:
        typer.echo(f"{issue.severity}: {issue}")
    typer.echo(f"{len(frame)} rows, {len(issues)} issue(s)")
    if any(i.severity == "error" for i in issues):
        raise typer.Exit(code=1)


@app.command("train")
@handle_errors
def train_cmd(
    train: Path = typer.Argument(..., help="Dialogue table with reference summaries (any format `predict` reads)."),
    output: Path = typer.Option(..., "--output", help="Run folder (an unfinished run there resumes)."),
    model: str = typer.Option("gemma3-270m", "--model", help="Base model (causal LM, or seq2seq such as KoBART)."),
    dev: Path = typer.Option(None, "--dev", help="Dev table: eval loss and ROUGE each epoch; best checkpoint by ROUGE."),
    extra: Path = typer.Option(None, "--extra", help="Extra training table, e.g. English rows for a Korean model."),
    eval_rows: int = typer.Option(100, "--eval-rows", help="Dev rows decoded for ROUGE per evaluation (0 = all)."),
    language: str = typer.Option("auto", "--language", help="auto | ko | en (the prompt's instruction)."),
    method: str = typer.Option("lora", "--method", help="full | lora | ptuning"),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the training data (default 3)."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate."),
    config: Path = typer.Option(None, "--config", help="A train_config.json to start from."),
    set_: list[str] = typer.Option(None, "--set", help="Any TrainConfig field, e.g. --set lora_r=16."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
    seed: int = SEED_OPTION,
) -> None:
    """Fine-tune a summarizer; `predict --model RUN` then uses it with the prompt it was trained on."""
    from slmkit.cli.train import build_train_config, print_result
    from slmkit.summarize._train import SummarizeTrainConfig, train_summarizer

    output_policy([train, dev, extra, config], False).folder(output)
    fixed = {"objective": "pairs"}
    if dev is not None and not any(s.startswith("metric_for_best") for s in set_ or []):
        fixed["metric_for_best"] = "rouge"
    train_config = build_train_config(method, epochs, learning_rate, config, set_, seed, **fixed)
    columns = _columns(id_column, dialogue_column, summary_columns, topic_column)
    result = train_summarizer(
        train,
        output,
        SummarizeTrainConfig(model=model, language=language, eval_rows=eval_rows),
        train_config,
        dev_data=dev,
        extra_data=extra,
        columns=columns,
    )
    print_result(result)


@app.command("dpo")
@handle_errors
def dpo_cmd(
    train: Path = typer.Argument(..., help="Dialogue table with reference summaries (usually the training rows)."),
    model: str = typer.Option(..., "--model", help="The fine-tuned summarizer (run folder or merged folder)."),
    output: Path = typer.Option(..., "--output", help="Run folder (an unfinished run there resumes)."),
    beta: float = typer.Option(0.1, "--beta", help="DPO's beta: how far the model may move from where it starts."),
    sft_weight: float = typer.Option(
        0.0, "--sft-weight", help="Weight of an SFT loss on the reference summaries beside DPO's (RPO; 0 = plain DPO)."
    ),
    epochs: float = typer.Option(None, "--epochs", help="Passes over the pairs (default 1)."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Peak learning rate (default 5e-5)."),
    set_: list[str] = typer.Option(None, "--set", help="Any TrainConfig field, e.g. --set lora_r=16."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
    seed: int = SEED_OPTION,
) -> None:
    """Preference-tune (DPO) a fine-tuned summarizer: the reference summary is preferred to the model's own."""
    from dataclasses import asdict

    from slmkit.cli.train import build_train_config, print_result
    from slmkit.summarize._preference import preference_config, preference_tune

    output_policy([train], False).folder(output)
    defaults = preference_config(dpo_beta=beta, dpo_sft_weight=sft_weight)
    fixed = {
        k: v for k, v in asdict(defaults).items() if k in ("objective", "lora_dropout", "dpo_beta", "dpo_sft_weight")
    }
    config = build_train_config(
        defaults.method,
        defaults.epochs if epochs is None else epochs,  # 0 is refused by the config, not replaced by a default
        defaults.learning_rate if learning_rate is None else learning_rate,
        None,
        set_,
        seed,
        **fixed,
    )
    columns = _columns(id_column, dialogue_column, summary_columns, topic_column)
    print_result(preference_tune(model, train, output, config, columns=columns))


@app.command("tune")
@handle_errors
def tune_cmd(
    train: Path = typer.Argument(..., help="Training dialogue table (unused by a decoding-only study)."),
    dev: Path = typer.Option(..., "--dev", help="Dev table the trials are scored on (ROUGE)."),
    output: Path = typer.Option(..., "--output", help="Study folder (SQLite study, trial runs, plots)."),
    space: str = typer.Option("training", "--space", help="training | decoding | both"),
    n_trials: int = typer.Option(8, "--n-trials", help="Trials per space; a resumed study counts its old ones."),
    methods: str = typer.Option("lora", "--methods", help="Comma-separated methods the study may pick."),
    max_epochs: int = typer.Option(4, "--max-epochs", help="Upper bound of the epochs knob (training space)."),
    eval_rows: int = typer.Option(100, "--eval-rows", help="Dev rows decoded per evaluation (0 = all)."),
    model: str = typer.Option("gemma3-270m", "--model", help="Base model; for --space decoding, the trained run."),
    id_column: str = ID_COLUMN,
    dialogue_column: str = DIALOGUE_COLUMN,
    summary_columns: str = SUMMARY_COLUMNS,
    topic_column: str = TOPIC_COLUMN,
    seed: int = SEED_OPTION,
) -> None:
    """Optuna study over training and/or decoding knobs, pruned on dev ROUGE, resumable (SQLite)."""
    from slmkit.summarize._train import SummarizeTrainConfig
    from slmkit.summarize._tune import TuneConfig, tune

    config = TuneConfig(
        space=space,
        n_trials=n_trials,
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        max_epochs=max_epochs,
        eval_rows=eval_rows,
        model=model if space == "decoding" else None,
        seed=seed,
    )
    base = SummarizeTrainConfig(model=model)
    output_policy([train, dev], False).folder(output)
    columns = _columns(id_column, dialogue_column, summary_columns, topic_column)
    result = tune(train, dev, output, config, base, columns=columns)
    for name, best in result.best.items():
        typer.echo(f"best {name} trial: ROUGE {best['value']:.2f} with {best['params']} ({best['run_dir']})")
    typer.echo(f"study: {output / 'tune.json'} (plots beside it)")


@app.command("ensemble")
@handle_errors
def ensemble_cmd(
    predictions: list[Path] = typer.Argument(..., help="Two or more fname,summary CSVs of the same dialogues."),
    output: Path = typer.Option(..., "--output", help="fname,summary CSV of the chosen candidates."),
    tokenizer: str = typer.Option("kiwi", "--tokenizer", help="ROUGE tokenizer: kiwi (Korean) | default (English)"),
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Minimum-Bayes-risk ensemble: per dialogue, keep the candidate with the highest mean ROUGE to the rest."""
    from slmkit.summarize._ensemble import ensemble_files

    outputs = output_policy(predictions, overwrite)
    outputs.file(output)
    frame = ensemble_files(predictions, output, tokenizer=tokenizer)
    outputs.record()
    for path, count in frame.attrs["source_counts"].items():
        typer.echo(f"{count} summaries from {path}")
    typer.echo(f"{len(frame)} summaries in {output}")
