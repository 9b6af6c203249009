"""`slmkit models ...`: what is installed, and preparing a model for offline use."""

from __future__ import annotations

import json
import textwrap

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.markup import escape
from rich.table import Table

from slmkit.cli._common import Typer, handle_errors

app = Typer(no_args_is_help=True, help="List and prepare the built-in models.")


@app.command("list")
@handle_errors
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (models, engines) for scripts."),
) -> None:
    """Show each built-in model (installed or not, size on disk, licence, conversion caches) and each engine
    (available here or not, its precisions)."""
    from slmkit.models import cache_dir, model_statuses
    from slmkit.models._inventory import engine_statuses

    models = [status.to_row() for status in model_statuses()]
    backends = [status.to_row() for status in engine_statuses()]
    if as_json:
        typer.echo(json.dumps({"cache": str(cache_dir()), "models": models, "engines": backends}, indent=2))
        return
    table = Table(title=f"slmkit models (cache: {cache_dir()})")
    for column in ("name", "kind", "package", "installed", "size MB", "licence", "converted cache", "engine cache"):
        table.add_column(column, no_wrap=column in ("name", "package"))
    cells = [_model_cells(row) for row in models]
    for row in cells:
        table.add_row(*row.values())
    engines = Table(title="engines (load_model(..., backend=...), --backend)")
    for column in ("backend", "available", "version", "precisions", "note"):
        engines.add_column(column, no_wrap=column == "backend")
    engine_cells = [_engine_cells(row) for row in backends]
    for row in engine_cells:
        engines.add_row(*row.values())
    console = Console()
    if Measurement.get(console, console.options.update_width(10_000), table).maximum <= console.width:
        console.print(table)
        console.print(engines)
        return
    # Narrower than the table (an 80-column terminal, or a pipe, where rich assumes 80): rich would cut the
    # names a user types back ("gemma3…"), so print one record per model and engine instead.
    for title, rows, key in ((f"[bold]slmkit models[/bold] (cache: {cache_dir()})", cells, "name"),
                             ("[bold]engines[/bold] (load_model(..., backend=...), --backend)", engine_cells,
                              "backend")):
        console.print(title, highlight=False)
        for row in rows:
            console.print(f"  [bold]{row[key]}[/bold]", highlight=False)
            console.print(_indented(", ".join(f"{k}: {v}" for k, v in row.items() if k != key), console.width),
                          highlight=False, soft_wrap=True)


def _indented(text: str, width: int) -> str:
    return textwrap.fill(escape(text), width=max(width, 20), initial_indent=" " * 6, subsequent_indent=" " * 6,
                         break_long_words=False, break_on_hyphens=False)


def _engine_cells(row: dict) -> dict:
    return {"backend": row["backend"], "available": "yes" if row["available"] else "no",
            "version": row["version"] or "-", "precisions": ", ".join(row["precisions"]), "note": row["note"]}


def _model_cells(row: dict) -> dict:
    return {"name": row["name"], "kind": row["kind"], "package": row["package"],
            "installed": "yes" if row["installed"] else "no",
            "size MB": "-" if row["size_mb"] is None else f"{row['size_mb']:.0f}", "licence": row["licence"],
            "converted cache": "ready" if row["converted_cache"] else "not yet",
            "engine cache": ", ".join(row["engine_caches"]) or "-"}


@app.command("prepare")
@handle_errors
def prepare_cmd(name: str = typer.Argument("gemma3-270m", help="Registry name, directory or .gguf file.")) -> None:
    """Load a model once so its GGUF -> safetensors conversion is cached for fast later loads."""
    from slmkit.models import load_model

    lm = load_model(name)
    typer.echo(
        f"{lm.spec.name}: ready ({lm.info['n_parameters'] / 1e6:.0f}M parameters, "
        f"loaded in {lm.info['load_seconds']} s, sha256 {lm.info['checksum'][:12]})"
    )
