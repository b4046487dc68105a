"""A lexical readout from the PromptEOL pass (PromptReps' idea), as an experiment.

At the last position of the "means in one word" prompt, the final hidden state
is projected through the LM head (the input embeddings, for the tied models
here). Only the vocabulary ids that occur in the text itself are kept, weighted
`log(1 + relu(logit))`, and the `top_k` largest stay: a sparse, lexical vector.
Queries and documents alike; the score is the dot product. It reuses the
PromptEOL pass's last-token states, so it costs no forward pass of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["TOP_K", "lexical_scores", "lexical_vectors", "lm_head_weight"]

TOP_K = 128


def lm_head_weight(embedder: Any) -> torch.Tensor:
    """The LM head's (vocabulary x hidden) weight: the tied input embeddings, else `lm_head.weight` on disk.

    Raises:
        FileNotFoundError: The head is untied and its weight is not in the model folder.
    """
    config = embedder.model.config
    if getattr(config, "tie_word_embeddings", True):
        return embedder.model.get_input_embeddings().weight.detach().float()
    from pathlib import Path

    from safetensors import safe_open

    folder = Path(getattr(config, "_name_or_path", ""))
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            if "lm_head.weight" in handle.keys():  # noqa: SIM118 - safe_open has no __contains__
                return handle.get_tensor("lm_head.weight").float()
    raise FileNotFoundError(f"no lm_head.weight in {folder}; the lexical readout needs the LM head")


def lexical_vectors(
    hidden: np.ndarray, texts: Sequence[str], tokenizer: Any, head: torch.Tensor, top_k: int = TOP_K
) -> Any:
    """Sparse lexical vectors (scipy CSR, texts x vocabulary) from last-token final hidden states (texts x D)."""
    from scipy.sparse import csr_matrix

    rows, columns, values = [], [], []
    for start in range(0, len(texts), 64):  # logits in blocks: a 262k vocabulary x 64 texts is 64 MiB
        block = torch.as_tensor(hidden[start : start + 64], dtype=torch.float32) @ head.T
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
    return csr_matrix((values, (rows, columns)), shape=(len(texts), head.shape[0]), dtype=np.float64)


def lexical_scores(queries: Any, documents: Any) -> np.ndarray:
    """Dot products of sparse query and document vectors, (queries x documents)."""
    return np.asarray((queries @ documents.T).todense(), dtype=np.float64)
