"""The Ray Data engine: the same `score_frame` on every worker, one scorer pair loaded per worker actor.

Ray's own readers stream the file in blocks to a pool of actors (`map_batches` with a callable class, so each
worker loads the pair once); the driver receives the scored rows in file order and writes them with the same
part/rejects/manifest writer as local mode. Imported only for `engine="ray"`: local mode never imports Ray.

Ray's readers parse whole files strictly, so a file with undecodable bytes or a broken JSON line fails here;
score it with the local engine, which rejects such rows one by one. Row-level problems (empty text, too many
tokens) are rejected per row on either engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from slmkit.errors import DataError, MissingExtraError
from slmkit.quality._config import ScoreConfig


class RayScorer:
    """A Ray Data actor: loads the scorer pair once, then scores batches (pandas in, pandas out)."""

    def __init__(self, scorer_dir: str, config: dict) -> None:
        from slmkit.quality._pair import load_scorer

        self.pair = load_scorer(scorer_dir)
        self.config = ScoreConfig(**config)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from slmkit.quality._pair import score_frame

        c = self.config
        return score_frame(
            self.pair, batch, text_column=c.text_column, batch_size=c.batch_size, max_tokens=c.max_tokens
        )


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("the Ray engine needs Ray Data: pip install 'slmkit[ray]'") from exc
    return ray


# Read tasks reserve no CPU: each scorer actor holds a whole one for the whole run, so on a one-CPU node a
# read task that asked for a CPU would wait for ever behind the actor that waits for its rows.
_READ_CPUS = 0


def read_dataset(path: Path, config: ScoreConfig):
    """A Ray Dataset over the file, read by Ray's own streaming readers."""
    ray = _import_ray()
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return ray.data.read_parquet(str(path), num_cpus=_READ_CPUS)
    if suffix == ".jsonl":
        return ray.data.read_json(str(path), lines=True, num_cpus=_READ_CPUS)
    if suffix in (".csv", ".tsv"):
        import csv

        import pyarrow as pa
        import pyarrow.csv as pacsv

        # Every cell as text, an empty one as "", as the local engine reads them: Arrow would infer types (an id of
        # "007" becomes 7), so a run finished locally after Ray would name the same rows differently.
        delimiter = "\t" if suffix == ".tsv" else ","
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
        convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                       strings_can_be_null=False, quoted_strings_can_be_null=False)
        return ray.data.read_csv(str(path), parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                 convert_options=convert, num_cpus=_READ_CPUS)
    raise DataError(f"{path}: unsupported file type {suffix!r} for the Ray engine")


def ray_chunks(input_path: Path, scorer_dir: Path, config: ScoreConfig) -> Iterator[tuple[pd.DataFrame, int]]:
    """(scored frame, rows so far) per chunk of `config.chunk_rows` rows, in file order."""
    from dataclasses import asdict

    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)  # a local instance; or RAY_ADDRESS to join a cluster
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # parts follow the file's rows
    dataset = read_dataset(input_path, config)
    names = dataset.schema().names
    wanted = [config.text_column] + ([config.id_column] if config.id_column else [])
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(
            f"{input_path}: missing column(s) {', '.join(map(repr, missing))}; found {', '.join(map(repr, names))} "
            "(choose the right ones with --text-column / --id-column)"
        )
    scored = dataset.map_batches(
        RayScorer,
        fn_constructor_args=(str(scorer_dir), asdict(config)),
        batch_size=config.chunk_rows,
        batch_format="pandas",
        concurrency=config.workers,
        num_cpus=1,
    )
    done = 0
    for batch in scored.iter_batches(batch_size=config.chunk_rows, batch_format="pandas"):
        done += len(batch)
        yield batch, done
