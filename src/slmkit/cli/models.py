"""`slmkit models ...`: what is installed, and preparing a model for offline use."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from slmkit.cli._common import handle_errors

app = typer.Typer(no_args_is_help=True, help="List and prepare the built-in models.")


@app.command("list")
@handle_errors
def list_cmd() -> None:
    """Show each built-in model (installed or not, size on disk, licence, conversion caches) and each engine
    (available here or not, its precisions)."""
    from slmkit.models import cache_dir, model_statuses
    from slmkit.models._inventory import engine_statuses

    table = Table(title=f"slmkit models (cache: {cache_dir()})")
    for column in ("name", "kind", "package", "installed", "size MB", "licence", "converted cache", "engine cache"):
        table.add_column(column)
    for status in model_statuses():
        row = status.to_row()
        table.add_row(
            row["name"],
            row["kind"],
            row["package"],
            "yes" if row["installed"] else "no",
            "-" if row["size_mb"] is None else f"{row['size_mb']:.0f}",
            row["licence"],
            "ready" if row["converted_cache"] else "not yet",
            ", ".join(row["engine_caches"]) or "-",
        )
    engines = Table(title="engines (load_model(..., backend=...), --backend)")
    for column in ("backend", "available", "version", "precisions", "note"):
        engines.add_column(column)
    for status in engine_statuses():
        row = status.to_row()
        engines.add_row(row["backend"], "yes" if row["available"] else "no", row["version"] or "-",
                        ", ".join(row["precisions"]), row["note"])
    console = Console()
    console.print(table)
    console.print(engines)


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
