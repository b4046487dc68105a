"""Several readouts of one forward pass.

Recipes that share a prompt and an intervention run the very same forward pass
and differ only in what they read from it: `hs-mean`, `hs-last`, `va` and `wva`
at any layers all read the plain pass over the bare text. A `SharedPass` hands
every hook call of one pass to several `ForwardPass` states, so all of those
readouts come out of a single pass, each exactly as its own pass would give it
(benchmarks and layer studies use this; `Embedder.run_passes` builds it).

The pass stops early only once every state has read all it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from vaembed.forward_pass import ForwardPass, PassPlan, StopForward

__all__ = ["SharedPass", "check_shareable"]


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
                ("reroute_layers", plan.recipe.reroute_layers, first.recipe.reroute_layers),
                (
                    "reroute_bias",
                    plan.recipe.reroute_bias if plan.recipe.reroute_layers else None,
                    first.recipe.reroute_bias if first.recipe.reroute_layers else None,
                ),
                ("prepend_layers", plan.recipe.prepend_layers, first.recipe.prepend_layers),
            )
            if mine != theirs
        ]
        if differs:
            raise ValueError(
                f"plans[{index}] cannot share a pass with plans[0]: they differ in {', '.join(differs)} "
                "(only readouts and readout layers may differ)"
            )


class SharedPass:
    """One forward pass read by several `ForwardPass` states.

    It offers the interface the attention function and the decoder-layer hooks
    call; interventions come from the first state (all states agree on them, see
    `check_shareable`).

    Args:
        states: One state per plan, built over the same batch.
    """

    def __init__(self, states: Sequence[ForwardPass]) -> None:
        check_shareable([state.plan for state in states])
        self.states = list(states)
        self._done = [False] * len(self.states)
        first = self.states[0]
        self.last_index = first.last_index
        self.pool_weights = first.pool_weights
        self.placeholder_index = first.placeholder_index

    def reroute_bias(self, layer: int) -> float | None:
        """Return the prefix bias if `layer`'s attention is rerouted, else None."""
        return self.states[0].reroute_bias(layer)

    def on_values(self, layer: int, value: torch.Tensor) -> None:
        """Hand value vectors to every state."""
        for state in self._live():
            state.on_values(layer, value)

    def on_mixed(self, layer: int, mixed: torch.Tensor, o_proj: torch.nn.Module) -> None:
        """Hand per-head weighted values to every state; stop once all are done."""
        self._each(lambda state: state.on_mixed(layer, mixed, o_proj))

    def on_layer_input(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the shared token-prepending overwrite, if any."""
        return self.states[0].on_layer_input(layer, hidden)

    def on_layer_output(self, layer: int, hidden: torch.Tensor) -> None:
        """Hand a layer's output to every state; stop once all are done."""
        self._each(lambda state: state.on_layer_output(layer, hidden))

    def on_final_hidden(self, hidden: torch.Tensor) -> None:
        """Hand the final normed hidden states to every state."""
        for state in self._live():
            state.on_final_hidden(hidden)

    def _live(self) -> list[ForwardPass]:
        return [state for state, done in zip(self.states, self._done, strict=True) if not done]

    def _each(self, call: Callable[[ForwardPass], None]) -> None:
        for index, state in enumerate(self.states):
            if self._done[index]:
                continue
            try:
                call(state)
            except StopForward:
                self._done[index] = True
        if all(self._done):
            raise StopForward
