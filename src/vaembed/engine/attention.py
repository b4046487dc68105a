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

import torch

from vaembed.engine.forward_pass import PASS_KWARG, ForwardPass
from vaembed.engine.kernels import attend

__all__ = ["ATTENTION_NAME", "SUPPORTED_MODEL_TYPES", "register", "use_vaembed_attention"]

ATTENTION_NAME = "vaembed"
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text", "gemma2")
"""The model families (`config.model_type`) vaembed runs; tests and `vaembed.testing` read this tuple."""


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

    It is transformers' boolean SDPA mask. Where that is a plain causal mask (no
    padding in the batch, and no sliding window shorter than the input) it is
    skipped (None), so attention runs on SDPA's `is_causal` fast path, as a bare
    forward does. A materialised mask lets each query see itself, so that no row
    is fully masked: left-padded rows would otherwise yield NaN that leaks
    through `0 * NaN` into real tokens.
    """
    from transformers.masking_utils import sdpa_mask

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
