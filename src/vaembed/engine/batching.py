"""Batching of model inputs: checking texts, grouping sequences into passes, combining chunks."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from vaembed.engine.tokenization import TokenSequence
from vaembed.recipes.prompts import ROLES

__all__ = ["check_encode_options", "check_texts", "check_encodable", "plan_batches", "combine_chunks"]


def check_encodable(text: str, label: str) -> None:
    """Check that `text` can be encoded as UTF-8, as every tokenizer needs.

    A Python str may hold lone surrogates (e.g. from `json.loads` of an escaped surrogate, or a
    file decoded with `errors="surrogateescape"`); no tokenizer accepts them.

    Raises:
        ValueError: `text` holds a lone surrogate (`label` and its position are named).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{label} holds a lone surrogate {text[error.start]!r} at character {error.start}, "
            "which is not valid Unicode text; decode your input properly or replace it "
            "(e.g. text.encode('utf-8', 'replace').decode('utf-8'))"
        ) from None


def check_texts(texts: str | Iterable[str]) -> tuple[list[str], bool]:
    """The texts as a list, and whether a single string was given.

    Raises:
        TypeError: `texts` is not a str or an iterable of str (the bad item's index is named).
        ValueError: A text holds a lone surrogate (its index is named).
    """
    if isinstance(texts, str):
        check_encodable(texts, "texts[0]")
        return [texts], True
    if texts is None or isinstance(texts, (bytes, dict)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a str or a list of str, not {type(texts).__name__}")
    items = list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"texts[{index}] must be str, not {type(item).__name__}")
        check_encodable(item, f"texts[{index}]")
    return items, False


def check_encode_options(role: object, batch_size: object) -> None:
    """Check `encode`'s role and batch size.

    Raises:
        ValueError: `role` is not one of `ROLES`, or `batch_size` is not a positive int.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")


def plan_batches(lengths: list[int], batch_size: int, token_budget: int) -> list[list[int]]:
    """Group sequence indices into batches, longest first.

    A batch holds at most `batch_size` sequences and, beyond its first, at most
    `token_budget` padded tokens (rows x longest): attention memory grows with
    rows x length squared, so long inputs run in small batches and short ones
    in full batches. Embeddings do not depend on the grouping.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current and len(current) < batch_size and (len(current) + 1) * lengths[current[0]] <= token_budget:
            current.append(index)
        else:
            batches.append([index])
    return batches


def combine_chunks(sequences: list[TokenSequence], vectors: torch.Tensor, count: int, normalize: bool) -> torch.Tensor:
    """One vector per text: chunks are combined by a token-weighted mean.

    Row `i` of `vectors` belongs to `sequences[i]`, whose `source` names its
    text in `0..count-1`, in any order. With `normalize`, chunk vectors are
    L2-normalised before averaging, so a chunk's weight is its share of the
    text's tokens, not its norm.
    """
    if normalize:
        vectors = torch.nn.functional.normalize(vectors, dim=-1)
    if len(sequences) == count and all(sequence.source == index for index, sequence in enumerate(sequences)):
        combined = vectors  # one sequence per text, already in text order
    else:
        sources = torch.tensor([s.source for s in sequences])
        weights = torch.tensor([float(s.weight) for s in sequences]).unsqueeze(1)
        combined = torch.zeros((count, vectors.shape[1]), dtype=torch.float32)
        combined.index_add_(0, sources, vectors * weights)
        totals = torch.zeros(count).index_add_(0, sources, weights.squeeze(1))
        combined = combined / totals.unsqueeze(1)
    if normalize:
        combined = torch.nn.functional.normalize(combined, dim=-1)
    return combined
