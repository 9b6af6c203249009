"""Tiny random-weight models, a tiny tokenizer and toy corpora, for tests and for users' own tests.

Everything is built in-process from a config: no network, no hub cache, a few milliseconds to a second.
The tokenizer is byte-level BPE, so any text (Korean included) tokenizes without unknown tokens.
"""

from __future__ import annotations

from pathlib import Path

TOY_TEXTS = [
    "The cat sat on the mat and looked out of the window.",
    "Stock prices rose sharply after the bank reported strong profits.",
    "I loved this film; the acting was wonderful and the story moving.",
    "What a waste of time. The plot made no sense at all.",
    "#Person1#: Hi, how are you today? #Person2#: Fine, thanks. I am going to the market.",
    "오늘 날씨가 정말 좋네요. 공원에 산책하러 갈까요?",
    "이 영화 정말 재미있어요. 배우들의 연기가 훌륭했습니다.",
    "Please call me back when you get this message.",
]


def make_tokenizer(corpus: list[str] | None = None, vocab_size: int = 400):
    """A byte-level BPE `PreTrainedTokenizerFast` with <bos>/<eos>/<pad>/<unk>, trained on `corpus`."""
    from slmkit.train import train_tokenizer

    return train_tokenizer(corpus or TOY_TEXTS * 4, vocab_size)


def make_tiny_model_dir(
    path: str | Path, *, kind: str = "causal", hidden_size: int = 32, num_layers: int = 2, seed: int = 0
) -> Path:
    """Write a random-weight model + tokenizer directory that `slmkit.models.load_model(path)` loads.

    Args:
        kind: "causal" (a two-layer Gemma 3 text model, the architecture of the default model) or
            "encoder" (a two-layer BERT, like MiniLM) or "seq2seq" (a two-layer BART, like KoBART).
    """
    import torch
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        BertConfig,
        BertModel,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
    )

    path = Path(path)
    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    if kind == "causal":
        config = Gemma3TextConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=hidden_size // 2,
            max_position_embeddings=512,
            sliding_window=64,
            layer_types=(["sliding_attention", "full_attention"] * num_layers)[:num_layers],
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = Gemma3ForCausalLM(config)
    elif kind == "encoder":
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=2,
            max_position_embeddings=512,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = BertModel(config)
    elif kind == "seq2seq":
        config = BartConfig(
            vocab_size=len(tokenizer),
            d_model=hidden_size,
            encoder_layers=num_layers,
            decoder_layers=num_layers,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=2 * hidden_size,
            decoder_ffn_dim=2 * hidden_size,
            max_position_embeddings=512,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id,
            forced_eos_token_id=None,
        )
        model = BartForConditionalGeneration(config)
    else:
        raise ValueError(f"kind must be 'causal', 'seq2seq' or 'encoder', got {kind!r}")
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def tiny_lm(path: str | Path, **kwargs):
    """Build (if needed) and load a tiny model directory through the real loading path."""
    from slmkit.models import load_model

    path = Path(path)
    if not (path / "config.json").is_file():
        make_tiny_model_dir(path, **kwargs)
    return load_model(str(path))
