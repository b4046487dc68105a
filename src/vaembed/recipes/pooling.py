"""Token positions of a padded batch, and pooling over tokens.

A readout reads per-token vectors of shape (B, T, F) at some point of the
forward pass and pools them into (B, F). `TokenPositions` says where each row's
tokens are: its last non-pad token, its mean-pooling weights (which tokens the
prompt's pooling span covers, rows summing to 1), and, for token prepending,
its placeholder token. Interventions read the same positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

__all__ = ["POOLINGS", "Pooling", "TokenPositions", "pool_tokens"]

Pooling = Literal["mean", "last", "hybrid"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


@dataclass(frozen=True)
class TokenPositions:
    """Where the tokens of each row of a padded batch are.

    Attributes:
        last: (B,) index of each row's last non-pad token (`n` in METHODS).
        pool_weights: (B, T) mean-pooling weights; each row sums to 1.
        placeholder: (B,) index of each row's placeholder token, or None.
        padded: Whether any row holds padding.
    """

    last: torch.Tensor
    pool_weights: torch.Tensor
    placeholder: torch.Tensor | None = None
    padded: bool = True

    def to(self, device: torch.device) -> TokenPositions:
        """Return the positions on `device`."""
        placeholder = self.placeholder.to(device) if self.placeholder is not None else None
        return TokenPositions(self.last.to(device), self.pool_weights.to(device), placeholder, self.padded)

    def at_last(self, states: torch.Tensor) -> torch.Tensor:
        """Each row's vector at its last token: (B, T, F) -> (B, F)."""
        return states[torch.arange(states.shape[0], device=states.device), self.last]


def pool_tokens(states: torch.Tensor, pooling: str, positions: TokenPositions) -> torch.Tensor:
    """Pool per-token states of shape (B, T, F) into float32 (B, F).

    Args:
        states: Per-token vectors.
        pooling: `"mean"` (weighted by `positions.pool_weights`), `"last"`, or
            `"hybrid"` (their average).
        positions: The batch's token positions.

    Raises:
        ValueError: An unknown pooling.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
    states = states.float()
    if pooling == "last":
        return positions.at_last(states)
    mean = torch.einsum("btf,bt->bf", states, positions.pool_weights)
    if pooling == "mean":
        return mean
    return 0.5 * (mean + positions.at_last(states))
