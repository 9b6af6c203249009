"""Data records, table readers/writers and fingerprints. Never loads a model."""

from __future__ import annotations

from slmkit.data._document import Document
from slmkit.data._outputs import OutputPolicy, check_resume, manifest_path, remove_stale_temps, resumable_output
from slmkit.data._table import fingerprint_file, is_missing, read_table
from slmkit.data._write import atomic_open, write_json, write_table

__all__ = [
    "Document",
    "OutputPolicy",
    "atomic_open",
    "check_resume",
    "fingerprint_file",
    "is_missing",
    "manifest_path",
    "read_table",
    "remove_stale_temps",
    "resumable_output",
    "write_json",
    "write_table",
]
