"""Prompt templates: how a text is wrapped before it reaches the model.

A template holds `{text}` one or more times. Queries and documents may use
different templates. Formatting records where each copy of the text sits,
so pooling can be restricted to the text (or to its last copy, as Echo does).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Literal, get_args

__all__ = ["Prompt", "FormattedText", "POOL_SPANS", "PROMPTS", "ROLES", "Role", "PoolSpan"]

Role = Literal["query", "document"]
ROLES: tuple[str, ...] = get_args(Role)
PoolSpan = Literal["all", "text", "last_text"]
POOL_SPANS: tuple[str, ...] = get_args(PoolSpan)
TEXT_SLOT = "{text}"


@dataclass(frozen=True)
class FormattedText:
    """A prompt filled with one text.

    Attributes:
        string: The full string given to the tokenizer.
        text_spans: Character spans `(start, end)` of each copy of the text.
        placeholder_span: Character span of the placeholder marker, if any.
    """

    string: str
    text_spans: tuple[tuple[int, int], ...]
    placeholder_span: tuple[int, int] | None = None


@dataclass(frozen=True)
class Prompt:
    """A role-aware prompt template.

    Attributes:
        document: Template for documents; must contain `{text}`.
        query: Template for queries; None uses the document template.
        pool_span: Which non-special tokens mean pooling reads: `"all"` (prompt
            tokens included), `"text"` (only the text's tokens), `"last_text"`
            (only the last copy of the text, as Echo embeddings do).
        placeholder: A marker in the templates that becomes one placeholder
            token (used by token prepending); None for no placeholder.
    """

    document: str = TEXT_SLOT
    query: str | None = None
    pool_span: PoolSpan = "all"
    placeholder: str | None = None

    def __post_init__(self) -> None:
        for role, template in (("document", self.document), ("query", self.query)):
            if template is not None and TEXT_SLOT not in template:
                raise ValueError(f"The {role} template {template!r} does not contain {TEXT_SLOT!r}")
            if template is not None and self.placeholder is not None and self.placeholder not in template:
                raise ValueError(f"The {role} template lacks the placeholder {self.placeholder!r}")
        if self.pool_span not in POOL_SPANS:
            raise ValueError(f"pool_span must be one of {', '.join(POOL_SPANS)}, not {self.pool_span!r}")

    @property
    def pool(self) -> PoolSpan:
        """Deprecated name of `pool_span` (read only)."""
        warnings.warn("Prompt.pool is deprecated: use Prompt.pool_span", DeprecationWarning, stacklevel=2)
        return self.pool_span

    def template(self, role: Role) -> str:
        """Return the template used for `role`."""
        if role == "query" and self.query is not None:
            return self.query
        return self.document

    def copies(self, role: Role) -> int:
        """Return how many times the text appears in the template for `role`."""
        return self.template(role).count(TEXT_SLOT)

    def format(self, text: str, role: Role) -> FormattedText:
        """Fill the template for `role` with `text`, recording where the text lands.

        The text is inserted verbatim: braces or the placeholder marker inside it
        are never interpreted.
        """
        pieces = self.template(role).split(TEXT_SLOT)
        out: list[str] = []
        spans: list[tuple[int, int]] = []
        placeholder_span = None
        position = 0
        for index, piece in enumerate(pieces):
            if self.placeholder is not None and placeholder_span is None and self.placeholder in piece:
                start = position + piece.index(self.placeholder)
                placeholder_span = (start, start + len(self.placeholder))
            out.append(piece)
            position += len(piece)
            if index < len(pieces) - 1:
                spans.append((position, position + len(text)))
                out.append(text)
                position += len(text)
        return FormattedText("".join(out), tuple(spans), placeholder_span)

    def with_instruction(self, instruction: str, role: Role) -> Prompt:
        """Return this prompt with a user instruction around the text for `role`.

        The recipe's template stays outside (its method keeps working); its
        `{text}` becomes the instruction template, so pooling spans and Echo's
        repeated copies still cover only the text.

        Args:
            instruction: A template holding `{text}` once, or a prefix put
                before the text verbatim (include any separator yourself).
            role: The role whose template changes; the other role's is kept.

        Raises:
            TypeError: `instruction` is not a str.
            ValueError: It holds `{text}` more than once, a lone surrogate, or the recipe's placeholder marker.
        """
        if not isinstance(instruction, str):
            raise TypeError(f"The {role} prompt must be a str, not {type(instruction).__name__}")
        try:
            instruction.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"The {role} prompt holds a lone surrogate at character {error.start}") from None
        if instruction.count(TEXT_SLOT) > 1:
            raise ValueError(f"The {role} prompt {instruction!r} holds {TEXT_SLOT!r} more than once")
        if self.placeholder is not None and self.placeholder in instruction:
            raise ValueError(f"The {role} prompt must not contain this recipe's placeholder {self.placeholder!r}")
        inner = instruction if TEXT_SLOT in instruction else instruction + TEXT_SLOT
        nested = self.template(role).replace(TEXT_SLOT, inner)
        if role == "query":
            return replace(self, query=nested)
        return replace(self, document=nested, query=self.template("query"))


PROMPTS: dict[str, Prompt] = {
    "none": Prompt(),
    "prompteol": Prompt('This sentence : "{text}" means in one word:"'),
    "compress": Prompt(
        document='Context: "{text}" Compress the context in one word:"',
        query='Query: "{text}" Compress the query in one word:"',
    ),
    "echo": Prompt(
        document="Document: {text}\nDocument again: {text}",
        query="Query: {text}\nQuery again: {text}",
        pool_span="last_text",
    ),
    "token-prepending": Prompt('This sentence : <PST> "{text}" means in one word:"', placeholder="<PST>"),
}
