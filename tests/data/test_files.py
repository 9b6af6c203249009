"""slmkit's one atomic-write helper (files and folders) and one file-hash helper, behind the public names."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from slmkit._files import atomic_dir, file_sha256
from slmkit.data import atomic_open, fingerprint_file, remove_stale_temps


def test_one_file_hash_behind_every_name(tmp_path, monkeypatch):
    from slmkit.models._weights import sha256_file

    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 << 20))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == fingerprint_file(path) == sha256_file(path) == expected
    assert (tmp_path / "cache" / "checksums.json").is_file()  # the memo goes to the cache dir asked for


def test_atomic_dir_renames_into_place_or_leaves_nothing(tmp_path):
    final = tmp_path / "model"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "one"
    umask = os.umask(0)
    os.umask(umask)
    assert final.stat().st_mode & 0o777 == 0o777 & ~umask  # a normal folder, not mkdtemp's 0700

    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed midway")
    assert (final / "a.txt").read_text() == "one"  # the finished folder is untouched
    assert not list(tmp_path.glob(".*.tmp"))

    with atomic_dir(final) as tmp:  # replace=True (default) swaps in the new folder
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]

    with pytest.raises(OSError), atomic_dir(final, replace=False) as tmp:
        (tmp / "c.txt").write_text("three")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"] and not list(tmp_path.glob(".*.tmp"))


def test_atomic_dir_swaps_before_deleting_the_old_folder(tmp_path, monkeypatch):
    import slmkit._files

    final = tmp_path / "model"
    with atomic_dir(final) as tmp:
        (tmp / "old.bin").write_text("old weights")
        (tmp / "config.json").write_text("{}")
    real_rmtree = shutil.rmtree

    def killed_midway(path, *args, **kwargs):  # a kill while a large old folder is being deleted
        if (Path(path) / "previous").is_dir():
            next(Path(path, "previous").iterdir()).unlink()
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(slmkit._files.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt), atomic_dir(final) as tmp:
        (tmp / "new.bin").write_text("new weights")
    assert sorted(p.name for p in final.iterdir()) == ["new.bin"]  # whole, never a half-deleted old one
    monkeypatch.setattr(slmkit._files.shutil, "rmtree", real_rmtree)
    assert remove_stale_temps(final) == 1  # the rest of the old folder goes with the next write


def test_stale_temps_of_files_and_folders_are_removed(tmp_path):
    (tmp_path / ".out.csv.abc.tmp").write_text("half a file")
    (tmp_path / ".model.xyz.tmp").mkdir()
    (tmp_path / ".model.xyz.tmp" / "weights").write_text("half a folder")
    assert remove_stale_temps(tmp_path / "out.csv") == 1
    with atomic_dir(tmp_path / "model") as tmp:  # a killed earlier attempt's folder goes first
        (tmp / "w").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_live_writers_temp_is_left_alone(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f".out.csv.p{int(dead.stdout)}.abc.tmp").write_text("a killed writer's")
    (tmp_path / ".out.csv.p1.def.tmp").write_text("a running writer's (pid 1 always runs)")
    with atomic_open(tmp_path / "out.csv") as handle:
        handle.write("ours")
        assert remove_stale_temps(tmp_path / "out.csv") == 1  # ours, being written, and pid 1's stay
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.csv.p1.def.tmp", "out.csv"]


def test_atomic_open_is_the_shared_helper(tmp_path):
    from slmkit import _files

    assert atomic_open is _files.atomic_open
    with atomic_open(tmp_path / "x.txt") as handle:
        handle.write("hi")
    assert (tmp_path / "x.txt").read_text() == "hi"


def test_peak_rss_is_megabytes_on_linux_and_macos(monkeypatch):
    import resource
    import sys

    from slmkit._files import peak_rss_mb

    usage = type("Usage", (), {"ru_maxrss": 3 << 20})  # 3 GiB on Linux (KiB), 3 MiB on macOS (bytes)
    monkeypatch.setattr(resource, "getrusage", lambda who: usage)
    monkeypatch.setattr(sys, "platform", "linux")
    assert peak_rss_mb() == 3072.0
    monkeypatch.setattr(sys, "platform", "darwin")
    assert peak_rss_mb() == 3.0
