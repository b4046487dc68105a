"""The one attention function vaembed registers with transformers.

Every supported family (llama, mistral, qwen2, qwen3, gemma3_text, gemma2)
calls the registered function after its projections, RoPE and any q/k norm,
with `module.layer_idx`, the GQA-unrepeated key and value, and the mask built
by the registered mask function. Without a `ForwardPass` in the call it is
plain causal attention; with one it reports values and mixed values to the
pass and, on rerouted layers, prepends each row's final key/value as a prefix
column every query may attend to (KV-Embedding). Gemma 2's logit softcapping
goes through an eager path.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

from vaembed.forward_pass import PASS_KWARG, ForwardPass
from vaembed.shared_pass import SharedPass

__all__ = ["ATTENTION_NAME", "SUPPORTED_MODEL_TYPES", "register", "use_vaembed_attention"]

ATTENTION_NAME = "vaembed"
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma2")


def _prefix_mask(mask: torch.Tensor | None, query: torch.Tensor, key_length: int, bias: float) -> torch.Tensor:
    """Additive mask (B, 1, Q, 1 + K): a prefix column of `bias`, then the given mask."""
    batch, _, q_length, _ = query.shape
    if mask is None:
        mask = torch.ones(q_length, key_length, dtype=torch.bool, device=query.device).tril()
        mask = mask.expand(batch, 1, q_length, key_length)
    if mask.dtype == torch.bool:
        additive = torch.zeros(mask.shape, dtype=query.dtype, device=query.device)
        additive = additive.masked_fill(~mask, -math.inf)
    else:
        additive = mask.to(query.dtype)
    prefix = torch.full((*additive.shape[:-1], 1), bias, dtype=query.dtype, device=query.device)
    return torch.cat([prefix.expand(additive.shape[0], -1, -1, -1), additive], dim=-1)


def _attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    softcap: float | None,
) -> torch.Tensor:
    """Softmax attention; returns (B, T, H, d). Key/value carry G <= H heads."""
    groups = query.shape[1] // key.shape[1]
    # Without a mask, a square pass is causal; a query block shorter than the keys
    # (decoding with a cache) sees every cached key.
    causal = mask is None and query.shape[2] == key.shape[2]
    if softcap is None:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=scaling, is_causal=causal, enable_gqa=groups > 1
        )
        return out.transpose(1, 2)
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    logits = torch.matmul(query, key.transpose(2, 3)) * scaling
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
        **kwargs: May hold a `ForwardPass` (or a `SharedPass`) under `vaembed_pass`.

    Returns:
        The per-head weighted values `u`, (B, T, H, d), and no weights.
    """
    state = kwargs.get(PASS_KWARG)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    if attention_mask is not None and attention_mask.shape[-1] != key.shape[-2]:
        attention_mask = attention_mask[..., : key.shape[-2]]
    if isinstance(state, (ForwardPass, SharedPass)):
        layer = module.layer_idx
        state.on_values(layer, value)
        bias = state.reroute_bias(layer)
        if bias is not None:
            rows = torch.arange(key.shape[0], device=key.device)
            last_key = key[rows, :, state.last_index].unsqueeze(2)
            last_value = value[rows, :, state.last_index].unsqueeze(2)
            attention_mask = _prefix_mask(attention_mask, query, key.shape[-2], bias)
            key = torch.cat([last_key, key], dim=2)
            value = torch.cat([last_value, value], dim=2)
        mixed = _attend(query, key, value, attention_mask, scale, softcap)
        state.on_mixed(layer, mixed, module.o_proj)
        return mixed.contiguous(), None
    return _attend(query, key, value, attention_mask, scale, softcap).contiguous(), None


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
