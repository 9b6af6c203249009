"""`tune`: one Optuna study over training knobs and/or decoding knobs of a fine-tuned summarizer.

Each training trial fine-tunes a run (study_dir/trial_N) and reports dev ROUGE after every epoch, so the
pruner stops trials that fall behind; decoding trials decode the dev rows with one trained model. The first
trial of a new study is the default recipe (training) or the default decoding: the sampler starts from it. The study
lives in SQLite inside study_dir: a killed study resumes (trials that were running when it died are marked
failed and queued again with the same parameters; a training trial's rerun continues the dead one's run folder from
its last checkpoint). Plots: Optuna's history and parameter importances.
"""

from __future__ import annotations

import gc
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from slmkit.data import write_json
from slmkit.errors import ConfigError
from slmkit.summarize._data import DialogueColumns, load_dialogues
from slmkit.summarize._dialogue import detect_language
from slmkit.summarize._train import DecodeConfig, FineTunedSummarizer, SummarizeTrainConfig, train_summarizer

logger = logging.getLogger(__name__)
SPACES = ("training", "decoding", "both")


@dataclass
class TuneConfig:
    """The study.

    Attributes:
        space: "training" (learning rate, epochs, warm-up, weight decay, LoRA r/alpha, method), "decoding"
            (beams, lengths, penalties, n-gram blocking) or "both" (training trials, then decoding trials on
            the best trained run).
        n_trials: trials per space (a resumed study counts the trials it already has).
        methods: training methods the study may pick from.
        max_epochs: upper bound of the epochs knob.
        eval_rows: the first dev rows decoded per evaluation (0 = all), as in SummarizeTrainConfig.
        model: decoding-only studies: the fine-tuned run to decode with.
        seed: sampler seed (TPE) and training seed.
    """

    space: str = "training"
    n_trials: int = 8
    methods: tuple[str, ...] = ("lora",)
    max_epochs: int = 4
    eval_rows: int = 100
    model: str | None = None
    seed: int = 0
    study_name: str = "summarize"

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ConfigError(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.n_trials < 1 or self.max_epochs < 1 or self.eval_rows < 0:
            raise ConfigError("n_trials and max_epochs must be >= 1, eval_rows >= 0")
        from slmkit.train import METHODS

        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ConfigError(f"methods must be some of {', '.join(METHODS)}, got {self.methods}")
        if self.space == "decoding" and not self.model:
            raise ConfigError("a decoding-only study needs the fine-tuned run to decode with (model)")


@dataclass
class TuneResult:
    study_dir: Path
    best: dict = field(default_factory=dict)
    trials: list[dict] = field(default_factory=list)


# The search spaces, written once: `suggest_*` sample them and `default_*_params` clip a default into them.
# A (low, high) pair is a float range (learning rates sampled on a log scale); a list is a set of choices.
TRAINING_SPACE = {
    "warmup_ratio": (0.0, 0.2),
    "weight_decay": (0.0, 0.1),
    "full_learning_rate": (1e-5, 2e-4),
    "ptuning_learning_rate": (1e-4, 3e-3),
    "learning_rate": (5e-5, 1e-3),  # LoRA
    "lora_r": [8, 16, 32, 64],
    "lora_alpha": [16, 32, 64],
}
DECODING_SPACE = {
    "temperature": (0.3, 1.0),
    "top_p": (0.7, 1.0),
    "num_beams": [1, 2, 4],
    "length_penalty": (0.6, 1.6),
    "no_repeat_ngram_size": [0, 3, 4],
    "repetition_penalty": (1.0, 1.3),
    "max_new_tokens": [64, 96, 128],
    "min_new_tokens": [0, 8, 16],
}
_LR_PARAM = {"full": "full_learning_rate", "ptuning": "ptuning_learning_rate", "lora": "learning_rate"}


def _suggest(trial, space: dict, name: str, **kwargs):
    bounds = space[name]
    if isinstance(bounds, list):
        return trial.suggest_categorical(name, bounds)
    return trial.suggest_float(name, *bounds, **kwargs)


def _into(space: dict, name: str, value):
    """`value` moved into the space: clipped to a range, or the nearest of the choices."""
    bounds = space[name]
    if isinstance(bounds, list):
        return min(bounds, key=lambda choice: abs(choice - value))
    return min(max(value, bounds[0]), bounds[1])


def suggest_training(trial, config: TuneConfig, base):
    """A TrainConfig with the trial's training knobs on top of `base`."""
    method = trial.suggest_categorical("method", list(config.methods))
    knobs = dict(
        method=method,
        epochs=float(trial.suggest_int("epochs", 1, config.max_epochs)),
        warmup_ratio=_suggest(trial, TRAINING_SPACE, "warmup_ratio"),
        weight_decay=_suggest(trial, TRAINING_SPACE, "weight_decay"),
        learning_rate=_suggest(trial, TRAINING_SPACE, _LR_PARAM[method], log=True),
        seed=config.seed,
        metric_for_best="rouge",
        report_to="none",
    )
    if method == "lora":
        knobs["lora_r"] = _suggest(trial, TRAINING_SPACE, "lora_r")
        knobs["lora_alpha"] = _suggest(trial, TRAINING_SPACE, "lora_alpha")
    return replace(base, **knobs)


def default_training_params(config: TuneConfig, base) -> dict:
    """`base` (the default recipe) as trial parameters of `suggest_training`, moved into the search space.

    A new study runs this trial first: the study then never reports a best worse than the default recipe
    on its own dev rows, and the sampler starts from a known good point (Optuna's enqueue_trial).
    """
    if base.method not in config.methods:
        return {}
    params = {
        "method": base.method,
        "epochs": min(max(1, round(base.epochs)), config.max_epochs),
        "warmup_ratio": _into(TRAINING_SPACE, "warmup_ratio", base.warmup_ratio),
        "weight_decay": _into(TRAINING_SPACE, "weight_decay", base.weight_decay),
        _LR_PARAM[base.method]: _into(TRAINING_SPACE, _LR_PARAM[base.method], base.learning_rate),
    }
    if base.method == "lora":
        params["lora_r"] = _into(TRAINING_SPACE, "lora_r", base.lora_r)
        params["lora_alpha"] = _into(TRAINING_SPACE, "lora_alpha", base.lora_alpha)
    return params


def default_decoding_params(base: DecodeConfig) -> dict:
    """`base` decoding as trial parameters of `suggest_decoding` (greedy unless `base` says otherwise)."""
    names = ["no_repeat_ngram_size", "repetition_penalty", "max_new_tokens", "min_new_tokens"]
    names += ["temperature", "top_p"] if base.do_sample else ["num_beams"]
    params = {"do_sample": base.do_sample, **{n: _into(DECODING_SPACE, n, getattr(base, n)) for n in names}}
    if params.get("num_beams", 1) > 1:
        params["length_penalty"] = _into(DECODING_SPACE, "length_penalty", base.length_penalty)
    return params


def suggest_decoding(trial, base: DecodeConfig) -> DecodeConfig:
    """Beam search or sampling, lengths, penalties and n-gram blocking (conditional knobs only when they apply)."""
    sample = trial.suggest_categorical("do_sample", [False, True])
    beams = 1 if sample else _suggest(trial, DECODING_SPACE, "num_beams")
    return replace(
        base,
        do_sample=sample,
        temperature=_suggest(trial, DECODING_SPACE, "temperature") if sample else 1.0,
        top_p=_suggest(trial, DECODING_SPACE, "top_p") if sample else 1.0,
        num_beams=beams,
        length_penalty=_suggest(trial, DECODING_SPACE, "length_penalty") if beams > 1 else 1.0,
        **{
            name: _suggest(trial, DECODING_SPACE, name)
            for name in ("no_repeat_ngram_size", "repetition_penalty", "max_new_tokens", "min_new_tokens")
        },
    )


def tune(
    train_data,
    dev_data,
    study_dir: str | Path,
    config: TuneConfig | None = None,
    summarize_config: SummarizeTrainConfig | None = None,
    train_config=None,
    *,
    columns: DialogueColumns | None = None,
    progress: bool = True,
) -> TuneResult:
    """Run (or resume) the study in `study_dir`; returns the best trial and every trial's values."""
    import optuna

    from slmkit.train import TrainConfig

    config = config or TuneConfig()
    summarize_config = summarize_config or SummarizeTrainConfig()
    base_train = train_config or TrainConfig(metric_for_best="rouge")
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    dev = dev_data if isinstance(dev_data, pd.DataFrame) else load_dialogues(dev_data, columns, require_summary=True)
    if config.eval_rows:
        dev = dev.iloc[: config.eval_rows]
    train_frame = None
    if config.space != "decoding":
        train_frame = (
            train_data
            if isinstance(train_data, pd.DataFrame)
            else load_dialogues(train_data, columns, require_summary=True)
        )
    language = summarize_config.language
    if language == "auto":
        language = detect_language(list((train_frame if train_frame is not None else dev)["dialogue"]))
    summarize_config = replace(summarize_config, language=language)
    storage = f"sqlite:///{(study_dir / 'study.db').resolve()}"
    result = TuneResult(study_dir)
    best_run = config.model

    # What the trials are scored on and trained from: a resume with other data, base model or settings would rank
    # trials of two experiments against each other (n_trials may grow; nothing else may change).
    inputs = {
        "dev_sha256": _frame_digest(dev),
        "train_sha256": _frame_digest(train_frame) if train_frame is not None else None,
        "tune": {k: v for k, v in asdict(config).items() if k != "n_trials"},
        "summarize": asdict(summarize_config),
        "train": base_train.identity(),  # fields added later drop out at their defaults: old studies resume
    }

    if config.space in ("training", "both"):
        study = _study(optuna, storage, f"{config.study_name}-training", config.seed, pruned=True, run_dirs=study_dir)
        _check_inputs(study, inputs, study_dir)
        if not study.trials and (first := default_training_params(config, base_train)):
            study.enqueue_trial(first)

        def objective(trial) -> float:
            train_config = suggest_training(trial, config, base_train)
            step = {"n": 0}

            def report(metrics: dict) -> None:
                trial.report(metrics["rouge"], step["n"])
                step["n"] += 1
                if trial.should_prune():
                    raise optuna.TrialPruned(f"dev ROUGE {metrics['rouge']:.2f} after evaluation {step['n']}")

            # A trial that reruns one killed mid-training continues its run folder from the last checkpoint, and
            # reports the evaluations made before the kill again, so the pruner compares it at the same epochs.
            run_dir = Path(trial.user_attrs.get("resume_dir") or study_dir / f"trial_{trial.number}")
            trial.set_user_attr("run_dir", str(run_dir))
            earlier = sorted((int(n), value) for n, value in (trial.user_attrs.get("resume_reports") or {}).items())
            kept = _evaluations_kept(run_dir, len(earlier))
            for n, value in earlier[:kept]:
                trial.report(value, n)
            step["n"] = kept
            try:
                run = train_summarizer(
                    train_frame,
                    run_dir,
                    summarize_config,
                    train_config,
                    dev_data=dev,
                    on_evaluate=report,
                    progress=progress,
                )
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)  # optuna marks it FAIL; the next run resumes it
                raise
            finally:
                gc.collect()  # models of finished trials must not pile up in memory
            return float(run.info["metrics"]["best_metric"])

        _optimize(study, objective, config.n_trials)
        result.trials += _trials(study, "training")
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        if done:
            best_run = study.best_trial.user_attrs["run_dir"]
            result.best["training"] = {"value": study.best_value, "params": study.best_params, "run_dir": best_run}
        _plots(optuna, study, study_dir / "training")

    if config.space in ("decoding", "both") and best_run:
        from slmkit.metrics import rouge
        from slmkit.models import load_model
        from slmkit.summarize._evaluate import resolve_tokenizer

        lm = load_model(str(best_run))
        # One decoding study per trained model: more training trials can change the best run, and its decoding
        # trials must not be ranked with another model's.
        suffix = "" if config.space == "decoding" else f"-{Path(best_run).name}"
        study = _study(optuna, storage, f"{config.study_name}-decoding{suffix}", config.seed, pruned=False)
        _check_inputs(study, {**inputs, "model": str(best_run)}, study_dir)
        if not study.trials:
            study.enqueue_trial(default_decoding_params(summarize_config.decode))

        def decode_objective(trial) -> float:
            decode = suggest_decoding(trial, summarize_config.decode)
            predictions = FineTunedSummarizer(lm, language, decode, seed=config.seed).summarize(list(dev["dialogue"]))
            scores = rouge(
                predictions, list(dev["references"]), tokenizer=resolve_tokenizer("auto", language), n_bootstrap=0
            )
            return float(scores.summary()["final"])

        _optimize(study, decode_objective, config.n_trials)
        result.trials += _trials(study, "decoding")
        if any(t.state.name == "COMPLETE" for t in study.trials):
            result.best["decoding"] = {"value": study.best_value, "params": study.best_params, "run_dir": best_run}
        _plots(optuna, study, study_dir / "decoding")
        del lm
        gc.collect()

    write_json(study_dir / "tune.json", {"config": asdict(config), "best": result.best, "trials": result.trials})
    return result


def _frame_digest(frame: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(pd.util.hash_pandas_object(frame.astype(str), index=False).values.tobytes()).hexdigest()


def _check_inputs(study, inputs: dict, study_dir: Path) -> None:
    """Record what a new study runs on; refuse to resume one that ran on anything else, naming what differs."""
    import json

    from slmkit.data._outputs import describe_differences

    inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
    saved = study.user_attrs.get("inputs")
    if saved is None:
        if not study.trials:  # studies from before this record resume as they are
            study.set_user_attr("inputs", inputs)
        return
    differences = describe_differences(saved, inputs)
    if differences:
        raise ConfigError(
            f"{study_dir}: the study there ran with {'; '.join(differences[:4])}"
            f"{f' (and {len(differences) - 4} more)' if len(differences) > 4 else ''}; "
            "choose a new study folder, or delete this one"
        )


def _study(optuna, storage: str, name: str, seed: int, *, pruned: bool, run_dirs: Path | None = None):
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0) if pruned else None,
    )
    # A resumed study samples on from a fresh seed: TPE's random start-up draws restart from its seed, so the
    # same seed in a new process proposed the first trials' parameters again (each a whole training run).
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    # One process drives a study: a trial still RUNNING in storage died with its process (a kill), and one
    # failed by Ctrl-C (optuna marks it FAIL) was interrupted too. Queue its parameters again, so a stopped
    # study resumes where it stopped; a training trial's rerun also takes over its run folder (resumed from the
    # last checkpoint) and its evaluations so far. A trial that failed of an error is not retried.
    taken = {t.user_attrs.get("resume_dir") for t in study.trials} - {None}
    stopped = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
               if t.user_attrs.get("interrupted") and t.user_attrs.get("run_dir") not in taken]
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    for trial in sorted([*running, *stopped], key=lambda t: t.number):
        attrs = None
        if run_dirs is not None:
            attrs = {
                "resume_dir": trial.user_attrs.get("run_dir", str(run_dirs / f"trial_{trial.number}")),
                "resume_reports": {str(n): v for n, v in trial.intermediate_values.items()},
            }
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)
        logger.warning(
            "trial %d was interrupted; it will run again%s",
            trial.number,
            f", resuming {attrs['resume_dir']}" if attrs else "",
        )
    return study


def _evaluations_kept(run_dir: Path, reported: int) -> int:
    """How many of a killed trial's `reported` evaluations its run folder still holds: all of them for a finished
    run, else those in the checkpoint it resumes from. One reported after that checkpoint (the process died
    between an epoch's evaluation and its checkpoint) is redone by the resumed run, and reported at its own step
    again, not one step later."""
    from slmkit.train._run import RUN_INFO_NAME, _last_checkpoint

    record = run_dir / RUN_INFO_NAME
    if record.is_file() and json.loads(record.read_text()).get("status") == "done":
        return reported
    checkpoint = _last_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        return 0
    history = json.loads((checkpoint / "trainer_state.json").read_text()).get("log_history", [])
    return min(reported, sum("eval_rouge" in entry for entry in history))


def _optimize(study, objective, n_trials: int) -> None:
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    if finished < n_trials:
        study.optimize(objective, n_trials=n_trials - finished, gc_after_trial=True, catch=())


def _trials(study, space: str) -> list[dict]:
    return [
        {
            "space": space,
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.params,
            "intermediate": dict(t.intermediate_values),
        }
        for t in study.trials
    ]


def _plots(optuna, study, prefix: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slmkit.data import atomic_open

    plots = {"history": optuna.visualization.matplotlib.plot_optimization_history}
    if sum(t.state.name == "COMPLETE" for t in study.trials) >= 2 and len(study.best_params) > 1:
        plots["importance"] = optuna.visualization.matplotlib.plot_param_importances
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # Optuna flags its matplotlib plots as experimental on every call
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances of a parameter that never varied
            logger.info("no %s plot: %s", name, exc)
            continue
        with atomic_open(Path(f"{prefix}_{name}.png"), "wb") as handle:
            ax.figure.savefig(handle, format="png", dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
