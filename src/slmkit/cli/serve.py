"""`slmkit serve`: the HTTP API (OpenAI-compatible runtime + jobs) and the web page, in one process."""

from __future__ import annotations

from pathlib import Path

import typer

from slmkit.cli._common import SEED_OPTION, handle_errors


@handle_errors
def serve_cmd(
    served_dir: Path = typer.Argument(None, help="Folder of run folders, classifier artifacts and quality scorers "
                                                 "to serve (searched 4 levels deep); none: built-in models only."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 127.0.0.1 keeps it on this machine."),
    port: int = typer.Option(8000, "--port", help="Port to bind."),
    api_key: str = typer.Option(None, "--api-key", envvar="SLMKIT_API_KEY",
                                help="Require this key (Authorization: Bearer KEY or X-API-Key) on /v1 requests."),
    model: str = typer.Option("gemma3-270m", "--model", help="Model used when a request names none."),
    max_request_mb: float = typer.Option(5.0, "--max-request-mb", help="Largest request body (JSON or upload)."),
    max_batch: int = typer.Option(64, "--max-batch", help="Most texts per request."),
    max_text_chars: int = typer.Option(20_000, "--max-text-chars", help="Longest text, dialogue or prompt."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", help="Most new tokens one request may ask for."),
    batch_wait_ms: float = typer.Option(0.0, "--batch-wait-ms", help="Extra wait for concurrent requests to join a "
                                                                      "model call (0: take what queued meanwhile)."),
    max_micro_batch: int = typer.Option(32, "--max-micro-batch", help="Most texts per model call; 1 turns "
                                                                       "micro-batching off."),
    jobs_dir: Path = typer.Option(None, "--jobs-dir", help="Where background jobs keep files (default: a temp dir)."),
    seed: int = SEED_OPTION,
) -> None:
    """Serve models, fine-tuned runs and classifiers over HTTP until Ctrl-C: /v1 API (docs at /docs), web page at /."""
    from slmkit.errors import ConfigError
    from slmkit.serve import ServeConfig, serve

    if served_dir is not None and not served_dir.is_dir():
        raise ConfigError(f"{served_dir}: not a folder; give the folder that holds your runs and artifacts")
    config = ServeConfig(served_dir=str(served_dir) if served_dir else None, host=host, port=port, api_key=api_key,
                         default_model=model, max_request_mb=max_request_mb, max_batch=max_batch,
                         max_text_chars=max_text_chars, max_new_tokens=max_new_tokens, batch_wait_ms=batch_wait_ms,
                         max_micro_batch=max_micro_batch, jobs_dir=str(jobs_dir) if jobs_dir else None, seed=seed)
    typer.echo(f"slmkit serve: http://{host if ':' not in host else f'[{host}]'}:{port}/ (API docs at /docs)", err=True)
    serve(config)
