"""`merge`: fold a LoRA run's adapter into its base and save a plain transformers directory.

The merged directory needs neither peft nor the run folder: `load_model(path)`, every job, CLI command and
(once converted) every backend serves it like a built-in model.
"""

from __future__ import annotations

from pathlib import Path

from slmkit._files import atomic_dir
from slmkit.data import write_json
from slmkit.errors import ConfigError
from slmkit.train._run import TASK_FILE_NAME, read_run_info


def merge(run_dir: str | Path, output_dir: str | Path) -> Path:
    """Write base + adapter (LoRA merged into the weights, or full weights copied) to `output_dir`.

    Raises:
        ConfigError: not a finished run, a P-tuning run (virtual tokens cannot be folded into weights), or
            an output folder that already exists.
    """
    from slmkit.models import load_model

    run_dir, output_dir = Path(run_dir), Path(output_dir)
    info = read_run_info(run_dir)
    if info.get("status") != "done":
        raise ConfigError(f"{run_dir}: the run has not finished; resume it before merging")
    if info["method"] == "ptuning":
        raise ConfigError(
            f"{run_dir}: a P-tuning run learns virtual input tokens, which cannot be folded into weights; "
            "serve the run folder itself (load_model / --model accept it)"
        )
    if output_dir.exists():
        raise ConfigError(f"{output_dir} already exists; choose a new folder")
    lm = load_model(str(run_dir), dtype="float32")  # LoRA merged on load (peft merge_and_unload); float32 on disk
    with atomic_dir(output_dir, replace=False) as tmp:
        lm.model.save_pretrained(str(tmp))
        lm.tokenizer.save_pretrained(str(tmp))
        # The job record (e.g. summarization's prompt format) travels with the weights.
        write_json(tmp / TASK_FILE_NAME, {"task": info.get("task"), "task_info": info.get("task_info", {})})
    return output_dir
