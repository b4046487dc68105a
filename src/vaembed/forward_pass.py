"""Per-batch state of one forward pass: what to capture, reroute or overwrite.

A `ForwardPass` travels through the model's keyword arguments (as
`vaembed_pass`) down to every decoder layer and to the registered attention
function, so no global state is needed and concurrent passes do not interfere.
Readouts are reduced on the fly: each captured layer is pooled over tokens at
once and summed, so no layer's per-token states are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaembed.recipe import ResolvedRecipe

__all__ = ["ForwardPass", "PassPlan", "StopForward", "PASS_KWARG"]

PASS_KWARG = "vaembed_pass"


class StopForward(Exception):
    """Raised inside the model once every needed layer has been read (early exit)."""


@dataclass(frozen=True)
class PassPlan:
    """What one recipe needs from a model with `num_layers` layers.

    Attributes:
        recipe: The recipe with concrete layer indices.
        num_layers: The model's number of decoder layers.
        residual_layers: Layers whose output residual state at the last token
            is also recorded, before any final norm (used by layer calibration).
        early_exit: Stop the pass after the last layer the readout needs (the
            vectors are bit-identical to those of the full pass).
        keep_layers: Also keep each read layer's pooled vectors apart (in
            `ForwardPass.per_layer`), as a layer sweep needs.
    """

    recipe: ResolvedRecipe
    num_layers: int
    residual_layers: tuple[int, ...] = ()
    early_exit: bool = True
    keep_layers: bool = False

    @property
    def reads_final_hidden(self) -> bool:
        """Whether the readout needs the model's final (normed) hidden states."""
        recipe = self.recipe
        return recipe.readout.source == "hidden" and self.num_layers - 1 in recipe.layers

    @property
    def stop_after(self) -> int | None:
        """Index of the last layer the pass must run, or None to run the whole model."""
        if self.reads_final_hidden or not self.early_exit:
            return None
        needed = max((*self.recipe.layers, *self.residual_layers))
        return needed if needed < self.num_layers - 1 else None


def pool_tokens(states: torch.Tensor, pool: str, weights: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Pool per-token states of shape (B, T, F) into (B, F).

    Args:
        states: Per-token vectors.
        pool: `"mean"` (weighted by `weights`), `"last"`, or `"hybrid"`.
        weights: (B, T) pooling weights, each row summing to 1.
        last: (B,) index of each row's last non-pad token.
    """
    states = states.float()
    if pool == "last":
        return states[torch.arange(states.shape[0], device=states.device), last]
    mean = torch.einsum("btf,bt->bf", states, weights)
    if pool == "mean":
        return mean
    return 0.5 * (mean + states[torch.arange(states.shape[0], device=states.device), last])


class ForwardPass:
    """State of one batch's forward pass.

    Args:
        plan: What to capture and change.
        last_index: (B,) index of each row's last non-pad token.
        pool_weights: (B, T) mean-pooling weights (rows sum to 1).
        placeholder_index: (B,) index of the placeholder token, for token prepending.
    """

    def __init__(
        self,
        plan: PassPlan,
        last_index: torch.Tensor,
        pool_weights: torch.Tensor,
        placeholder_index: torch.Tensor | None = None,
    ) -> None:
        self.plan = plan
        self.last_index = last_index
        self.pool_weights = pool_weights
        self.placeholder_index = placeholder_index
        self.total: torch.Tensor | None = None
        self.residuals: dict[int, torch.Tensor] = {}
        self.per_layer: dict[int, torch.Tensor] = {}
        recipe = plan.recipe
        self._read_layers = frozenset(recipe.layers)
        self._reroute = frozenset(recipe.reroute_layers)
        self._prepend = frozenset(recipe.prepend_layers)
        self._residual = frozenset(plan.residual_layers)
        self._stop_after = plan.stop_after

    # -- what the registered attention function asks -------------------------------
    def reroute_bias(self, layer: int) -> float | None:
        """Return the prefix bias if `layer`'s attention is rerouted, else None."""
        return self.plan.recipe.reroute_bias if layer in self._reroute else None

    def on_values(self, layer: int, value: torch.Tensor) -> None:
        """Record value vectors `v` of shape (B, G, T, d) for a value readout."""
        readout = self.plan.recipe.readout
        if readout.source == "value" and layer in self._read_layers:
            batch, heads, length, size = value.shape
            per_token = value.transpose(1, 2).reshape(batch, length, heads * size)
            self._add(layer, pool_tokens(per_token, readout.pool, self.pool_weights, self.last_index))

    def on_mixed(self, layer: int, mixed: torch.Tensor, o_proj: torch.nn.Module) -> None:
        """Record per-head weighted values `u` of shape (B, T, H, d); stop if done.

        For the `"attention"` source, `o_proj` is applied after pooling: it is
        affine and pooling weights sum to one, so this equals pooling `o_proj(u)`.
        """
        readout = self.plan.recipe.readout
        if readout.source in ("mixed", "attention") and layer in self._read_layers:
            batch, length = mixed.shape[:2]
            pooled = pool_tokens(mixed.reshape(batch, length, -1), readout.pool, self.pool_weights, self.last_index)
            if readout.source == "attention":
                pooled = o_proj(pooled.to(mixed.dtype)).float()
            self._add(layer, pooled)
        if layer == self._stop_after and readout.source != "hidden":
            raise StopForward

    # -- what the decoder-layer hooks ask -----------------------------------------
    def on_layer_input(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Overwrite a layer's input residual stream (B, T, D) for token prepending; return it."""
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if layer in self._prepend and self.placeholder_index is not None:
            hidden = hidden.clone()
            hidden[rows, self.placeholder_index] = hidden[rows, self.last_index]
        return hidden

    def on_layer_output(self, layer: int, hidden: torch.Tensor) -> None:
        """Record a layer's output (residuals; hidden readouts of intermediate layers); stop if done."""
        if layer in self._residual:
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            self.residuals[layer] = hidden[rows, self.last_index].float()
        readout = self.plan.recipe.readout
        if readout.source == "hidden" and layer in self._read_layers and layer < self.plan.num_layers - 1:
            self._add(layer, pool_tokens(hidden, readout.pool, self.pool_weights, self.last_index))
        if layer == self._stop_after:
            raise StopForward

    # -- after the pass -------------------------------------------------------------
    def on_final_hidden(self, hidden: torch.Tensor) -> None:
        """Record the model's final normed hidden states (B, T, D)."""
        readout = self.plan.recipe.readout
        if self.plan.reads_final_hidden:
            pooled = pool_tokens(hidden, readout.pool, self.pool_weights, self.last_index)
            self._add(self.plan.num_layers - 1, pooled)

    def result(self) -> torch.Tensor:
        """Return the readout averaged over its layers, shape (B, dim)."""
        if self.total is None:
            raise RuntimeError("The forward pass captured nothing; is the model supported?")
        return self.total / len(self.plan.recipe.layers)

    def _add(self, layer: int, pooled: torch.Tensor) -> None:
        if self.plan.keep_layers:
            self.per_layer[layer] = pooled
        self.total = pooled if self.total is None else self.total + pooled
