"""Post-processing: centring or standardising embeddings with statistics of a generic corpus.

A frozen LLM's readouts share a large common direction (and hidden states a few
huge outlier dimensions), so raw cosine scores are compressed and a few
documents come out close to every query ("hubs"). Subtracting the mean
embedding of a generic corpus (`"center"`), or also dividing each dimension by
its standard deviation there (`"standardize"`), before L2 normalisation removes
that. Queries and documents get the same transform. The statistics are the
model's own: the readout's raw vectors over the bundled calibration corpus
(`vaembed.calibration.statistics`), computed once per model, recipe and layer
set and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

__all__ = ["POSTPROCESS_MODES", "PostProcess", "Transform", "check_postprocess"]

PostProcess = Literal["none", "center", "standardize"]
POSTPROCESS_MODES: tuple[str, ...] = get_args(PostProcess)
STD_FLOOR = 1e-6
"""Added to each dimension's standard deviation, so a constant dimension does not divide by zero."""


def check_postprocess(mode: object) -> PostProcess:
    """Return `mode` if it is a post-processing mode.

    Raises:
        ValueError: It is not one of `"none"`, `"center"`, `"standardize"`.
    """
    if not isinstance(mode, str) or mode not in POSTPROCESS_MODES:
        raise ValueError(f"postprocess must be one of {', '.join(POSTPROCESS_MODES)}, not {mode!r}")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Transform:
    """The affine map a post-processing mode applies to raw (unnormalised) vectors.

    Attributes:
        mode: `"center"` or `"standardize"`.
        mean: (dim,) float32 mean of the corpus vectors.
        scale: (dim,) float32 divisor: ones for `"center"`, std + floor for `"standardize"`.
    """

    mode: PostProcess
    mean: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def from_statistics(cls, mode: PostProcess, mean: torch.Tensor, std: torch.Tensor) -> Transform:
        """The transform of `mode` from a corpus's per-dimension mean and standard deviation.

        Raises:
            ValueError: `mode` is `"none"` or unknown, or the statistics have other shapes or are not finite.
        """
        if check_postprocess(mode) == "none":
            raise ValueError("postprocess='none' has no transform")
        mean, std = mean.float().reshape(-1), std.float().reshape(-1)
        if mean.shape != std.shape or not bool(torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("the statistics must be finite vectors of one size")
        scale = std + STD_FLOOR if mode == "standardize" else torch.ones_like(std)
        return cls(mode, mean, scale)

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        """Apply to (n, dim) float32 vectors.

        Raises:
            ValueError: The vectors' dimension differs from the statistics'.
        """
        if vectors.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"vectors of dimension {vectors.shape[-1]} for statistics of {self.mean.shape[0]}")
        return (vectors - self.mean.to(vectors.device)) / self.scale.to(vectors.device)
