"""The one attention function vaembed registers with transformers.

Every supported family (llama, mistral, qwen2, qwen3, gemma3_text, gemma2)
calls the registered function after its projections, RoPE and any q/k norm,
with `module.layer_idx`, the GQA-unrepeated key and value, and the mask built
by the registered mask function. Without a `ForwardPass` in the call it is
plain causal attention; with one, the pass captures what its readouts need and
its intervention may change the attention, through `attend`, which can
prepend key/value columns every query sees (KV-Embedding's rerouting). Gemma
2's logit softcapping goes through an eager path.
"""

from __future__ import annotations

import functools
import inspect
import math

import torch
import torch.nn.functional as F

from vaembed.engine.forward_pass import PASS_KWARG, ForwardPass

__all__ = ["ATTENTION_NAME", "SUPPORTED_MODEL_TYPES", "attend", "register", "use_vaembed_attention"]

ATTENTION_NAME = "vaembed"
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma2")
"""The model families (`config.model_type`) vaembed runs; tests and `vaembed.testing` read this tuple."""


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
    if prefix_key is not None and prefix_value is not None:
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


def vaembed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """Attention for transformers' `AttentionInterface` (see the module docstring).

    Args:
        module: The attention module (`layer_idx`, `o_proj`).
        query: (B, H, T, d), after RoPE.
        key: (B, G, T, d), after RoPE and any k-norm.
        value: (B, G, T, d).
        attention_mask: (B, 1, T, T) bool (True = attend) or additive float, or None.
        scaling: Logit scale; defaults to `d ** -0.5`.
        dropout: Ignored (inference only).
        softcap: Gemma 2's attention logit softcapping.
        **kwargs: May hold a `ForwardPass` under `vaembed_pass`.

    Returns:
        The per-head weighted values `u`, (B, T, H, d), and no weights.
    """
    state = kwargs.get(PASS_KWARG)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    if attention_mask is not None and attention_mask.shape[-1] != key.shape[-2]:
        attention_mask = attention_mask[..., : key.shape[-2]]
    kernel = functools.partial(attend, scale=scale, softcap=softcap)
    if isinstance(state, ForwardPass):
        return state.attention(module, query, key, value, attention_mask, kernel).contiguous(), None
    return kernel(query, key, value, attention_mask).contiguous(), None


def vaembed_mask(*args: object, **kwargs: object) -> torch.Tensor | None:
    """Mask builder registered beside the attention function.

    It is transformers' boolean SDPA mask, always materialised (padding is never
    skipped), with each query allowed to see itself so that no row is fully
    masked: left-padded rows would otherwise yield NaN that leaks through
    `0 * NaN` into real tokens.
    """
    from transformers.masking_utils import sdpa_mask

    if "allow_is_causal_skip" in inspect.signature(sdpa_mask).parameters:
        kwargs["allow_is_causal_skip"] = False
    mask = sdpa_mask(*args, **kwargs)
    if isinstance(mask, torch.Tensor) and mask.shape[-1] == mask.shape[-2]:
        mask = mask | torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
    return mask


_registered = False


def register() -> None:
    """Register the attention and mask functions under the name `vaembed` (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, vaembed_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, vaembed_mask)
    _registered = True


def use_vaembed_attention(model: torch.nn.Module) -> None:
    """Check the model's family and switch it to the registered attention.

    Raises:
        ValueError: The architecture is not supported; the message names those that are.
    """
    model_type = getattr(model.config, "model_type", None)
    layers = getattr(model, "layers", None)
    if model_type not in SUPPORTED_MODEL_TYPES or layers is None:
        raise ValueError(
            f"Unsupported architecture {model_type!r}: vaembed supports {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    register()
    model.config._attn_implementation = ATTENTION_NAME
