"""One batch's forward pass: its intervention, and the plans that read it.

A `ForwardPass` travels through the model's keyword arguments (as
`vaembed_pass`) down to every decoder layer and to the registered attention
function, so no global state is needed and concurrent passes do not interfere.
It applies the recipe's intervention (`layer_input`, `attention`) and hands
each capture point to one `PlanReader` per plan: several readouts, at any
layers, can read one pass, each getting exactly what a pass of its own gives.
Readouts are reduced on the fly: each read layer is pooled at once and summed,
so no layer's per-token states are kept. The pass stops (`StopForward`) once
every reader has read all it needs (early exit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vaembed.recipes.interventions import Attend
from vaembed.recipes.pooling import TokenPositions
from vaembed.recipes.readouts import CapturePoint
from vaembed.recipes.recipe import ResolvedRecipe

__all__ = ["PASS_KWARG", "ForwardPass", "PassPlan", "PlanReader", "StopForward", "check_shareable"]

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
            `PlanReader.per_layer`), as a layer sweep needs.
    """

    recipe: ResolvedRecipe
    num_layers: int
    residual_layers: tuple[int, ...] = ()
    early_exit: bool = True
    keep_layers: bool = False

    @property
    def reads_final_hidden(self) -> bool:
        """Whether the readout needs the model's final (normed) hidden states."""
        return self.recipe.readout.point == "hidden" and self.num_layers - 1 in self.recipe.layers

    @property
    def stop_after(self) -> int | None:
        """Index of the last layer the pass must run, or None to run the whole model."""
        if self.reads_final_hidden or not self.early_exit:
            return None
        needed = max((*self.recipe.layers, *self.residual_layers))
        return needed if needed < self.num_layers - 1 else None

    @property
    def stops_in_attention(self) -> bool:
        """Whether the last needed layer is done after its attention (its MLP can be skipped)."""
        stop = self.stop_after
        return stop is not None and self.recipe.readout.point != "hidden" and stop not in self.residual_layers


def check_shareable(plans: Sequence[PassPlan]) -> None:
    """Check that plans can read one pass: same model depth, prompt and intervention.

    Raises:
        ValueError: No plans, or two plans differ in what changes the pass (the
            offending field is named).
    """
    if not plans:
        raise ValueError("plans must hold at least one PassPlan")
    first = plans[0]
    for index, plan in enumerate(plans[1:], start=1):
        differs = [
            name
            for name, mine, theirs in (
                ("num_layers", plan.num_layers, first.num_layers),
                ("prompt", plan.recipe.prompt, first.recipe.prompt),
                ("intervention", plan.recipe.intervention, first.recipe.intervention),
            )
            if mine != theirs
        ]
        if differs:
            raise ValueError(
                f"plans[{index}] cannot share a pass with plans[0]: they differ in {', '.join(differs)} "
                "(only readouts and readout layers may differ)"
            )


class PlanReader:
    """What one plan reads from a pass: its readout's vectors, per-layer parts and residuals.

    Args:
        plan: What to read.
        positions: The batch's token positions.
    """

    def __init__(self, plan: PassPlan, positions: TokenPositions) -> None:
        self.plan = plan
        self.positions = positions
        self.total: torch.Tensor | None = None
        self.per_layer: dict[int, torch.Tensor] = {}
        self.residuals: dict[int, torch.Tensor] = {}
        self.done = False
        self._layers = frozenset(plan.recipe.layers)
        self._residual = frozenset(plan.residual_layers)
        self._stop_after = plan.stop_after
        self._final = plan.num_layers - 1

    def wants(self, point: CapturePoint, layer: int) -> bool:
        """Whether this reader reads `point` at `layer`."""
        if self.done or self.plan.recipe.readout.point != point or layer not in self._layers:
            return False
        return point != "hidden" or layer < self._final  # the final hidden state comes from `final_hidden`

    def capture(self, point: CapturePoint, layer: int, states: torch.Tensor, module: torch.nn.Module) -> None:
        """Pool `states` (B, T, F) into the readout if it reads `point` at `layer`."""
        if self.wants(point, layer):
            self._add(layer, self.plan.recipe.readout.read(states, self.positions, module))

    def after_attention(self, layer: int) -> None:
        """Mark the reader done if `layer` was the last it needs and its MLP can be skipped."""
        if self.plan.stops_in_attention and layer == self._stop_after:
            self.done = True

    def after_layer(self, layer: int, hidden: torch.Tensor) -> None:
        """Record residuals at the last token; mark the reader done after its last layer."""
        if self.done:
            return
        if layer in self._residual:
            self.residuals[layer] = self.positions.at_last(hidden).float()
        if layer == self._stop_after:
            self.done = True

    def final_hidden(self, hidden: torch.Tensor, model: torch.nn.Module) -> None:
        """Read the model's final normed hidden states (B, T, D) if the readout needs them."""
        if self.plan.reads_final_hidden:
            self._add(self._final, self.plan.recipe.readout.read(hidden, self.positions, model))

    def result(self) -> torch.Tensor:
        """Return the readout averaged over its layers, shape (B, dim)."""
        if self.total is None:
            raise RuntimeError("The forward pass captured nothing; is the model supported?")
        return self.total / len(self.plan.recipe.layers)

    def _add(self, layer: int, pooled: torch.Tensor) -> None:
        if self.plan.keep_layers:
            self.per_layer[layer] = pooled
        self.total = pooled if self.total is None else self.total + pooled


class ForwardPass:
    """State of one batch's forward pass, read by one or more plans.

    Args:
        plans: What to read; they must share a pass (`check_shareable`).
        positions: The batch's token positions.

    Raises:
        ValueError: The plans cannot share a pass.
    """

    def __init__(self, plans: Sequence[PassPlan], positions: TokenPositions) -> None:
        check_shareable(plans)
        self.positions = positions
        self.readers = [PlanReader(plan, positions) for plan in plans]
        self.intervention = plans[0].recipe.intervention
        self._intervened = frozenset(self.intervention.layers) if self.intervention is not None else frozenset()

    # -- what the decoder-layer hooks call ------------------------------------------
    def layer_input(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """The residual stream (B, T, D) entering `layer`, after the intervention."""
        if layer in self._intervened:
            return self.intervention.layer_input(layer, hidden, self.positions)  # type: ignore[union-attr]
        return hidden

    def layer_output(self, layer: int, module: torch.nn.Module, hidden: torch.Tensor) -> None:
        """Hand a layer's output (B, T, D) to the readers; stop once all are done."""
        for reader in self.readers:
            reader.capture("hidden", layer, hidden, module)
            reader.after_layer(layer, hidden)
        self._stop_if_done()

    # -- what the registered attention function calls -----------------------------
    def attention(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        attend: Attend,
    ) -> torch.Tensor:
        """One layer's attention: capture values, apply the intervention, capture weighted values.

        Returns:
            The per-head weighted values `u`, (B, T, H, d).
        """
        layer = module.layer_idx
        if any(reader.wants("values", layer) for reader in self.readers):
            batch, heads, length, size = value.shape
            per_token = value.transpose(1, 2).reshape(batch, length, heads * size)
            for reader in self.readers:
                reader.capture("values", layer, per_token, module)
        mixed = None
        if layer in self._intervened:
            mixed = self.intervention.attention(layer, query, key, value, mask, self.positions, attend)  # type: ignore[union-attr]
        if mixed is None:
            mixed = attend(query, key, value, mask)
        if any(reader.wants("weighted_values", layer) for reader in self.readers):
            flat = mixed.reshape(*mixed.shape[:2], -1)
            for reader in self.readers:
                reader.capture("weighted_values", layer, flat, module)
        for reader in self.readers:
            reader.after_attention(layer)
        self._stop_if_done()
        return mixed

    # -- after the pass -------------------------------------------------------------
    def final_hidden(self, hidden: torch.Tensor, model: torch.nn.Module) -> None:
        """Hand the final normed hidden states (B, T, D) to the readers."""
        for reader in self.readers:
            reader.final_hidden(hidden, model)

    def _stop_if_done(self) -> None:
        if all(reader.done for reader in self.readers):
            raise StopForward
