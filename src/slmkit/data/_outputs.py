"""One policy for every file a command writes, checked before any model loads.

- An output never resolves to one of the command's inputs, and two outputs of one command are never one file.
- An existing file that this command did not write is not replaced without `overwrite=True` (`--overwrite`).
  What a command wrote is recorded in a small ledger in the output's folder (`.slmkit-outputs.json`: file
  name -> command and sha256); a file whose bytes changed since then counts as the user's again.
- A resumable output carries a manifest beside it (`<name>.manifest.json`: config, model checksum, input
  fingerprint); resuming under a different one is refused with a message that lists what differs.
- Temp files a killed run left beside an output (`.<name>.*.tmp`, see `atomic_open`) are removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from slmkit._constants import OUTPUT_LEDGER_NAME
from slmkit._files import file_sha256, remove_stale_temps
from slmkit.data._write import write_json
from slmkit.errors import DataError


def manifest_path(output: str | Path) -> Path:
    """Where the resume manifest of `output` lives: `<output>.manifest.json` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".manifest.json")


class OutputPolicy:
    """Checks a command's outputs against its inputs and the files already there; records what it wrote.

    Example:
        >>> policy = OutputPolicy("summarize clean", inputs=["train.csv"], overwrite=False)  # doctest: +SKIP
        >>> policy.file("clean.csv", option="--output")  # raises DataError if it would destroy data
        >>> ...  # write the files
        >>> policy.record()  # remember them, so a rerun may replace them

    Args:
        command: the command's name, recorded in the ledger (a file is "ours" only for the command that wrote it).
        inputs: every file or folder the command reads (None entries are skipped).
        overwrite: replace existing files that this command did not write.
    """

    def __init__(self, command: str, inputs: Iterable[str | Path | None] = (), *, overwrite: bool = False) -> None:
        self.command = command
        self.overwrite = overwrite
        self._inputs = {_resolve(p): str(p) for p in inputs if p is not None and str(p) != ""}
        self._outputs: dict[Path, str] = {}

    def file(self, path: str | Path, *, option: str = "--output", resumable: bool = False) -> Path:
        """Check one output file; return it as a Path.

        Raises:
            DataError: it is an input, another output, a folder, or a file this command did not write (without
                overwrite; a resumable output is checked by `check_resume` instead).
        """
        path = Path(path)
        self._check_distinct(path, option)
        if path.is_dir():
            raise DataError(f"{option} {path}: is a folder; give a file name (e.g. one inside it)")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise DataError(f"{option} {path}: {parent} is a file, not a folder")
                break
        if path.exists() and not resumable and not self.overwrite and not self.written_by_us(path):
            raise DataError(
                f"{option} {path}: the file exists and `slmkit {self.command}` did not write it; "
                "pass --overwrite to replace it, or choose another path"
            )
        remove_stale_temps(path)
        return path

    def folder(self, path: str | Path, *, option: str = "--output", files: Iterable[str] = ()) -> Path:
        """Check an output folder and the named files the command writes into it."""
        path = Path(path)
        self._check_distinct(path, option)
        if path.exists() and not path.is_dir():
            raise DataError(f"{option} {path}: is a file; give a folder (it is created if missing)")
        for name in files:
            self.file(path / name, option=f"{option} {path}:")
        return path

    def record(self) -> None:
        """Remember every checked output that now exists, so a rerun of this command may replace it."""
        by_folder: dict[Path, list[Path]] = {}
        for path in self._outputs:
            if path.is_file():
                by_folder.setdefault(path.parent, []).append(path)
        for folder, paths in by_folder.items():
            ledger = _read_ledger(folder)
            ledger = {name: entry for name, entry in ledger.items() if (folder / name).is_file()}
            for path in paths:
                ledger[path.name] = {"command": self.command, "sha256": _sha256(path)}
            try:
                write_json(folder / OUTPUT_LEDGER_NAME, ledger)
            except OSError:  # a read-only folder: the outputs are written; only the rerun convenience is lost
                pass

    def written_by_us(self, path: str | Path) -> bool:
        """Whether this command wrote `path` (per the ledger) and nobody changed it since."""
        path = Path(path)
        entry = _read_ledger(path.parent).get(path.name)
        return bool(entry) and entry.get("command") == self.command and entry.get("sha256") == _sha256(path)

    def _check_distinct(self, path: Path, option: str) -> None:
        resolved = _resolve(path)
        if resolved in self._inputs:
            raise DataError(
                f"{option} {path}: is also an input of this command ({self._inputs[resolved]}); "
                "writing there would destroy it: choose another path"
            )
        if resolved in self._outputs:
            raise DataError(f"{option} {path}: is the same file as {self._outputs[resolved]}; give two different paths")
        self._outputs[resolved] = f"{option} {path}"


def check_resume(output: str | Path, identity: Mapping, *, overwrite: bool = False, option: str = "--output") -> bool:
    """Decide whether a resumable `output` may be continued; write its manifest when starting afresh.

    Args:
        output: the resumable file.
        identity: what must match to resume (config, model checksum, input fingerprint), JSON-able.
        overwrite: start again: an existing output and its manifest are removed.

    Returns:
        True when an existing output is resumed, False when the command starts from nothing.

    Raises:
        DataError: the output exists without a manifest, or its manifest differs from `identity` (naming what).
    """
    output, manifest = Path(output), manifest_path(output)
    identity = json.loads(json.dumps(identity, sort_keys=True, default=str))
    if output.exists() and overwrite:
        output.unlink()
    if output.exists():
        if not manifest.is_file():
            raise DataError(
                f"{option} {output}: the file exists but has no {manifest.name}, so it cannot be resumed safely "
                "(it was not written by this command, or by an older slmkit); pass --overwrite to start again, "
                "or choose another path"
            )
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8")).get("identity", {})
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            raise DataError(f"{manifest}: unreadable resume manifest ({exc}); pass --overwrite to start again") from exc
        differences = describe_differences(saved, identity)
        if differences:
            raise DataError(
                f"{option} {output}: cannot resume: it was made with {'; '.join(differences[:4])}"
                f"{f' (and {len(differences) - 4} more)' if len(differences) > 4 else ''}; "
                "pass --overwrite to start again, or choose another path"
            )
        return True
    write_json(manifest, {"identity": identity})
    return False


@contextmanager
def resumable_output(
    output: str | Path, identity: Mapping, *, overwrite: bool = False, option: str = "--output"
) -> Iterator[bool]:
    """`check_resume`, and if the body fails before the output exists, its fresh manifest is removed too.

    Yields:
        True when an existing output is being resumed.
    """
    output = Path(output)
    # --overwrite sets the old output (and its manifest) aside instead of deleting it first: a run that fails
    # before writing anything (a bad option found while loading, Ctrl-C during the model load) puts it back.
    aside = []
    if overwrite and output.exists():
        for path in (output, manifest_path(output)):
            if path.exists():
                kept = path.with_name(f".{path.name}.p{os.getpid()}.previous.tmp")
                os.replace(path, kept)
                aside.append((kept, path))
    resumed = check_resume(output, identity, overwrite=overwrite, option=option)
    try:
        yield resumed
    except BaseException:
        if not output.exists():
            manifest_path(output).unlink(missing_ok=True)
            for kept, path in aside:
                os.replace(kept, path)
            aside = []
        raise
    finally:
        for kept, _ in aside:
            kept.unlink(missing_ok=True)


def describe_differences(saved: Mapping, now: Mapping, prefix: str = "") -> list[str]:
    """Human-readable `key=old (now new)` for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += describe_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}={_short(old)} (now {_short(new)})")
    return out


def _resolve(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _read_ledger(folder: Path) -> dict:
    try:
        ledger = json.loads((folder / OUTPUT_LEDGER_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return ledger if isinstance(ledger, dict) else {}


def _sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = f'"{value[:12]}…"'  # a sha256: the first 12 hex digits tell two files apart
    return text if len(text) <= 60 else text[:57] + "…"

