"""Which numeric precision the transformers backend runs inference in: `dtype=` / `quantize=` / `$SLMKIT_DTYPE`.

The weights on disk (and the GGUF conversion cache) are always float32; a reduced precision is a cast of the
loaded model, for inference only. Training loads float32 master weights whatever is asked here (its own
`TrainConfig.precision` decides autocast).

The automatic choice (`dtype="auto"`, the default) is made by measurement (`bench/precision.py`,
`bench/results/precision.json`):

* CUDA: bfloat16 where `torch.cuda.is_bf16_supported()`, float32 otherwise.
* CPU: bfloat16 only where the CPU computes bf16 natively (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo, or
  torch reporting an AVX512-BF16/AMX capability). There the model cast to bf16 embeds 2.2-2.4x faster than
  float32 with mean-pooled embeddings at cosine > 0.9999 (issue 9, measured on an AVX-512 BF16 Xeon); the
  numerics are the same everywhere (cosine 0.99999, document losses within 0.3% of float32 here). Without
  those instructions torch *emulates* bf16: on the AVX2-only EPYC this project runs on, the bf16 model embeds
  6x and scores token losses 5x slower than float32 (bench/results/precision.json), so auto is float32.
* bf16 on a CPU runs its Linear layers on oneDNN-prepacked weights (`_transformers.PackedLinear`, where
  `mkldnn_bf16_linear_available()`; `SLMKIT_PACK_BF16=0` turns it off): bit-identical to plain bf16, and 1.5-2x
  faster per layer on small batches, where torch's eager bf16 path is slower than float32 (decoding).
* int8 (torch dynamic quantisation of the Linear layers) is never chosen automatically: it is faster on the
  CPU (1.5x embeddings, 2.2x token losses here) but does not keep gemma3-270m's numerics (activation
  outliers): document losses 22% off float32's and embeddings at cosine 0.95 here (0.50 in issue 9's
  measurement). It stays available as `quantize="int8"`.
"""

from __future__ import annotations

import os

from slmkit._constants import ENV_DTYPE
from slmkit.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = (None, "int8")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32"}
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as handle:
            line = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls in hardware (AVX-512 BF16 or AMX), not by emulation."""
    if any(flag in cpu_flags() for flag in _BF16_CPU_FLAGS):
        return True
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    except (ImportError, AttributeError, RuntimeError):
        return False
    return "BF16" in capability or "AMX" in capability


def native_bf16(device: str = "cpu") -> bool:
    """Whether bf16 runs natively on `device` ("cpu", "cuda", "cuda:N")."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return cpu_native_bf16()


def auto_dtype(device: str = "cpu") -> str:
    """What `dtype="auto"` means on `device`: bfloat16 where bf16 runs natively, else float32."""
    return "bfloat16" if native_bf16(device) else "float32"


def requested_dtype(dtype: str | None = None) -> str:
    """`dtype`, else `$SLMKIT_DTYPE`, else "auto", validated and normalised (aliases fp32/bf16/fp16 allowed)."""
    source = "dtype=" if dtype is not None else f"${ENV_DTYPE}"
    raw = dtype if dtype is not None else os.environ.get(ENV_DTYPE) or "auto"
    choice = _ALIASES.get(str(raw).strip().lower(), str(raw).strip().lower())
    if choice not in DTYPES:
        raise ConfigError(f"{source} must be one of {', '.join(DTYPES)} (or fp32/bf16/fp16), got {raw!r}")
    return choice


def resolve_precision(dtype: str | None, quantize: str | None, device: str) -> tuple[str, str | None]:
    """The (dtype, quantize) a model loaded on `device` runs in, from the caller's choice or the environment.

    Raises:
        ConfigError: an unknown dtype or quantisation, int8 off the CPU, or int8 combined with a reduced dtype.
    """
    choice = requested_dtype(dtype)
    if quantize is not None:
        quantize = str(quantize).strip().lower()
        if quantize not in QUANTIZATIONS:
            raise ConfigError(f"quantize must be None or 'int8', got {quantize!r}")
        if not device.startswith("cpu"):
            raise ConfigError(f"quantize='int8' (torch dynamic quantisation) runs on the CPU only, not {device!r}")
        if choice not in ("auto", "float32"):
            raise ConfigError(f"quantize='int8' quantises float32 Linear layers; it cannot be combined with {choice}")
        return "float32", quantize
    return (auto_dtype(device) if choice == "auto" else choice), None


def quantize_int8(model):
    """torch dynamic int8 quantisation of every nn.Linear (weights int8, activations quantised per batch)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.ao.quantization warns that it is moving to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def mkldnn_bf16_linear_available() -> bool:
    """Whether torch has oneDNN's prepacked linear (`torch.ops.mkldnn._linear_pointwise`) and the CPU runs bf16
    natively, the two conditions under which `PackedLinear` pays."""
    import torch

    ops = torch.ops.mkldnn
    return (
        cpu_native_bf16()
        and torch.backends.mkldnn.is_available()
        and hasattr(ops, "_linear_pointwise")
        and hasattr(ops, "_reorder_linear_weight")
    )

