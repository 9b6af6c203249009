"""Command-line interface: thin typer apps over the Python API (one file per command group)."""
