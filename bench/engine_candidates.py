"""Which fast CPU engine to adopt (issue 9): the trained Korean summarizer decoded by each candidate engine.

Candidates installable from wheels with this project's transformers (5.23): CTranslate2 (int8) and ONNX Runtime
GenAI (int8 and int4 weight-only MatMulNBits, built by its model builder). OpenVINO's exporter (optimum-intel
2.2) requires transformers < 5.6 and torchvision, and llama.cpp needs a compiler here, so neither is a
candidate for the default path. Each engine decodes the 100 Korean eval rows of bench/summarize_train.py
greedily (max 128 new tokens) with the model of its `ko_lora` stage merged (`slmkit train merge`), and the
summaries get the same post-processing and ROUGE as there; float32 transformers scored 31.59 on them.

ONNX Runtime GenAI's builder (0.18) reads Gemma 3's rope bases from attributes transformers 5 moved into
`rope_parameters`; the script puts them back on the config while it builds (the same repair slmkit's
CTranslate2 conversion makes), and its sliding-window cache needs max_length >= 512.

Needs, beside the project: `pip install onnxruntime-genai onnx onnx_ir` (not project dependencies).
Writes bench/results/engine_candidates.json (scores and speeds only: the summaries embed the data).

    python bench/engine_candidates.py --merged out/merged/ko_lora --engines ct2_int8 ort_int8 ort_int4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
N_NEW = 128


def build_ort(merged: Path, out: Path, precision: str) -> None:
    """ONNX Runtime GenAI's model builder in a subprocess, with the Gemma 3 rope attributes restored."""
    code = f"""
import sys
from transformers import AutoConfig
original = AutoConfig.from_pretrained
def patched(*a, **k):
    c = original(*a, **k)
    rope = getattr(c, "rope_parameters", None)
    if isinstance(rope, dict) and "full_attention" in rope:
        c.rope_local_base_freq = rope["sliding_attention"]["rope_theta"]
        c.rope_theta = rope["full_attention"]["rope_theta"]
        c.rope_parameters = dict(rope["full_attention"])
    return c
AutoConfig.from_pretrained = patched
sys.argv = ["builder", "-i", {str(merged)!r}, "-o", {str(out)!r}, "-p", {precision!r}, "-e", "cpu",
            "-c", {str(out) + "_cache"!r}]
import runpy
runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def decode_ort(model_dir: Path, prompt_ids: list[list[int]], eos: int, threads: int) -> list[list[int]]:
    import numpy as np
    import onnxruntime_genai as og

    config_path = model_dir / "genai_config.json"
    config = json.loads(config_path.read_text())
    config["model"]["decoder"]["session_options"]["intra_op_num_threads"] = threads
    config_path.write_text(json.dumps(config))
    model = og.Model(str(model_dir))
    out = []
    for ids in prompt_ids:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=max(len(ids) + N_NEW, 1024), do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.array([ids], dtype=np.int32))
        new: list[int] = []
        while not generator.is_done() and len(new) < N_NEW:
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token == eos:
                break
            new.append(token)
        out.append(new)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merged", type=Path, default=HERE.parent / "out" / "merged" / "ko_lora")
    parser.add_argument("--engines", nargs="+", default=["ct2_int8", "ort_int8", "ort_int4"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "engine_candidates.json")
    args = parser.parse_args()
    import summarize_train as st
    from transformers import AutoTokenizer

    from slmkit.data import write_json
    from slmkit.summarize._dialogue import speakers
    from slmkit.summarize._prompts import build_prompt, postprocess

    frame = st._load_sets(st.DATA)["ko_eval"]
    tokenizer = AutoTokenizer.from_pretrained(str(args.merged))
    prompt_ids = [tokenizer(build_prompt(d, "ko")).input_ids for d in frame["dialogue"]]
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": {}}
    for engine in args.engines:
        start = time.perf_counter()
        if engine.startswith("ct2"):
            from slmkit.models import load_model

            lm = load_model(str(args.merged), backend="ctranslate2", quantize=engine.split("_")[1],
                            num_threads=args.threads)
            raw = lm.generate([build_prompt(d, "ko") for d in frame["dialogue"]], max_new_tokens=N_NEW,
                              batch_size=1)
            n_new = sum(lm.count_tokens(raw))
        else:
            model_dir = args.merged.parent / f"{args.merged.name}_{engine}"
            if not (model_dir / "genai_config.json").is_file():
                build_ort(args.merged, model_dir, engine.split("_")[1])
            start = time.perf_counter()  # decoding time only, as for the other engines' cached conversions
            new = decode_ort(model_dir, prompt_ids, tokenizer.eos_token_id, args.threads)
            raw = [tokenizer.decode(x, skip_special_tokens=True) for x in new]
            n_new = sum(len(x) for x in new)
        seconds = time.perf_counter() - start
        preds = [postprocess(r, "ko", max_sentences=0, speakers=speakers(d)) for r, d in zip(raw, frame["dialogue"])]
        results["rows"][engine] = {"seconds": round(seconds, 1), "new_tokens": n_new,
                                   "tokens_per_s": round(n_new / seconds, 2), **st._score(preds, frame, "ko")}
        results["config"] = {"merged": str(args.merged), "threads": args.threads, "max_new_tokens": N_NEW,
                             "prompts_one_at_a_time": True}
        write_json(args.out, results)
        print(engine, json.dumps(results["rows"][engine]), flush=True)


if __name__ == "__main__":
    main()
