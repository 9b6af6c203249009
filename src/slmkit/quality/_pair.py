"""Train and load a forward/reverse scorer pair, and score documents with it.

The pair lives in one folder:

    scorer/
      quality_config.json   the QualityConfig
      corpus.json           fingerprint of the training corpus (a resume on other data is refused)
      scorer.json           status, both sides' training info and model checksums, token-multiset digests
      base/                 scratch route: the tokenizer trained on the corpus + the random-weight model
      forward/  reverse/    slmkit.train run folders (each resumes from its last checkpoint)

Both sides train through `slmkit.train.train` with one TrainConfig on the same documents; only `reverse`
differs. Scoring uses the runtime's `token_losses`, with `reverse=True` for the reverse side, which lays out
tokens exactly as the reverse side was trained (BOS first, content reversed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from slmkit.data import write_json
from slmkit.errors import ConfigError
from slmkit.quality._config import QUALITY_CONFIG_NAME, SCORE_COLUMNS, QualityConfig

logger = logging.getLogger(__name__)
SCORER_INFO_NAME = "scorer.json"
CORPUS_INFO_NAME = "corpus.json"
REJECT_COLUMN = "reject_reason"
SIDES = ("forward", "reverse")
# Bytes that were not UTF-8, kept by the readers' "surrogateescape" decoding as lone surrogates U+DC80-DCFF.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def corpus_fingerprint(texts: Sequence[str]) -> str:
    """sha256 over the documents in order (the training data may come from a file or from memory)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def training_token_counts(tokenizer, texts: Sequence[str], max_length: int, *, reverse: bool) -> Counter:
    """The multiset of token ids one side of the pair trains on, encoded exactly as slmkit.train does."""
    from slmkit.train import encode_documents

    return Counter(
        t for e in encode_documents(tokenizer, texts, max_length=max_length, reverse=reverse) for t in e.input_ids
    )


def _multiset_digest(counts: Counter) -> str:
    return hashlib.sha256(json.dumps(sorted(counts.items())).encode()).hexdigest()


def train_scorer(
    texts: Sequence[str],
    output_dir: str | Path,
    config: QualityConfig | None = None,
    *,
    source: str = "corpus",
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> dict:
    """Build and train a scorer pair on `texts` into `output_dir`; an unfinished pair there resumes.

    Args:
        texts: the reference corpus (clean text the scorers learn from).
        source: named in error messages (e.g. the corpus file).
        stop_after_steps: stop each side at this step, as an interruption would (tests; splitting a long
            run across sessions). Calling again continues.

    Returns:
        the contents of scorer.json ({"status": "done" | "interrupted", ...}).

    Raises:
        ConfigError: the folder holds another config, another corpus, or is not a scorer folder.
    """
    from slmkit.models import load_model
    from slmkit.models._weights import dir_checksum
    from slmkit.train import build_from_scratch, train

    config = config or QualityConfig()
    output_dir = Path(output_dir)
    texts = list(texts)
    fingerprint = corpus_fingerprint(texts)
    done = _check_scorer_dir(output_dir, config, fingerprint)
    if done is not None:
        return done
    output_dir.mkdir(parents=True, exist_ok=True)
    config.save(output_dir)
    write_json(output_dir / CORPUS_INFO_NAME, {"sha256": fingerprint, "n_documents": len(texts), "source": source})

    if config.route == "scratch":
        base_dir = output_dir / "base"
        if not (base_dir / "config.json").is_file():
            build_from_scratch(texts, base_dir, config.scratch)
        base = str(base_dir)
    else:
        base = config.base_model
    # Its tokenizer encodes the multiset check; it is then the forward side's base, so float32 (training weights).
    loaded = load_model(base, dtype="float32")
    tokenizer = loaded.tokenizer
    max_length = config.training.max_length
    counts = {side: training_token_counts(tokenizer, texts, max_length, reverse=side == "reverse") for side in SIDES}
    if counts["forward"] != counts["reverse"]:  # an invariant of token-level reversal; guard it anyway
        raise ConfigError("the forward and reverse training data hold different tokens; this is a bug")

    runs = {}
    for side in SIDES:
        # The reverse side loads `base` afresh: the two sides never share (or inherit) weights.
        runs[side] = train(
            loaded if side == "forward" else base,
            config.training,
            output_dir / side,
            documents=texts,
            reverse=side == "reverse",
            task="quality",
            task_info={"side": side, "route": config.route},
            source=source,
            progress=progress,
            stop_after_steps=stop_after_steps,
        )
        if runs[side].info.get("status") != "done":
            return {"status": "interrupted", "side": side}
    info = {
        "status": "done",
        "route": config.route,
        "base_model": base if config.route == "adapted" else "base",
        "corpus_sha256": fingerprint,
        "n_documents": len(texts),
        "training_tokens": sum(counts["forward"].values()),
        "token_multiset_sha256": {side: _multiset_digest(counts[side]) for side in SIDES},
        "sides": {
            side: {
                **{k: runs[side].info.get(k) for k in ("steps", "epochs", "seconds", "tokens_per_second", "metrics",
                                                       "base_checksum", "versions")},
                # sha256 over the side's saved weight files (full weights or adapter): what scores come from
                "model_checksum": dir_checksum(runs[side].model_dir),
            }
            for side in SIDES
        },
    }
    write_json(output_dir / SCORER_INFO_NAME, info)
    return info


def _check_scorer_dir(output_dir: Path, config: QualityConfig, fingerprint: str) -> dict | None:
    saved = output_dir / QUALITY_CONFIG_NAME
    if not saved.is_file():
        if output_dir.exists() and any(output_dir.iterdir()):
            raise ConfigError(f"{output_dir} exists and is not a quality scorer folder; choose a new folder")
        return None
    old, new = QualityConfig.load(saved).to_dict(), config.to_dict()
    differs = [k for k in new if old.get(k) != new[k]]
    if differs:
        shown = "; ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in differs)
        raise ConfigError(f"{output_dir} holds a scorer with another config ({shown}); choose a new folder")
    corpus = json.loads((output_dir / CORPUS_INFO_NAME).read_text())
    if corpus.get("sha256") != fingerprint:
        raise ConfigError(
            f"{output_dir} was started on another corpus ({corpus.get('n_documents')} documents from "
            f"{corpus.get('source')}, sha256 {str(corpus.get('sha256'))[:12]}); choose a new folder"
        )
    info_path = output_dir / SCORER_INFO_NAME
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("status") == "done":
            return info
    return None


@dataclass
class ScorerPair:
    """A loaded pair: `forward` and `reverse` TransformersLMs sharing one tokenizer."""

    directory: Path
    config: QualityConfig
    info: dict
    forward: object
    reverse: object

    @property
    def max_tokens(self) -> int:
        """Longest scorable input (BOS included): the models' context; on the scratch route also the training
        length, since a model trained from random weights never learnt the positions past it (a 743-token text
        on a pair trained on 32-token blocks lost 0.8 nats per token beyond them)."""
        ceiling = min(self.forward.max_length, self.reverse.max_length)
        if self.config.route == "scratch":
            ceiling = min(ceiling, self.config.training.max_length)
        return ceiling

    def checksums(self) -> dict:
        return {
            "quality_config_sha256": hashlib.sha256(
                json.dumps({**self.config.to_dict(), "training": self.config.training.identity()}, sort_keys=True)
                .encode()
            ).hexdigest(),
            "forward": self.forward.info.get("checksum"),
            "reverse": self.reverse.info.get("checksum"),
        }

    def score_texts(self, texts: Sequence[str], *, batch_size: int = 8, max_tokens: int | None = None) -> pd.DataFrame:
        """Score in-memory texts: one row per text with SCORE_COLUMNS and REJECT_COLUMN (None when scored)."""
        frame = pd.DataFrame({"text": list(texts)}, dtype=object)
        return score_frame(self, frame, text_column="text", batch_size=batch_size, max_tokens=max_tokens)


def load_scorer(directory: str | Path) -> ScorerPair:
    """Load a finished scorer folder (both sides through `load_model`, LoRA merged in memory)."""
    from slmkit.models import load_model

    directory = Path(directory)
    info_path = directory / SCORER_INFO_NAME
    if not (directory / QUALITY_CONFIG_NAME).is_file():
        raise ConfigError(f"{directory}: not a quality scorer folder (no {QUALITY_CONFIG_NAME}); run quality train")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if info.get("status") != "done":
        raise ConfigError(f"{directory}: the scorer pair has not finished training; run quality train again")
    forward, reverse = (load_model(str(directory / side)) for side in SIDES)
    if forward.tokenizer.get_vocab() != reverse.tokenizer.get_vocab():
        raise ConfigError(f"{directory}: the forward and reverse models use different tokenizers")
    return ScorerPair(directory, QualityConfig.load(directory), info, forward, reverse)


def row_problem(text) -> str | None:
    """Why a row's text cannot be scored (None if it can); the length check needs the tokenizer."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "missing text"
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string"
    if _UNDECODABLE.search(text):
        return "undecodable bytes (not UTF-8)"
    if not text.strip():
        return "empty text"
    return None


def score_frame(
    pair: ScorerPair, frame: pd.DataFrame, *, text_column: str, batch_size: int = 8, max_tokens: int | None = None
) -> pd.DataFrame:
    """`frame` with SCORE_COLUMNS added and REJECT_COLUMN saying why a row was not scored (None if it was).

    A REJECT_COLUMN already in `frame` (set by a reader, e.g. invalid JSON) is kept. S = mean forward token
    loss - mean reverse token loss over the same content tokens; perplexities are exp(mean loss).
    `max_tokens` caps the content tokens (default and ceiling: `ScorerPair.max_tokens` minus BOS).
    """
    clash = [c for c in SCORE_COLUMNS if c in frame.columns]
    if clash:
        raise ConfigError(f"the input already has column(s) {', '.join(clash)}; rename them before scoring")
    limit = min(max_tokens or pair.max_tokens, pair.max_tokens - 1)
    texts = list(frame[text_column])
    given = list(frame[REJECT_COLUMN]) if REJECT_COLUMN in frame else [None] * len(frame)
    reasons = [r if isinstance(r, str) and r else row_problem(t) for r, t in zip(given, texts)]
    candidates = [i for i, r in enumerate(reasons) if r is None]
    for i, n in zip(candidates, pair.forward.count_tokens([texts[i] for i in candidates]) if candidates else []):
        if n > limit:
            reasons[i] = f"too long: {n} tokens > max_tokens {limit}"
        elif n == 0:
            reasons[i] = "no tokens to score"
    good = [i for i, r in enumerate(reasons) if r is None]
    columns = {name: np.full(len(texts), np.nan) for name in SCORE_COLUMNS}
    if good:
        batch = [texts[i] for i in good]
        fwd = pair.forward.token_losses(batch, batch_size=batch_size)
        rev = pair.reverse.token_losses(batch, batch_size=batch_size, reverse=True)
        for i, f, r in zip(good, fwd, rev):
            if not len(f):  # a one-token text, and a tokenizer that adds no BOS: nothing is predicted
                reasons[i] = "no tokens to score (one token, and the tokenizer adds no BOS to predict it from)"
                continue
            fl, rl = float(np.mean(f, dtype=np.float64)), float(np.mean(r, dtype=np.float64))
            values = {"n_tokens": len(f), "forward_loss": fl, "reverse_loss": rl, "S": fl - rl}
            values.update(forward_ppl=math.exp(fl), reverse_ppl=math.exp(rl))
            for name, value in values.items():
                columns[name][i] = value
    out = frame.drop(columns=[REJECT_COLUMN], errors="ignore")
    for name, values in columns.items():
        out[name] = values
    out[REJECT_COLUMN] = reasons
    return out
