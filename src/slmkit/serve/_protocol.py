"""Request and response schemas of every endpoint (pydantic), in one module.

The /v1/completions, /v1/chat/completions, /v1/embeddings and /v1/models shapes follow the OpenAI API, so
the official clients work unchanged; unknown OpenAI fields are accepted and ignored. Job endpoints
(/v1/summarize, /v1/classify, /v1/quality/score) are slmkit's own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from slmkit.summarize import METHODS


def _check_items(values: list[str], what: str) -> list[str]:
    for i, value in enumerate(values):
        if not value.strip():
            raise ValueError(f"{what}[{i}] is empty or only whitespace")
    return values


def _non_blank(what: str):
    """A list of strings none of which is empty or only whitespace (the error names `what[i]`)."""
    return Annotated[list[str], AfterValidator(lambda values: _check_items(values, what))]


Dialogues = _non_blank("dialogues")
Texts = _non_blank("texts")


class _Lenient(BaseModel):
    # OpenAI clients send fields slmkit does not use (user, logit_bias...): accept and ignore them.
    model_config = ConfigDict(extra="ignore")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- OpenAI-compatible ------------------------------------------------------------------------------------


class _Sampling(_Lenient):
    """What both completion endpoints share: the model and OpenAI's sampling fields."""

    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64, description="torch's seed range")


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value):
        return _text_list(value, "prompts", "prompt is an empty list; give at least one prompt")


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class EmbeddingRequest(_Lenient):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _input(cls, value):
        return _text_list(value, "input", "input is an empty list; give at least one text")


def _text_list(value: str | list[str], what: str, empty: str) -> list[str]:
    """OpenAI accepts one string or a list of them: always a non-empty list of non-blank strings here."""
    if isinstance(value, str):
        value = [value]
    if not value:
        raise ValueError(empty)
    return _check_items(value, what)


# ---- slmkit jobs --------------------------------------------------------------------------------------------


class SummarizeRequest(_Strict):
    dialogues: Dialogues = Field(min_length=1, description="dialogues, one turn per line ('#Person1#: ...')")
    model: str | None = Field(default=None, description="built-in model, model folder or fine-tuned run folder")
    method: Literal[METHODS] = "few-shot"  # type: ignore[valid-type]
    language: Literal["auto", "ko", "en"] = "auto"
    max_new_tokens: int | None = Field(default=None, ge=1, description="default: 64, or the server's limit if lower")
    num_beams: int = Field(default=1, ge=1, le=8)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64, description="torch's seed range")


class ClassifyRequest(_Strict):
    model: str = Field(description="classifier artifact folder (relative to the served directory)")
    texts: Texts = Field(min_length=1)
    explain: bool = Field(default=False, description="add per-word contributions to the predicted label")
    explain_method: Literal["auto", "exact", "occlusion"] = "auto"


class QualityScoreRequest(_Strict):
    model: str = Field(description="quality scorer folder (relative to the served directory)")
    texts: Texts = Field(min_length=1)


class WordScore(BaseModel):
    text: str
    start: int
    end: int
    score: float


class ClassifyResult(BaseModel):
    label: str | int | float | bool
    probabilities: dict[str, float]
    words: list[WordScore] | None = None


class ClassifyResponse(BaseModel):
    model: str
    results: list[ClassifyResult]


class SummarizeResponse(BaseModel):
    model: str
    method: str
    language: str
    summaries: list[str]


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    error: str | None = None
    result_url: str | None = None
