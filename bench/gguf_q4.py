"""A fine-tuned gemma3-270m run as a 4-bit GGUF (Q4_K_M), for the quantisation study's llama.cpp row (issue 9).

The built-in model is itself a Q4_K_M GGUF, so llama.cpp's 4-bit row needs no conversion for the base model; a
trained summarizer (a LoRA run of `slmkit.train`) does. llama.cpp's own converter (convert_hf_to_gguf.py) is not
installed by the llama-cpp-python wheel, and from a folder without `tokenizer.model` it would write Gemma 3's
SentencePiece vocabulary as a BPE one. So this writes the GGUF from the base GGUF itself: every metadata key
(tokenizer included) copied unchanged, every tensor replaced by the run's merged float32 weight under llama.cpp's
layout (the `gguf` package's name map; RMSNorm weights stored as 1 + w, as Gemma 3's norm applies them; the
embedding's out-of-vocabulary rows dropped to the base tensor's shape), then quantised by llama.cpp
(`llama_model_quantize`, Q4_K_M: the mix of the package's own file).

The mapping is checked on the base model first: the base GGUF's tensors dequantised must equal what this mapping
writes for transformers' float32 model of the same file (they are the same numbers, dequantised by transformers),
so a wrong name, shift or layout fails loudly before a fine-tuned model is converted.

    python bench/gguf_q4.py out/bench_train/ko_lora_vnni out/bench_train/ko_lora_vnni/q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def _base_gguf() -> Path:
    from slmkit.models import resolve_model
    from slmkit.models._weights import gguf_path

    return gguf_path(resolve_model("gemma3-270m"))


def _gguf_weights(state: dict, reader) -> dict[str, np.ndarray]:
    """GGUF tensor name -> float32 array in llama.cpp's layout, for every tensor of the base GGUF."""
    from slmkit.models._llamacpp import gguf_tensor_names  # the backend's adapter conversion uses the same map

    _, names = gguf_tensor_names(reader, _base_gguf())
    out = {}
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight":  # tied to the embedding: the GGUF has no output tensor
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise SystemExit(f"no GGUF name for {hf_name}")
        data = tensor.detach().float().numpy()
        if hf_name.endswith("norm.weight"):  # Gemma3RMSNorm scales by (1 + w); llama.cpp's norm by the weight
            data = data + 1.0
        out[name] = data
    for t in reader.tensors:
        if t.name not in out:
            raise SystemExit(f"the model has no weight for GGUF tensor {t.name}")
        rows = int(t.shape[-1]) if len(t.shape) > 1 else None  # GGUF shapes are reversed: last = rows
        if rows is not None and out[t.name].shape[0] != rows:  # the embedding's padding rows beyond the vocabulary
            out[t.name] = out[t.name][:rows]
    return out


def check_mapping(reader, weights: dict[str, np.ndarray]) -> float:
    """Largest |difference| between the base GGUF's dequantised tensors and the mapped float32 weights."""
    from gguf.quants import dequantize

    worst = 0.0
    for t in reader.tensors:
        ref = dequantize(t.data, t.tensor_type).reshape(weights[t.name].shape)
        worst = max(worst, float(np.abs(ref.astype(np.float32) - weights[t.name]).max()))
    return worst


def write_f32(reader, weights: dict[str, np.ndarray], path: Path) -> None:
    """A float32 GGUF: the base file's metadata with these weights."""
    import gguf

    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(path), arch=arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # the writer writes its own header and architecture
        if field.name == "general.file_type":
            writer.add_file_type(gguf.LlamaFileType.ALL_F32)
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for t in reader.tensors:
        writer.add_tensor(t.name, np.ascontiguousarray(weights[t.name], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize_q4_k_m(source: Path, target: Path, threads: int = 2) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) != 0:
        raise SystemExit(f"llama.cpp could not quantise {source}")


def export_q4_k_m(model: str, target: Path) -> dict:
    """Write `model` (the built-in name or a run folder) as a Q4_K_M GGUF at `target`; returns the checks."""
    import gguf

    from slmkit.models import load_model
    from slmkit.models._weights import sha256_file

    base = _base_gguf()
    reader = gguf.GGUFReader(str(base))
    reference = load_model("gemma3-270m", dtype="float32")
    error = check_mapping(reader, _gguf_weights(reference.model.state_dict(), reader))
    if error > 1e-6:
        raise SystemExit(f"the HF -> GGUF mapping does not reproduce the base GGUF (max |diff| {error:.3g})")
    del reference
    lm = load_model(model, dtype="float32")  # a LoRA run is merged on load
    weights = _gguf_weights(lm.model.state_dict(), reader)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        f32 = Path(tmp) / "model-f32.gguf"
        write_f32(reader, weights, f32)
        partial = Path(tmp) / target.name
        quantize_q4_k_m(f32, partial)
        partial.replace(target)  # whole or not at all
    return {"base_gguf": str(base), "mapping_max_abs_diff": error, "source": model,
            "q4_k_m_sha256": sha256_file(target)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="gemma3-270m or a fine-tuned run folder of it")
    parser.add_argument("target", type=Path, help="the .gguf to write")
    args = parser.parse_args()
    print(export_q4_k_m(args.model, args.target), file=sys.stderr)


if __name__ == "__main__":
    main()
