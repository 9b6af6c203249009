"""The `slmkit` root app: mounts one sub-app per command group (one file each in this package)."""

from __future__ import annotations

import typer

from slmkit import __version__
from slmkit.cli import classify as classify_cli
from slmkit.cli import models as models_cli
from slmkit.cli import quality as quality_cli
from slmkit.cli import runtime as runtime_cli
from slmkit.cli import serve as serve_cli
from slmkit.cli import summarize as summarize_cli
from slmkit.cli import train as train_cli
from slmkit.cli._common import Typer

app = Typer(no_args_is_help=True, add_completion=False, help="Small language models, strong and local.")
app.add_typer(summarize_cli.app, name="summarize")
app.add_typer(classify_cli.app, name="classify")
app.add_typer(quality_cli.app, name="quality")
app.add_typer(train_cli.app, name="train")
app.add_typer(models_cli.app, name="models")
app.add_typer(runtime_cli.app, name="lm")
app.command("serve")(serve_cli.serve_cmd)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="On an unexpected error, print the traceback (also SLMKIT_DEBUG=1)."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


if __name__ == "__main__":
    app()
