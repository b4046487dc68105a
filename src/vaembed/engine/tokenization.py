"""From texts to padded model inputs: prompts, length policy, pooling masks.

Every text becomes one or more `TokenSequence`s (more than one when a long text
is chunked). The text is shortened, never the prompt: a truncated prompt would
lose its instruction. Sequences are padded per batch (dynamic padding) on a
chosen side; positions count from each row's first real token, so the padding
side never changes an embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from vaembed.engine.locks import lock_for
from vaembed.recipes.pooling import TokenPositions
from vaembed.recipes.prompts import FormattedText, Prompt, Role

__all__ = [
    "LONG_TEXT_POLICIES",
    "PADDING_SIDES",
    "Batch",
    "LongTextPolicy",
    "PaddingSide",
    "TextTokenizer",
    "TextTooLongError",
    "TokenSequence",
]

LongTextPolicy = Literal["truncate", "chunk", "error"]
LONG_TEXT_POLICIES: tuple[str, ...] = get_args(LongTextPolicy)
PaddingSide = Literal["right", "left"]
PADDING_SIDES: tuple[str, ...] = get_args(PaddingSide)


class TextTooLongError(ValueError):
    """A text is over `max_length` tokens (prompt included) under `long_text="error"`.

    Attributes:
        index: The text's position in the input.
        tokens: Its tokens with the prompt.
        max_length: The limit.
    """

    def __init__(self, index: int, tokens: int, max_length: int) -> None:
        super().__init__(
            f"texts[{index}] has {tokens} tokens with its prompt, over max_length={max_length} "
            "(use long_text='truncate' or 'chunk')"
        )
        self.index, self.tokens, self.max_length = index, tokens, max_length

    def __reduce__(self) -> tuple[type[TextTooLongError], tuple[int, int, int]]:
        return type(self), (self.index, self.tokens, self.max_length)  # picklable (e.g. across Ray workers)


@dataclass(frozen=True)
class TokenSequence:
    """One model input.

    Attributes:
        ids: Token ids.
        pool_mask: Which tokens mean pooling reads.
        placeholder: Index of the placeholder token, or None.
        source: Index of the text it came from.
        weight: Number of text tokens it holds (weights chunks of one text).
    """

    ids: tuple[int, ...]
    pool_mask: tuple[bool, ...]
    placeholder: int | None
    source: int
    weight: int


@dataclass(frozen=True)
class Batch:
    """Padded tensors for one forward pass, and where each row's tokens are."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    positions: TokenPositions

    def to(self, device: torch.device) -> Batch:
        """Return the batch on `device`."""
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.position_ids.to(device),
            self.positions.to(device),
        )


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return end > start and any(start < b and end > a for a, b in spans)


class TextTokenizer:
    """Turns texts into `TokenSequence`s and batches of them into tensors.

    Args:
        tokenizer: A fast Hugging Face tokenizer (offsets are needed).
        max_length: Maximum tokens per sequence, prompt included.
        padding_side: `"right"` or `"left"`.
    """

    def __init__(self, tokenizer: object, max_length: int, padding_side: PaddingSide = "right") -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("vaembed needs a fast tokenizer (one that reports character offsets)")
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"padding_side must be one of {', '.join(PADDING_SIDES)}, not {padding_side!r}")
        self.tokenizer = tokenizer
        self._lock = lock_for(tokenizer)  # fast tokenizers must not be called from two threads at once
        self.max_length = max_length
        self.padding_side = padding_side
        fallback = [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id]
        self._filler_id = next((i for i in fallback if i is not None), 0)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._filler_id

    def _tokenize(self, strings: list[str]) -> dict:
        return self.tokenizer(
            strings,
            add_special_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            verbose=False,
        )

    def _sequence(
        self, encoded: dict, row: int, formatted: FormattedText, prompt: Prompt, source: int
    ) -> TokenSequence:
        ids = list(encoded["input_ids"][row])
        offsets = [tuple(o) for o in encoded["offset_mapping"][row]]
        special = [bool(s) for s in encoded["special_tokens_mask"][row]]
        placeholder = None
        if formatted.placeholder_span is not None:
            hits = [i for i, (s, e) in enumerate(offsets) if _overlaps(s, e, [formatted.placeholder_span])]
            if hits:  # keep one token for the marker, drop the rest of its pieces
                placeholder = hits[0]
                for index in reversed(hits[1:]):
                    del ids[index], offsets[index], special[index]
        if not ids:  # an empty text with no prompt and no BOS: give the model one token
            ids, offsets, special = [self._filler_id], [(0, 0)], [True]
        spans = {"all": None, "text": formatted.text_spans, "last_text": formatted.text_spans[-1:]}[prompt.pool_span]
        in_text = [_overlaps(s, e, formatted.text_spans) for s, e in offsets]
        pairs = zip(offsets, special, strict=True)
        pool = [not sp and (spans is None or _overlaps(s, e, spans)) for (s, e), sp in pairs]
        if not any(pool):  # e.g. an empty text: pool what there is, never divide by zero
            pool = [not sp for sp in special] if not all(special) else [True] * len(ids)
        weight = max(1, sum(in_text) // max(1, len(formatted.text_spans)))
        return TokenSequence(tuple(ids), tuple(pool), placeholder, source, weight)

    def _windows(self, text: str, budget: int, chunk: bool) -> list[str]:
        """Split `text` into windows of at most `budget` text tokens (only the first if not chunking)."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        starts = [start for start, _ in encoded["offset_mapping"]]
        if len(starts) <= budget:
            return [text]
        cuts = list(range(0, len(starts), budget))
        if not chunk:
            return [text[: encoded["offset_mapping"][budget - 1][1]]]
        bounds = [starts[c] if i else 0 for i, c in enumerate(cuts)] + [len(text)]
        return [text[bounds[i] : bounds[i + 1]] for i in range(len(cuts))]

    def encode(
        self, texts: Sequence[str], prompt: Prompt, role: Role, long_text: LongTextPolicy
    ) -> tuple[list[TokenSequence], int]:
        """Tokenize texts under a prompt and a long-text policy.

        Returns:
            The sequences (one per text, or several per chunked text) and the
            number of texts that were truncated or chunked.

        Raises:
            ValueError: A text is too long under `long_text="error"`, or
                `max_length` leaves no room for text after the prompt.
        """
        with self._lock:
            return self._encode(texts, prompt, role, long_text)

    def _encode(
        self, texts: Sequence[str], prompt: Prompt, role: Role, long_text: LongTextPolicy
    ) -> tuple[list[TokenSequence], int]:
        formatted = [prompt.format(text, role) for text in texts]
        encoded = self._tokenize([f.string for f in formatted])
        sequences: list[TokenSequence] = []
        shortened = 0
        for index, text in enumerate(texts):
            sequence = self._sequence(encoded, index, formatted[index], prompt, index)
            if len(sequence.ids) <= self.max_length:
                sequences.append(sequence)
                continue
            if long_text == "error":
                raise TextTooLongError(index, len(sequence.ids), self.max_length)
            shortened += 1
            sequences.extend(self._fit(text, index, len(sequence.ids), prompt, role, long_text == "chunk"))
        return sequences, shortened

    def _fit(self, text: str, index: int, length: int, prompt: Prompt, role: Role, chunk: bool) -> list[TokenSequence]:
        copies = prompt.copies(role)
        text_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        overhead = length - copies * text_tokens
        budget = (self.max_length - overhead) // copies
        for _ in range(8):
            if budget < 1:
                raise ValueError(
                    f"max_length={self.max_length} leaves no room for text after the {role} prompt ({overhead} tokens)"
                )
            windows = self._windows(text, budget, chunk)
            formatted = [prompt.format(window, role) for window in windows]
            encoded = self._tokenize([f.string for f in formatted])
            out = [self._sequence(encoded, i, f, prompt, index) for i, f in enumerate(formatted)]
            excess = max(len(s.ids) for s in out) - self.max_length
            if excess <= 0:
                return out
            budget -= max(1, -(-excess // copies))  # token merges at window edges: shrink and retry
        raise ValueError(f"texts[{index}] could not be fitted into max_length={self.max_length}")

    def collate(self, sequences: Sequence[TokenSequence]) -> Batch:
        """Pad sequences into one batch."""
        width = max(len(s.ids) for s in sequences)
        rows = len(sequences)
        input_ids = torch.full((rows, width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((rows, width), dtype=torch.long)
        pool = torch.zeros((rows, width), dtype=torch.float32)
        placeholder = torch.zeros(rows, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            n = len(sequence.ids)
            start = 0 if self.padding_side == "right" else width - n
            input_ids[row, start : start + n] = torch.tensor(sequence.ids)
            attention[row, start : start + n] = 1
            pool[row, start : start + n] = torch.tensor(sequence.pool_mask, dtype=torch.float32)
            placeholder[row] = start + (sequence.placeholder or 0)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        last = attention.shape[1] - 1 - attention.flip(dims=[1]).argmax(dim=1)
        has_placeholder = any(s.placeholder is not None for s in sequences)
        where = TokenPositions(
            last=last,
            pool_weights=pool / pool.sum(dim=1, keepdim=True),
            placeholder=placeholder if has_placeholder else None,
            padded=not bool(attention.all()),
        )
        return Batch(input_ids, attention, positions, where)
