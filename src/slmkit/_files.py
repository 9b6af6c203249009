"""slmkit's one atomic-write helper (files and folders), one file-hash helper and the peak-memory reading.

Dependency-free on purpose (no pandas, no torch), so the model runtime can use them without importing the data
layer. Public names: `slmkit.data.atomic_open`, `slmkit.data.fingerprint_file` (re-exported from here).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux reports `ru_maxrss` in KiB, macOS in bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on success rename it over `path`, on error delete it.

    A crash mid-write therefore never leaves a half-written result where a finished one was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    _OWN_TEMPS.add(tmp)
    try:
        with os.fdopen(
            fd, mode, encoding=None if "b" in mode else encoding, newline="" if "b" not in mode else None
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600; the result should look like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _OWN_TEMPS.discard(tmp)


@contextmanager
def atomic_dir(path: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temp folder beside `path` to fill; on success it is renamed to `path`, on error removed.

    A crash mid-write therefore never leaves a half-written folder that a later run would trust. With
    `replace`, an existing `path` is renamed aside, the new folder renamed in, and only then the old one deleted
    (deleting it first left no folder at all, for as long as a large model's rmtree took, if killed there);
    without, the rename fails if it exists.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)  # what a killed earlier attempt left (as the old fixed temp names were reused)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    _OWN_TEMPS.add(str(tmp))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; the result should look like any other folder
    try:
        yield tmp
        old = None
        if replace and path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
            os.replace(path, old / "previous")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _OWN_TEMPS.discard(str(tmp))


def remove_stale_temps(path: str | Path) -> int:
    """Delete `.<name>.*.tmp` files and folders that a killed `atomic_open` / `atomic_dir` left beside `path`;
    return how many. A temp of a process still running (its pid is in the name) is another writer's, mid-write,
    and stays."""
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    removed = 0
    for tmp in path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"):
        owner = _TEMP_OWNER.match(tmp.name[len(path.name) + 2 :])
        if owner and _in_use(tmp, int(owner.group(1))):
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


_TEMP_OWNER = re.compile(r"p(\d+)\.")
_OWN_TEMPS: set[str] = set()  # this process's temps while their writer runs


def _temp_prefix(path: Path) -> str:
    """`.<name>.p<pid>.`: the writing process is in the name, so a cleaner can tell a live writer's temp from a
    killed one's."""
    return f".{path.name}.p{os.getpid()}."


def _in_use(tmp: Path, pid: int) -> bool:
    if pid == os.getpid():
        return str(tmp) in _OWN_TEMPS  # one of ours: in use only while its writer runs
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell): leave it
    return True


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _default_mode() -> int:
    return 0o666 & ~_umask()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
