"""Attention kernels: softmax attention, with key/value columns every query may see.

`attend` is what the registered attention function runs, and what an
intervention's `attention` hook calls. Besides plain (causal or masked)
attention it takes *prefix* columns: extra keys and values that every query
position attends to, whatever the causal mask, padding or sliding window,
with a bias added to their logits (KV-Embedding's rerouting).

Without a mask (an unpadded causal batch) the prefix needs no (T, T) mask:
prefix queries are put in front of the queries, so the square causal mask lets
query `t` see the prefix and keys `0..t`, and the bias rides on one extra
head dimension (query 1, prefix key `bias / scale`, other keys 0). That runs on
SDPA's `is_causal` fast path, like the plain layers. With a mask, or Gemma 2's
softcapping, the prefix columns are added to an explicit additive mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["attend"]


def _with_prefix_mask(
    mask: torch.Tensor | None, query: torch.Tensor, key_length: int, prefix: int, bias: float
) -> torch.Tensor:
    """Additive mask (B, 1, Q, P + K): `prefix` columns of `bias` every query sees, then `mask` (causal if None)."""
    batch, _, q_length, _ = query.shape
    if mask is None:
        mask = torch.ones(q_length, key_length, dtype=torch.bool, device=query.device).tril()
        mask = mask.expand(batch, 1, q_length, key_length)
    if mask.dtype == torch.bool:
        additive = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
        additive = additive.masked_fill(~mask, -math.inf)
    else:
        additive = mask.to(query.dtype)
    columns = torch.full((*additive.shape[:-1], prefix), bias, dtype=query.dtype, device=query.device)
    return torch.cat([columns.expand(additive.shape[0], -1, -1, -1), additive], dim=-1)


def _prefix_causal(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    prefix_key: torch.Tensor,
    prefix_value: torch.Tensor,
    bias: float,
    scale: float,
) -> torch.Tensor:
    """Causal attention over `prefix + keys` without a mask, on SDPA's fast path; (B, T, H, d).

    Query `t` of the square pass `[P prefix queries, queries]` sees the P prefix
    keys and keys `0..t`. The bias is one more head dimension: 1 on every query,
    `bias / scale` on the prefix keys and 0 elsewhere. Other devices than the CPU
    get the head dimension padded to a multiple of 8 (what their fast kernels take).
    """
    batch, heads, length, size = query.shape
    prefix = prefix_key.shape[2]
    wide = size + 1 if query.device.type == "cpu" else -(-(size + 1) // 8) * 8
    queries = query.new_zeros(batch, heads, prefix + length, wide)
    queries[:, :, :prefix, :size] = query[:, :, :1]  # prefix queries: never read, any finite row will do
    queries[:, :, prefix:, :size] = query
    queries[..., size] = 1.0
    keys = key.new_zeros(batch, key.shape[1], prefix + length, wide)
    keys[:, :, :prefix, :size] = prefix_key
    keys[:, :, :prefix, size] = bias / scale
    keys[:, :, prefix:, :size] = key
    values = value.new_zeros(batch, value.shape[1], prefix + length, wide)
    values[:, :, :prefix, :size] = prefix_value
    values[:, :, prefix:, :size] = value
    groups = heads // key.shape[1]
    out = F.scaled_dot_product_attention(queries, keys, values, scale=scale, is_causal=True, enable_gqa=groups > 1)
    return out[:, :, prefix:, :size].transpose(1, 2)


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    scale: float,
    softcap: float | None = None,
    prefix_key: torch.Tensor | None = None,
    prefix_value: torch.Tensor | None = None,
    prefix_bias: float = 0.0,
) -> torch.Tensor:
    """Softmax attention; returns the per-head weighted values (B, T, H, d).

    Args:
        query: (B, H, T, d).
        key: (B, G, K, d) with G dividing H (GQA).
        value: (B, G, K, d).
        mask: (B, 1, T, K) bool (True = attend) or additive float; None is causal
            for a square pass and sees every key otherwise (decoding with a cache).
        scale: Logit scale.
        softcap: Gemma 2's logit softcapping (an eager path), or None.
        prefix_key: (B, G, P, d) extra keys every query sees, or None.
        prefix_value: (B, G, P, d) their values.
        prefix_bias: Added to the prefix columns' logits.
    """
    if prefix_key is not None and prefix_value is not None and prefix_bias != -math.inf:  # -inf: weight exactly 0
        if mask is None and softcap is None and query.shape[2] == key.shape[2]:
            return _prefix_causal(query, key, value, prefix_key, prefix_value, prefix_bias, scale)
        mask = _with_prefix_mask(mask, query, key.shape[2], prefix_key.shape[2], prefix_bias)
        key = torch.cat([prefix_key, key], dim=2)
        value = torch.cat([prefix_value, value], dim=2)
    groups = query.shape[1] // key.shape[1]
    causal = mask is None and query.shape[2] == key.shape[2]
    if softcap is None:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=scale, is_causal=causal, enable_gqa=groups > 1
        )
        return out.transpose(1, 2)
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    logits = torch.matmul(query, key.transpose(2, 3)) * scale
    logits = torch.tanh(logits / softcap) * softcap
    if causal:
        mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else logits + mask
    weights = torch.softmax(logits, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2)
