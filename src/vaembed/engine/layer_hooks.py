"""Hooks on each decoder layer, active only inside a vaembed forward pass.

They are installed once per model and do nothing unless the layer call carries
a `ForwardPass` in its keyword arguments, so plain use of the model is
untouched. The pre-hook lets the pass overwrite the residual stream entering a
layer (token prepending); the forward hook reads a layer's output (residuals
for calibration, hidden readouts of intermediate layers, early exit).
Both hand the tensors to the pass's `ForwardPass`.
"""

from __future__ import annotations

from typing import Any

import torch

from vaembed.engine.forward_pass import PASS_KWARG, ForwardPass

__all__ = ["install_layer_hooks"]

_MARK = "_vaembed_hooks"


def _make_pre_hook(layer: int):
    def pre_hook(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]):
        state = kwargs.get(PASS_KWARG)
        if not isinstance(state, ForwardPass):
            return None
        if args:
            hidden = state.layer_input(layer, args[0])
            return (hidden, *args[1:]), kwargs
        kwargs["hidden_states"] = state.layer_input(layer, kwargs["hidden_states"])
        return args, kwargs

    return pre_hook


def _make_hook(layer: int):
    def hook(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        state = kwargs.get(PASS_KWARG)
        if isinstance(state, ForwardPass):
            hidden = output[0] if isinstance(output, tuple) else output
            state.layer_output(layer, module, hidden)

    return hook


def install_layer_hooks(model: torch.nn.Module) -> None:
    """Install the hooks on `model.layers` once (idempotent)."""
    if getattr(model, _MARK, False):
        return
    for index, layer in enumerate(model.layers):
        layer.register_forward_pre_hook(_make_pre_hook(index), with_kwargs=True)
        layer.register_forward_hook(_make_hook(index), with_kwargs=True)
    setattr(model, _MARK, True)
