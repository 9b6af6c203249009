"""Turn (prompt, target) pairs, whole documents or contrastive text pairs into token ids and labels, and batch them.

Prompt and target are tokenized separately and concatenated, exactly as inference sees them: the prompt is
tokenized on its own at prediction time and the model continues it, so training on the same split keeps
training and inference from drifting apart at the boundary token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from slmkit.errors import DataError
from slmkit.models._base import format_template

IGNORE = -100  # the label transformers and torch's cross-entropy skip


@dataclass
class Example:
    """One training row: `input_ids` and `labels` (IGNORE where no loss is taken); seq2seq rows keep the
    target in `labels` only. `weights`: each label's loss weight, where not all are 1 (a weighted prompt)."""

    input_ids: list[int]
    labels: list[int]
    weights: list[float] | None = None


def encode_pairs(
    tokenizer,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    max_length: int,
    seq2seq: bool = False,
    ids: Sequence[str] | None = None,
    source: str = "training data",
    prompt_loss_weight: float = 0.0,
) -> list[Example]:
    """Tokenize pairs; the loss falls on the target tokens and the closing EOS only, and with
    `prompt_loss_weight` > 0 (causal LMs) on the prompt's tokens too, each weighted by it.

    Raises:
        DataError: an empty prompt or target, or a row longer than `max_length`, naming the 1-based row
            (and its id) so the user can fix or drop it.
    """
    if len(prompts) != len(targets):
        raise DataError(f"{source}: {len(prompts)} prompts but {len(targets)} targets")
    if not len(prompts):
        raise DataError(f"{source}: no rows to train on")
    ids = list(ids) if ids is not None else [None] * len(prompts)

    def where(i: int) -> str:
        return f"{source}: row {i + 1}" + (f" ({ids[i]})" if ids[i] is not None else "")

    for i, (p, t) in enumerate(zip(prompts, targets)):
        if not isinstance(p, str) or not p.strip():
            raise DataError(f"{where(i)}: empty prompt/dialogue")
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"{where(i)}: empty target/summary; fill it in or drop the row")
    eos = tokenizer.eos_token_id
    prompt_ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    if seq2seq:
        target_ids = tokenizer(text_target=list(targets), add_special_tokens=True)["input_ids"]
        target_ids = [x if x and x[-1] == eos else x + [eos] for x in target_ids]  # the decoder must learn to stop
    else:
        target_ids = [x + [eos] for x in tokenizer(list(targets), add_special_tokens=False)["input_ids"]]
    out = []
    for i, (p, t) in enumerate(zip(prompt_ids, target_ids)):
        size = max(len(p), len(t)) if seq2seq else len(p) + len(t)
        if size > max_length:
            raise DataError(
                f"{where(i)}: {size} tokens (prompt {len(p)} + target {len(t)}) exceed max_length {max_length}; "
                "raise max_length, shorten the dialogue or drop the row"
            )
        if seq2seq:
            out.append(Example(p, t))
        elif prompt_loss_weight:
            out.append(Example(p + t, p + t, [prompt_loss_weight] * len(p) + [1.0] * len(t)))
        else:
            out.append(Example(p + t, [IGNORE] * len(p) + t))
    return out


def encode_documents(
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int,
    reverse: bool = False,
    pack: bool = True,
    source: str = "training data",
) -> list[Example]:
    """Next-token examples over whole documents: every token is predicted from the ones before it.

    Args:
        reverse: reverse each document's token order (BOS stays first, EOS last), for reverse LMs.
        pack: concatenate documents and cut the stream into `max_length` blocks (no padding wasted);
            otherwise one example per document, cut at `max_length`.
    """
    if not len(texts):
        raise DataError(f"{source}: no documents to train on")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}: row {i + 1}: empty document")
    bodies = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    bos = leading_bos(tokenizer)
    docs = [document_ids(tokenizer, body, reverse=reverse, bos=bos) for body in bodies]
    if not pack:
        return [Example(d[:max_length], d[:max_length]) for d in docs]
    stream = [t for d in docs for t in d]
    if bos is None:
        blocks = [stream[i : i + max_length] for i in range(0, len(stream), max_length)]
    else:
        # Every block starts with BOS, as every scored text does: a pretrained model (Gemma above all) treats
        # the first position as an attention sink, and a block that opens mid-document without it trains
        # and scores the model in a state it never meets at inference (its loss starts near 6 nats).
        step = max_length - 1
        blocks = [stream[i : i + step] for i in range(0, len(stream), step)]
        blocks = [b if b[0] == bos else [bos] + b for b in blocks]
    return [Example(b, b) for b in blocks if len(b) > 1]


_UNSET = object()


def leading_bos(tokenizer) -> int | None:
    """The BOS id the tokenizer itself puts before a text it encodes, or None where it adds none.

    Some tokenizers define a BOS they never add (SmolLM2's GGUF, GPT-2): a scored text then has no BOS
    (`LanguageModel.token_losses` encodes as the tokenizer does), so a training document must not have one either.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return None
    ids = tokenizer("a")["input_ids"]
    return bos if len(ids) and ids[0] == bos else None


def document_ids(tokenizer, body: Sequence[int], *, reverse: bool = False, bos=_UNSET) -> list[int]:
    """BOS (where the tokenizer adds one) + body (reversed if asked) + EOS: reversal is over the content tokens
    only. `bos`: `leading_bos(tokenizer)` computed once by a caller with many documents."""
    body = list(body)[::-1] if reverse else list(body)
    bos = leading_bos(tokenizer) if bos is _UNSET else bos
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return ([bos] if bos is not None else []) + body + eos


class ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        example = self.examples[i]
        row = {"input_ids": example.input_ids, "labels": example.labels}
        if example.weights is not None:
            row["loss_weights"] = example.weights
        return row

    def n_target_tokens(self) -> int:
        """Tokens whose loss counts in full (a weighted prompt's do not)."""
        return sum(
            sum(1 for j, x in enumerate(e.labels) if x != IGNORE and (e.weights is None or e.weights[j] == 1.0))
            for e in self.examples
        )

    def n_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)


@dataclass
class Collator:
    """Right-pad a batch; padding never carries a loss. Seq2seq batches pad inputs and labels separately.
    Rows with `loss_weights` give the batch a float `loss_weights` tensor, shaped as `labels` (0 on padding)."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        lwidth = max(len(r["labels"]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), lwidth), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            input_ids[i, :n] = torch.tensor(r["input_ids"])
            mask[i, :n] = 1
            labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
        if any("loss_weights" in r for r in rows):
            weights = torch.zeros((len(rows), lwidth), dtype=torch.float32)
            for i, r in enumerate(rows):
                weights[i, : len(r["labels"])] = torch.tensor(r.get("loss_weights", [1.0] * len(r["labels"])))
            batch["loss_weights"] = weights
        return batch


@dataclass
class TextPair:
    """One contrastive row: the token ids of two texts (each inside the embedding template) and the cosine
    similarity their pooled vectors should have (1 = same class, 0 = different)."""

    first: list[int]
    second: list[int]
    similarity: float


def encode_text_pairs(
    tokenizer,
    first: Sequence[str],
    second: Sequence[str],
    similarity: Sequence[float],
    *,
    template: str,
    max_length: int,
    source: str = "training data",
) -> list[TextPair]:
    """Tokenize contrastive pairs exactly as `LanguageModel.embed` tokenizes a text at run time: the text put in
    `template`, special tokens added (BOS), cut at `max_length` tokens (the runtime cuts at the model's limit).
    Each distinct text is tokenized once (SetFit pairs repeat every text dozens of times).

    Raises:
        DataError: lengths that differ, an empty text, or a similarity outside [-1, 1], naming the row.
    """
    if not len(first) == len(second) == len(similarity):
        raise DataError(f"{source}: {len(first)} first texts, {len(second)} second texts and "
                        f"{len(similarity)} similarities; they must match row for row")
    if not len(first):
        raise DataError(f"{source}: no pairs to train on")
    for i, (a, b, s) in enumerate(zip(first, second, similarity)):
        for text in (a, b):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{source}: pair {i + 1}: empty text")
        if not -1.0 <= float(s) <= 1.0:
            raise DataError(f"{source}: pair {i + 1}: similarity {s} is outside [-1, 1]")
    texts = list(dict.fromkeys([*first, *second]))
    ids = tokenizer([format_template(template, t) for t in texts], add_special_tokens=True)["input_ids"]
    lookup = {t: x[:max_length] for t, x in zip(texts, ids)}
    return [TextPair(lookup[a], lookup[b], float(s)) for a, b, s in zip(first, second, similarity)]


class TextPairDataset(torch.utils.data.Dataset):
    def __init__(self, pairs: list[TextPair]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        p = self.pairs[i]
        return {"input_ids": p.first, "pair_ids": p.second, "labels": p.similarity}

    def n_target_tokens(self) -> int:  # no token carries a loss of its own: the pooled vectors do
        return 0

    def n_tokens(self) -> int:
        return sum(len(p.first) + len(p.second) for p in self.pairs)


@dataclass
class PairCollator:
    """One right-padded batch of 2B rows, every pair's first text in rows 0..B-1 and its second in B..2B-1 (one
    forward pass for both sides), with the B target similarities as float `labels`."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict:
        seqs = [r["input_ids"] for r in rows] + [r["pair_ids"] for r in rows]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        labels = torch.tensor([float(r["labels"]) for r in rows], dtype=torch.float32)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class PreferenceDataset(torch.utils.data.Dataset):
    """(prompt + chosen, prompt + rejected) rows for objective "preference", each with the reference model's
    log-probability of both targets (filled in by the trainer before the first step)."""

    def __init__(self, chosen: list[Example], rejected: list[Example]) -> None:
        self.chosen, self.rejected = chosen, rejected
        self.reference: list[tuple[float, float]] | None = None

    def __len__(self) -> int:
        return len(self.chosen)

    def __getitem__(self, i: int) -> dict:
        c, r = self.chosen[i], self.rejected[i]
        row = {"input_ids": c.input_ids, "labels": c.labels, "rejected_ids": r.input_ids, "rejected_labels": r.labels}
        if self.reference is not None:
            row["reference"] = self.reference[i]
        return row

    def n_target_tokens(self) -> int:
        return sum(sum(1 for x in e.labels if x != IGNORE) for e in self.chosen + self.rejected)

    def n_tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.chosen + self.rejected)


@dataclass
class PreferenceCollator:
    """One right-padded batch of 2B rows, the B chosen sequences first and their rejected twins after (one forward
    pass for both), with the reference log-probabilities (B, 2) when the rows carry them."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict:
        sides = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
        sides += [{"input_ids": r["rejected_ids"], "labels": r["rejected_labels"]} for r in rows]
        batch = Collator(self.pad_id)(sides)
        if all("reference" in r for r in rows):
            batch["reference"] = torch.tensor([list(r["reference"]) for r in rows], dtype=torch.float32)
        return batch
