"""One-line status messages for phases without a progress bar (loading a model), shown by the CLI only.

Library calls stay quiet; `slmkit.cli` turns the lines on, so a user sees something from the first second
instead of a silent model load. Lines go through tqdm.write, which keeps any open progress bar intact.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

_enabled = False


def enable(on: bool = True) -> None:
    """Show status lines in this process (the CLI calls this)."""
    global _enabled
    _enabled = on


def showing() -> bool:
    """Whether this process shows status lines and progress bars (true under the CLI)."""
    return _enabled


@contextmanager
def status(message: str):
    """Print `message…` on stderr, then `message: done in N s` (or nothing more if the block raised)."""
    if not _enabled:
        yield
        return
    from tqdm.auto import tqdm

    tic = time.perf_counter()
    tqdm.write(f"{message} ...", file=sys.stderr)
    yield
    tqdm.write(f"{message}: done in {time.perf_counter() - tic:.1f} s", file=sys.stderr)


def chunks(items: list, size: int, *, desc: str, unit: str, show: bool | None = None):
    """`items` in slices of `size`, under a progress bar counting items; `show=None` shows it under the CLI."""
    from tqdm.auto import tqdm

    show = _enabled if show is None else show
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not (show and items)) as bar:
        for start in range(0, len(items), size):
            yield items[start : start + size]
            bar.update(min(size, len(items) - start))
