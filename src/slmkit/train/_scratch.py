"""Build a small causal LM from scratch: a byte-level BPE tokenizer trained on a corpus, and a random-weight
model of a chosen size. The quality job's reference scorers start here; `train` then trains them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from slmkit._files import atomic_dir
from slmkit.errors import ConfigError


@dataclass
class ScratchConfig:
    """Size of a from-scratch causal LM (a Llama-style decoder: RMSNorm, RoPE, SwiGLU).

    The defaults (~5M parameters with an 8k vocabulary) train on ~1M tokens in minutes on a laptop CPU.
    """

    vocab_size: int = 8000
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    max_position_embeddings: int = 1024
    tie_embeddings: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ScratchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} must be a multiple of num_heads {self.num_heads}")
        if self.vocab_size < 300:
            raise ConfigError(f"vocab_size must be >= 300 (256 bytes + specials + merges), got {self.vocab_size}")


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 8000):
    """A byte-level BPE `PreTrainedTokenizerFast` (<bos>/<eos>/<pad>/<unk>) trained on `corpus`.

    Byte-level: any text, Korean included, tokenizes without unknown tokens. BOS is added to every text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_from_scratch(corpus: Iterable[str], output_dir: str | Path, config: ScratchConfig | None = None) -> Path:
    """Train a tokenizer on `corpus` and write a random-weight model + tokenizer that `load_model` loads.

    Returns:
        `output_dir`, written atomically (built under a temp name, then renamed).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = config or ScratchConfig()
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise ConfigError(f"{output_dir} already exists; choose a new folder")
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(model_config)
    with atomic_dir(output_dir) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "scratch_config.json").write_text(__import__("json").dumps(asdict(config), indent=2))
    return output_dir
