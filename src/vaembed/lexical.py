"""A lexical readout: sparse vectors over the vocabulary from one PromptEOL pass (PromptReps' idea).

At the last position of the "means in one word" prompt, the final hidden state
is projected through the LM head (the tied input embeddings, or the head's
weight from the model folder). Only the vocabulary ids that occur in the text
itself are kept, weighted `log(1 + relu(logit))`, and the `top_k` largest stay.
Queries and documents are encoded alike; the score is the dot product of two
rows. Fused with a dense embedding and BM25 it adds a lexical signal the model
chose (benchmarks/README.md, "Lexical readout"):

    sparse = embedder.encode_sparse(["how do I reset my password"])  # scipy CSR, (1, vocabulary)
    scores = (queries @ documents.T).toarray()

It needs scipy (`pip install "vaembed[sparse]"`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vaembed.engine.batching import check_encode_options, check_texts

if TYPE_CHECKING:
    from vaembed.recipes.prompts import Role

__all__ = ["TOP_K", "encode_sparse", "lexical_vectors", "lm_head_weight"]

TOP_K = 128
"""Vocabulary ids kept per text."""
LOGIT_BLOCK = 64
"""Texts projected through the LM head at once (a 262k vocabulary x 64 texts is 64 MiB)."""
_HEADS: weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor] = weakref.WeakKeyDictionary()


def lm_head_weight(model: torch.nn.Module) -> torch.Tensor:
    """The LM head's (vocabulary x hidden) weight in float32, read once per model.

    The tied input embeddings when the config ties them, else `lm_head.weight`
    from the model folder's safetensors (vaembed loads the base model without its head).

    Raises:
        FileNotFoundError: The head is untied and its weight is not in the model folder.
    """
    if model in _HEADS:
        return _HEADS[model]
    config = model.config
    if getattr(config, "tie_word_embeddings", True):
        head = model.get_input_embeddings().weight.detach().float()
    else:
        head = _head_from_folder(Path(getattr(config, "_name_or_path", "")))
    _HEADS[model] = head
    return head


def _head_from_folder(folder: Path) -> torch.Tensor:
    from safetensors import safe_open

    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            if "lm_head.weight" in handle.keys():  # noqa: SIM118 - safe_open has no __contains__
                return handle.get_tensor("lm_head.weight").float()
    raise FileNotFoundError(f"no lm_head.weight in the model folder {folder}; the lexical readout needs the LM head")


def lexical_vectors(
    hidden: np.ndarray, texts: Sequence[str], tokenizer: Any, head: torch.Tensor, top_k: int = TOP_K
) -> Any:
    """Sparse lexical vectors from last-token final hidden states.

    Args:
        hidden: (texts x hidden size) final hidden states at the prompt's last position.
        texts: The texts, in the rows' order (their token ids are the kept vocabulary).
        tokenizer: The model's tokenizer.
        head: The LM head's (vocabulary x hidden) weight.
        top_k: Most vocabulary ids kept per text.

    Returns:
        A scipy CSR matrix (texts x vocabulary) of non-negative weights.
    """
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    for start in range(0, len(texts), LOGIT_BLOCK):
        block = torch.as_tensor(hidden[start : start + LOGIT_BLOCK], dtype=torch.float32) @ head.T
        for offset, logits in enumerate(block):
            text = texts[start + offset]
            ids = torch.tensor(sorted(set(tokenizer(text, add_special_tokens=False)["input_ids"])), dtype=torch.long)
            if ids.numel() == 0:
                continue
            weights = torch.log1p(torch.relu(logits[ids]))
            keep = torch.argsort(weights, descending=True)[:top_k]
            kept, kept_ids = weights[keep], ids[keep]
            positive = kept > 0
            rows += [start + offset] * int(positive.sum())
            columns += kept_ids[positive].tolist()
            values += kept[positive].tolist()
    return csr_matrix((values, (rows, columns)), shape=(len(texts), head.shape[0]), dtype=np.float32)


def encode_sparse(
    embedder: Any,
    texts: str | Iterable[str],
    *,
    role: Role = "document",
    top_k: int = TOP_K,
    batch_size: int = 32,
) -> Any:
    """Lexical sparse vectors of texts, from one PromptEOL pass of the embedder's model.

    Args:
        embedder: An `Embedder`: supplies the model, tokenizer and settings (its own recipe is not used).
        texts: A string or a list of strings.
        role: `"document"` or `"query"`.
        top_k: Most vocabulary ids kept per text (at least 1).
        batch_size: Most sequences per forward pass.

    Returns:
        A scipy CSR matrix (texts x vocabulary), one row per text (one row for a string).

    Raises:
        TypeError: `texts` or an item of it is not a str (the index is named).
        ValueError: `top_k` is not a positive int, or a bad `role` or `batch_size`.
        ImportError: scipy is not installed.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, not {top_k!r}")
    try:
        import scipy.sparse  # noqa: F401
    except ImportError as error:  # pragma: no cover - scipy ships with the test environment
        raise ImportError('encode_sparse needs scipy: pip install "vaembed[sparse]"') from error
    chosen, _ = check_texts(texts)
    check_encode_options(role, batch_size)
    head = lm_head_weight(embedder.model)
    hidden = np.zeros((0, head.shape[1]), dtype=np.float32)
    if chosen:  # the PromptEOL pass, read raw: the weights are logits, not cosine scores
        reader = embedder.with_recipe("prompteol", postprocess="none")
        hidden = np.asarray(reader.encode(chosen, role=role, batch_size=batch_size, normalize=False))
    return lexical_vectors(hidden, chosen, embedder.tokenizer, head, top_k)
