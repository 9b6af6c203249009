"""QualityConfig (how a scorer pair is built and trained) and ScoreConfig (how a corpus is scored)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from slmkit._constants import DEFAULT_MODEL, DEFAULT_SEED
from slmkit.errors import ConfigError
from slmkit.train import ScratchConfig, TrainConfig

ROUTES = ("scratch", "adapted")
QUALITY_CONFIG_NAME = "quality_config.json"
SCORE_COLUMNS = ("n_tokens", "forward_loss", "reverse_loss", "S", "forward_ppl", "reverse_ppl")


def default_training(route: str) -> TrainConfig:
    """The route's training defaults: a random model needs every weight and a higher learning rate; a
    pretrained one is adapted with LoRA (served merged)."""
    if route == "scratch":
        return TrainConfig(objective="documents", method="full", learning_rate=1e-3, epochs=2, max_length=512)
    return TrainConfig(objective="documents", method="lora", epochs=1, max_length=512)


@dataclass
class QualityConfig:
    """A forward/reverse scorer pair: both sides share architecture, tokenizer, data, steps, method and seed.

    Attributes:
        route: "scratch" (tokenizer trained on the corpus + a small random Llama-style model, trained twice)
            or "adapted" (`base_model` fine-tuned on reversed documents, and its forward twin on the same
            documents in forward order).
        base_model: the pretrained model of the adapted route (registry name or path).
        scratch: model and tokenizer size of the scratch route.
        training: how both sides are trained (objective "documents"); None = the route's defaults.
        seed: the one seed; it overrides `scratch.seed` and `training.seed`, so the two sides cannot differ.
    """

    route: str = "scratch"
    base_model: str = DEFAULT_MODEL
    scratch: ScratchConfig = field(default_factory=ScratchConfig)
    training: TrainConfig | None = None
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ConfigError(f"QualityConfig.route must be one of {', '.join(ROUTES)}, got {self.route!r}")
        training = self.training or default_training(self.route)
        self.training = replace(training, seed=self.seed)
        self.scratch = replace(self.scratch, seed=self.seed)
        if self.training.objective != "documents":
            raise ConfigError("QualityConfig.training.objective must be 'documents' (next-token over documents)")
        if self.training.method == "ptuning":
            raise ConfigError("QualityConfig.training.method 'ptuning' cannot score token losses; use full or lora")
        if self.route == "scratch" and self.training.method != "full":
            raise ConfigError("the scratch route trains random weights: QualityConfig.training.method must be 'full'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> QualityConfig:
        values = dict(values)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown QualityConfig field(s): {', '.join(unknown)}")
        if isinstance(values.get("scratch"), dict):
            known = {f.name for f in fields(ScratchConfig)}
            bad = sorted(set(values["scratch"]) - known)
            if bad:
                raise ConfigError(f"unknown QualityConfig.scratch field(s): {', '.join(bad)}")
            values["scratch"] = ScratchConfig(**values["scratch"])
        if isinstance(values.get("training"), dict):
            values["training"] = TrainConfig.from_dict(values["training"])
        return cls(**values)

    def save(self, directory: str | Path) -> Path:
        from slmkit.data import write_json

        return write_json(Path(directory) / QUALITY_CONFIG_NAME, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> QualityConfig:
        path = Path(path)
        if path.is_dir():
            path = path / QUALITY_CONFIG_NAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable quality config ({exc})") from exc


@dataclass
class ScoreConfig:
    """How a corpus file is read and scored.

    Attributes:
        text_column: the documents.
        id_column: a row id column; None uses "id" when the file has one, else the 1-based row number.
        chunk_rows: rows read, scored and written per chunk (the unit of resume and of memory use).
        batch_size: documents per forward pass.
        max_tokens: longer documents are rejected (reported, not truncated: a truncated document's score
            is not the document's); None = the context the pair was trained on (`ScorerPair.max_tokens`).
        output_format: "parquet" or "jsonl" part files.
        engine: "local" (this process) or "ray" (Ray Data, one scorer pair per worker).
        workers: Ray workers (engine "ray").
    """

    text_column: str = "text"
    id_column: str | None = None
    chunk_rows: int = 1000
    batch_size: int = 8
    max_tokens: int | None = None
    output_format: str = "parquet"
    engine: str = "local"
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("chunk_rows", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ScoreConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"ScoreConfig.max_tokens must be >= 1, got {self.max_tokens}")
        if self.output_format not in ("parquet", "jsonl"):
            raise ConfigError(f"ScoreConfig.output_format must be parquet or jsonl, got {self.output_format!r}")
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"ScoreConfig.engine must be local or ray, got {self.engine!r}")

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues (batching and engine do not
        change which rows land in which part file)."""
        values = asdict(self)
        return {k: values[k] for k in ("text_column", "id_column", "chunk_rows", "max_tokens", "output_format")}
