"""Embedding quantisation: int8/uint8 with calibrated per-dimension ranges, and packed binary codes.

The precisions follow sentence-transformers' `encode(precision=...)`:

- `"float32"`: the embeddings as they are.
- `"int8"` / `"uint8"`: each dimension's range `[low, high]` is cut into 255
  equal steps and a value becomes `floor((value - low) / step)` (minus 128 for
  int8): the codes of sentence-transformers' `quantize_embeddings` for values
  inside the ranges. Values outside go to the first or last code, and a
  dimension whose range is empty steps by 1 from its low, as there. The ranges are the
  per-dimension minimum and maximum of the embedder's own final vectors (same
  post-processing and normalisation) over the bundled calibration corpus,
  computed once per embedder setting (`Embedder.quantization_ranges`,
  `StatisticsSlot.ranges`), or
  given by the caller as a `(2, dimension)` array of lows and highs.
- `"binary"` / `"ubinary"`: one bit per dimension (1 where the value is
  positive), packed 8 per byte (the last byte zero-padded), as int8 (the
  packed byte minus 128) or uint8. Compare codes by Hamming distance.

`dequantize_embeddings` maps int8/uint8 codes back to their buckets' centres,
so a caller can check how much a code loses.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
import torch

__all__ = [
    "INT_BUCKETS",
    "PRECISIONS",
    "Precision",
    "check_precision",
    "check_ranges",
    "dequantize_embeddings",
    "encode_output",
    "quantize_embeddings",
]

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[Precision, ...] = ("float32", "int8", "uint8", "binary", "ubinary")
INT_BUCKETS = 256
_OUTPUT_TYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "binary": np.int8, "ubinary": np.uint8}


def check_precision(precision: object) -> Precision:
    """Return `precision` if it is one of `PRECISIONS`.

    Raises:
        ValueError: It is not.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return cast(Precision, precision)


def check_ranges(ranges: object, dimension: int) -> np.ndarray:
    """Return `ranges` as a float64 `(2, dimension)` array of per-dimension lows and highs.

    Raises:
        ValueError: Wrong shape, a non-finite value, or a high below its low (the dimension is named).
    """
    try:
        array = np.asarray(ranges, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"ranges must be a (2, {dimension}) array of numbers, not {type(ranges).__name__}") from None
    if array.shape != (2, dimension):
        raise ValueError(f"ranges must have shape (2, {dimension}) (lows, highs), not {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("ranges hold NaN or Inf")
    below = np.flatnonzero(array[1] < array[0])
    if below.size:
        raise ValueError(f"ranges: the high of dimension {int(below[0])} is below its low")
    return array


def _steps(ranges: np.ndarray) -> np.ndarray:
    """Bucket widths: 255 steps from low to high, as sentence-transformers (1 where the range is empty)."""
    width = ranges[1] - ranges[0]
    return np.where(width > 0, width / (INT_BUCKETS - 1), 1.0)


def _bucket(rows: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    buckets = np.floor((rows.astype(np.float64) - bounds[0]) / _steps(bounds))
    return np.clip(buckets, 0, INT_BUCKETS - 1).astype(np.int16)


def quantize_embeddings(
    embeddings: np.ndarray | torch.Tensor, precision: Precision, ranges: np.ndarray | None = None
) -> np.ndarray:
    """Quantise float embeddings of shape `(n, dimension)` (or one `(dimension,)` vector).

    Args:
        embeddings: Float embeddings.
        precision: One of `PRECISIONS`.
        ranges: For int8/uint8: the `(2, dimension)` lows and highs (see the module docstring).

    Returns:
        float32 for `"float32"`; int8/uint8 codes of the same shape; for binary,
        `ceil(dimension / 8)` bytes per vector.

    Raises:
        ValueError: Bad `precision`, missing or bad `ranges` for int8/uint8, or NaN in the embeddings.
    """
    precision = check_precision(precision)
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().to("cpu", torch.float32).numpy()
    values = np.asarray(embeddings, dtype=np.float32)
    single = values.ndim == 1
    rows = values[None, :] if single else values
    if rows.ndim != 2:
        raise ValueError(f"embeddings must be one vector or a 2-D array, not shape {values.shape}")
    if np.isnan(rows).any():
        raise ValueError("embeddings hold NaN")
    if precision == "float32":
        out = rows
    elif precision in ("int8", "uint8"):
        if ranges is None:
            raise ValueError(f"precision={precision!r} needs ranges (lows and highs per dimension)")
        codes = _bucket(rows, check_ranges(ranges, rows.shape[1]))
        out = (codes - 128).astype(np.int8) if precision == "int8" else codes.astype(np.uint8)
    else:
        packed = np.packbits(rows > 0, axis=1)
        out = (packed.astype(np.int16) - 128).astype(np.int8) if precision == "binary" else packed
    out = out.astype(_OUTPUT_TYPES[precision], copy=False)
    return out[0] if single else out


def dequantize_embeddings(codes: np.ndarray, precision: Precision, ranges: np.ndarray) -> np.ndarray:
    """Map int8/uint8 codes back to their buckets' centres (float32; the top bucket's is its high).

    Raises:
        ValueError: `precision` is not int8 or uint8, or bad `ranges`.
    """
    if check_precision(precision) not in ("int8", "uint8"):
        raise ValueError(f"only int8 and uint8 codes can be dequantized, not {precision!r}")
    values = np.asarray(codes).astype(np.float64)
    values = values + 128 if precision == "int8" else values
    bounds = check_ranges(ranges, values.shape[-1])
    centres = np.minimum(bounds[0] + (values + 0.5) * _steps(bounds), bounds[1])
    return centres.astype(np.float32)


def encode_output(
    embeddings: torch.Tensor, precision: Precision, ranges: np.ndarray | None, *, as_tensor: bool
) -> np.ndarray | torch.Tensor:
    """What `encode` returns: float32 embeddings quantised to `precision`, as numpy or a CPU tensor."""
    values = embeddings.detach().to("cpu", torch.float32).numpy()
    out = values if check_precision(precision) == "float32" else quantize_embeddings(values, precision, ranges)
    return torch.from_numpy(out) if as_tensor else out
